"""Do the class-activation maps localise, and which defaults should the explain tools use? (issues 27 and 40)

Two localisation sets, made here from code (reproducible; written once into the cache, ``$SWIN_SUITE_CACHE`` or
``~/.cache/swin_suite``), each object in a known box (``boxes.json``):

- ``discs``: 64 px images of one red or blue disc (the class) on grey clutter (grey rectangles, bars, discs and
  squares) with one or two green or yellow distractor shapes: the evidence is in the disc's box and nowhere else;
- ``moving objects``: 64 px, 8-frame clips of one coloured disc, square or diamond moving left, right, up or down
  (the class) at 2-3 px a frame over still grey clutter: only the object shows the direction.

``python -m bench.explain make-sets`` writes them and prints their folders; the README's commands train a tiny
Swin and a tiny Video Swin on them with the project's own ``core.train`` / ``video_swin.train``.

Measurements, each written to ``<out>/<name>.json`` (rows with the command, commit and machine), ``<name>.md``
(the table) and ``<name>.png`` (a picture), for every method x stage x layer x smoothing asked for:

- ``discs --checkpoint RUN/best.pth`` / ``objects --checkpoint RUN/best.pth``: the share of the CAM mass inside
  the object's box over the box's share of the area (1 = no preference; per frame for clips), for the trained
  model and random-weight models of the same recipe (``--seeds``); the deletion test (the class probability after
  greying the top ``--fraction`` CAM pixels, against as many random pixels); the token-grid ripple of the maps (how
  much of the map repeats with the token period: the lattice a person sees, 0 = none);
- ``digits --checkpoint ...``: the deletion test on the digits validation images (a set not chosen on);
- ``shapes --checkpoint ...``: CAM mass on the moving shapes' masks over their area (a set not chosen on).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from core.cam_pictures import caption, panels
from core.engine.files import write_json
from core.engine.inference import load_model
from core.engine.launch import build_model
from core.nn.cam import (
    DEFAULT_LAYER,
    DEFAULT_SMOOTH,
    class_activation_maps,
    default_method,
    default_stage,
    smooth_maps,
    stage_strides,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def provenance(args: argparse.Namespace) -> dict:
    """Command, commit, machine and library versions of this measurement."""
    import importlib.metadata as md

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()

    def cpu() -> str:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        return next((ln.split(":", 1)[1].strip() for ln in out.splitlines() if ln.startswith("Model name")), "?")
    return {"command": "python -m bench.explain " + " ".join(sys.argv[1:]),
            "commit": git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "core",
                                                                            "bench", "video_swin") else ""),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {cpu()}, {os.cpu_count()} CPU cores, OMP_NUM_THREADS="
                       f"{os.environ.get('OMP_NUM_THREADS', '')}, torch threads {torch.get_num_threads()}, "
                       f"{platform.python_implementation()} {platform.python_version()}",
            "torch": torch.__version__, "grad_cam": md.version("grad-cam")}


def maps_in_batches(model: torch.nn.Module, x: torch.Tensor, batch: int, **kw) -> tuple[torch.Tensor, torch.Tensor,
                                                                                        list[int]]:
    """class_activation_maps over a large batch in chunks: (maps, logits, targets)."""
    maps, logits, targets = [], [], []
    for i in range(0, len(x), batch):
        r = class_activation_maps(model, x[i:i + batch], **kw)
        maps.append(r.maps)
        logits.append(r.logits)
        targets += r.targets
    return torch.cat(maps), torch.cat(logits), targets


# --------------------------------------------------------------------------------------- localisation sets
# Objects in known boxes on grey clutter, written once into the cache (core.video.synthetic.default_cache_dir):
# - "discs" (images, an ImageFolder tree for core.train): one red or blue disc or square on 64 px of grey
#   clutter (grey rectangles, bars, discs and squares); the class is the object's colour and shape, so the
#   evidence is inside its box and nowhere else (the clutter holds grey discs and squares too);
# - "clips" (videos, list files for video_swin.train): one coloured shape moving left, right, up or down over
#   still grey clutter (48 px, 16 frames); the class is the direction, which only the object shows.
# boxes.json gives each file's box, [top, left, bottom, right) in pixels (per frame for a clip).
DISC_CLASSES = ("red", "blue")
SET_VERSION = 1


def grey_clutter(rng: np.random.Generator, size: int) -> np.ndarray:
    """(size, size) float grey levels: a flat level under 10-17 grey rectangles, bars, discs and squares."""
    img = np.full((size, size), rng.uniform(90, 170))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(int(rng.integers(10, 18))):
        cy, cx = rng.uniform(0, size, 2)
        r = rng.uniform(2.0, size / 7)
        kind = int(rng.integers(0, 4))
        if kind == 0:                                               # a rectangle of random aspect
            a = rng.uniform(0.4, 2.5)
            mask = (abs(yy - cy) <= r * a) & (abs(xx - cx) <= r / a)
        elif kind == 1:                                             # a disc
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        elif kind == 2:                                             # a square
            mask = np.maximum(abs(yy - cy), abs(xx - cx)) <= 0.85 * r
        else:                                                       # a bar 1-3 px wide, up to 3r long
            t = rng.uniform(0, np.pi)
            along = (yy - cy) * np.sin(t) + (xx - cx) * np.cos(t)
            across = (yy - cy) * np.cos(t) - (xx - cx) * np.sin(t)
            mask = (abs(across) <= rng.uniform(0.5, 1.5)) & (abs(along) <= 3 * r)
        img[mask] = rng.uniform(30, 230)
    return img


def _shape(kind: str, dy: np.ndarray, dx: np.ndarray, r: float) -> np.ndarray:
    if kind == "disc":
        return dy * dy + dx * dx <= r * r
    if kind == "square":
        return np.maximum(abs(dy), abs(dx)) <= 0.85 * r            # about a disc's area
    return abs(dy) + abs(dx) <= 1.2 * r                              # diamond


def mask_box(mask: np.ndarray) -> list[int]:
    """[top, left, bottom, right) of a boolean (H, W) mask."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1]


def render_disc_image(rng: np.random.Generator, label: int, size: int = 64) -> tuple[np.ndarray, list[int]]:
    """(an (H, W, 3) uint8 image of a disc of colour DISC_CLASSES[label] on grey clutter with one or two green or
    yellow distractors, the disc's box)."""
    import colorsys
    img = np.repeat(grey_clutter(rng, size)[..., None], 3, -1)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(int(rng.integers(1, 3))):               # distractors: coloured, but not the class's colours
        r = rng.uniform(0.06, 0.14) * size
        cy, cx = rng.uniform(r, size - r, 2)
        hue = rng.choice([1 / 3, 1 / 6]) + rng.uniform(-0.03, 0.03)
        kind = ("disc", "square", "diamond")[int(rng.integers(0, 3))]
        img[_shape(kind, yy - cy, xx - cx, r)] = 255 * np.array(colorsys.hsv_to_rgb(hue, rng.uniform(0.6, 1),
                                                                                     rng.uniform(0.6, 1)))
    r = rng.uniform(0.08, 0.16) * size
    cy, cx = rng.uniform(r + 1, size - r - 1, 2)
    mask = _shape("disc", yy - cy, xx - cx, r)
    hue = (0.0 if DISC_CLASSES[label] == "red" else 2 / 3) + rng.uniform(-0.03, 0.03)
    img[mask] = 255 * np.array(colorsys.hsv_to_rgb(hue % 1, rng.uniform(0.6, 1), rng.uniform(0.6, 1)))
    img += rng.normal(0, 5, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), mask_box(mask)


def render_moving_object(rng: np.random.Generator, direction: str, num_frames: int = 8,
                         size: int = 64) -> tuple[np.ndarray, list[list[int]]]:
    """(frames (T, H, W, 3) uint8 of one coloured disc, square or diamond moving ``direction`` at 1-1.5 px a frame
    over still grey clutter, staying inside the frame; its box in each frame)."""
    import colorsys

    from core.video.synthetic import _VELOCITY
    bg = np.repeat(grey_clutter(rng, size)[..., None], 3, -1)
    kind = ("disc", "square", "diamond")[int(rng.integers(0, 3))]
    r = rng.uniform(0.15, 0.2) * size
    colour = 255 * np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.7, 1), rng.uniform(0.7, 1)))
    vel = np.asarray(_VELOCITY[direction]) * rng.uniform(2.0, 3.0)
    travel = abs(vel) * (num_frames - 1)
    lo = r + 1 + np.where(vel < 0, travel, 0)
    hi = size - r - 1 - np.where(vel > 0, travel, 0)
    start = rng.uniform(lo, hi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    boxes = []
    for t in range(num_frames):
        cy, cx = start + t * vel
        mask = _shape(kind, yy - cy, xx - cx, r)
        img = bg.copy()
        img[mask] = colour
        frames[t] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255)
        boxes.append(mask_box(mask))
    return frames, boxes


def _write_set(root: Path, params: dict, write) -> Path:
    """``write(folder)`` into a temporary folder renamed to ``root`` (once: a complete set is reused; a folder made
    with other parameters is refused), with ``.complete.json`` holding ``params``."""
    import shutil
    import tempfile
    marker = root / ".complete.json"
    if root.exists():
        found = json.loads(marker.read_text()) if marker.is_file() else None
        if found != params:
            raise SystemExit(f"{root} holds {found or 'something else'}, not {params}: remove it or pass --root")
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    try:
        write(tmp)
        marker_tmp = tmp / ".complete.json"
        marker_tmp.write_text(json.dumps(params, sort_keys=True))
        tmp.chmod(0o755)
        os.rename(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def ensure_discs(root: str | os.PathLike | None = None, *, num_train: int = 1600, num_val: int = 400, size: int = 64,
                 seed: int = 0) -> Path:
    """The image set, generated once: root/{train,val}/<class>/<index>.png, classes.txt, boxes.json (val and train)."""
    from core.video.synthetic import default_cache_dir
    params = dict(kind="discs", version=SET_VERSION, num_train=num_train, num_val=num_val, size=size, seed=seed)

    def write(out: Path) -> None:
        boxes = {}
        for split_id, (split, count) in enumerate((("train", num_train), ("val", num_val))):
            for c in DISC_CLASSES:
                (out / split / c).mkdir(parents=True)
            for i in range(count):
                label = i % len(DISC_CLASSES)
                img, box = render_disc_image(np.random.default_rng([seed, split_id, i]), label, size)
                rel = f"{split}/{DISC_CLASSES[label]}/{i:05d}.png"
                Image.fromarray(img).save(out / rel)
                boxes[rel] = box
        (out / "classes.txt").write_text("\n".join(DISC_CLASSES) + "\n")
        (out / "boxes.json").write_text(json.dumps(boxes))
    return _write_set(Path(root) if root else default_cache_dir() / "explain_discs", params, write)


def ensure_moving_objects(root: str | os.PathLike | None = None, *, num_train: int = 600, num_val: int = 200,
                          num_frames: int = 8, size: int = 64, seed: int = 0) -> Path:
    """The clip set, generated once: root/{train,val}/<direction>/<index>.mp4, train.txt, val.txt, classes.txt,
    boxes.json (per frame)."""
    from core.video.synthetic import CLASSES, default_cache_dir, write_mp4
    params = dict(kind="moving_objects", version=SET_VERSION, num_train=num_train, num_val=num_val,
                  num_frames=num_frames, size=size, seed=seed)

    def write(out: Path) -> None:
        boxes = {}
        for split_id, (split, count) in enumerate((("train", num_train), ("val", num_val))):
            for c in CLASSES:
                (out / split / c).mkdir(parents=True)
            lines = []
            for i in range(count):
                label = i % len(CLASSES)
                frames, box = render_moving_object(np.random.default_rng([seed, split_id, i]), CLASSES[label],
                                                   num_frames, size)
                rel = f"{split}/{CLASSES[label]}/{i:05d}.mp4"
                write_mp4(out / rel, frames)
                boxes[rel] = box
                lines.append(f"{rel} {label}")
            (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
        (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
        (out / "boxes.json").write_text(json.dumps(boxes))
    return _write_set(Path(root) if root else default_cache_dir() / "explain_moving_objects", params, write)


# ------------------------------------------------------------------------------------------------ measurement
def random_models(cfg, num_classes: int, seeds: int) -> dict[str, torch.nn.Module]:
    """Random-weight models of the recipe, one per seed."""
    out = {}
    for seed in range(seeds):
        torch.manual_seed(seed)
        out[f"random (seed {seed})"] = build_model(cfg, num_classes, initial_weights=False).eval()
    return out


def mass_ratio(maps: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Per item: the share of the map's mass on ``where`` (a 0/1 box or mask of the map's shape) over the share of
    the area ``where`` covers (1 = no preference; 1 / area share at most)."""
    dims = tuple(range(1, maps.ndim))
    on = (maps * where).sum(dims) / maps.sum(dims).clamp_min(1e-12)
    return on / where.mean(dims)


def token_ripple(maps: torch.Tensor, stride: int) -> float:
    """How much of the maps repeats with the token period ``stride`` (pixels): each frame is cut into stride x
    stride tiles, the tiles averaged, and the spread of that mean tile over its mean taken (0: no lattice)."""
    h, w = (maps.shape[-2] // stride) * stride, (maps.shape[-1] // stride) * stride
    if stride < 2 or h == 0 or w == 0:
        return 0.0
    tiles = maps[..., :h, :w].reshape(-1, h // stride, stride, w // stride, stride).mean((1, 3))
    mean = tiles.flatten(1).mean(1)
    keep = mean > 1e-6
    return float((tiles.flatten(1).std(1)[keep] / mean[keep]).mean()) if keep.any() else 0.0


@torch.no_grad()
def class_prob(model: torch.nn.Module, x: torch.Tensor, cls: torch.Tensor, batch: int = 100) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch]).softmax(-1).gather(1, cls[i:i + batch, None])[:, 0]
                      for i in range(0, len(x), batch)])


def grey_out(x: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Inputs (N, C, [T,] H, W) with the flat positions ``where`` (N, k) replaced by the normalisation mean (0)."""
    keep = torch.ones(len(x), int(np.prod(x.shape[2:])))
    keep.scatter_(1, where, 0.0)
    return x * keep.view(len(x), 1, *x.shape[2:])


def deletion(model: torch.nn.Module, x: torch.Tensor, maps: torch.Tensor, cls: torch.Tensor, fraction: float,
             draws: int, seed: int = 0) -> dict:
    """The class probability before and after greying the top ``fraction`` of the map's pixels (voxels for clips),
    and after greying as many random ones (``draws`` draws averaged)."""
    g = torch.Generator().manual_seed(seed)
    n = maps[0].numel()
    k = int(round(fraction * n))
    p0 = class_prob(model, x, cls)
    p_cam = class_prob(model, grey_out(x, maps.flatten(1).argsort(dim=1, descending=True)[:, :k]), cls)
    p_rand = torch.stack([class_prob(model, grey_out(x, torch.rand(len(x), n, generator=g).argsort(1)[:, :k]), cls)
                          for _ in range(draws)]).mean(0)
    return {"prob_before": float(p0.mean()), "prob_after_top_cam": float(p_cam.mean()),
            "prob_after_random": float(p_rand.mean()), "drop_top_cam": float((p0 - p_cam).mean()),
            "drop_random": float((p0 - p_rand).mean()), "items_cam_drop_larger": float(((p0 - p_cam) >
                                                                                         (p0 - p_rand)).float().mean())}


def measure(trained: torch.nn.Module, randoms: dict[str, torch.nn.Module], x: torch.Tensor, where: torch.Tensor,
            labels: torch.Tensor, args: argparse.Namespace, batch: int) -> tuple[list[dict], dict]:
    """Rows of every method x stage x layer x smoothing, trained and random weights: the mass ratio on ``where``
    (when given), the ripple, and for the trained model the deletion test; and the maps kept for pictures, by
    (model, method, stage, layer, smooth)."""
    rows, kept = [], {}
    strides = stage_strides(trained)
    stages = args.stages or list(range(1, len(trained.layers) + 1))
    want = {tuple(p) for p in args.keep}
    for method in args.methods:
        for stage in stages:
            for layer in args.layers:
                for name, model in {"trained": trained, **randoms}.items():
                    raw, logits, targets = maps_in_batches(model, x, batch, method=method, stage=stage, layer=layer,
                                                           smooth=0)
                    top1 = float((logits.argmax(-1) == labels).float().mean() * 100)
                    for smooth in args.smooths:
                        maps = smooth_maps(raw, [smooth * s for s in strides[stage - 1][-2:]])
                        row = {"model": name, "method": method, "stage": stage, "layer": layer, "smooth": smooth,
                               "top1": top1, "items": len(x), "ripple": token_ripple(maps, strides[stage - 1][-1])}
                        if where is not None:
                            ratio = mass_ratio(maps, where)
                            row.update(mass_over_area_mean=float(ratio.mean()),
                                       mass_over_area_median=float(ratio.median()),
                                       items_above_1=float((ratio > 1).float().mean()),
                                       items_at_least_2_5=float((ratio >= 2.5).float().mean()))
                        if name == "trained" and args.fraction > 0:
                            row.update(deletion(model, x, maps, torch.tensor(targets), args.fraction, args.draws))
                        rows.append(row)
                        print(describe_row(row), flush=True)
                        key = (name.split(" ")[0], method, stage, layer, smooth)
                        if key in want and key not in kept:
                            kept[key] = maps
    return rows, kept


def describe_row(r: dict) -> str:
    line = f"{r['method']:>10} stage {r['stage']} {r['layer']:>6} smooth {r['smooth']:<4g} {r['model']:>16}: " \
           f"top-1 {r['top1']:5.1f}%, ripple {r['ripple']:.2f}"
    if "mass_over_area_mean" in r:
        line += f", mass in box / area share: mean {r['mass_over_area_mean']:.2f} median " \
                f"{r['mass_over_area_median']:.2f}, >1 in {100 * r['items_above_1']:.0f}%"
    if "drop_top_cam" in r:
        line += f"; deletion drop: top-CAM {r['drop_top_cam']:.3f} vs random {r['drop_random']:.3f}"
    return line


def table(rows: list[dict], defaults: tuple, title: str) -> str:
    """The markdown table of the rows: one line per method x stage x layer x smoothing, trained and random."""
    key = ("method", "stage", "layer", "smooth")
    groups: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in key), {})[r["model"]] = r
    has_box = any("mass_over_area_mean" in r for r in rows)
    has_del = any("drop_top_cam" in r for r in rows)
    head = ["method", "stage", "layer", "smooth (tokens)"]
    head += ["mass in box / area (trained)", "> 1 (trained)", "random weights"] if has_box else []
    head += ["deletion drop: top-CAM", "random pixels"] if has_del else []
    head += ["ripple (trained)", "ripple (random)"]
    lines = [f"{title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for k, by in groups.items():
        t = by.get("trained", {})
        rnd = [r for n, r in by.items() if n != "trained"]
        mark = "**" if k == defaults else ""
        cells = [f"{mark}{k[0]}{mark}", str(k[1]), k[2], f"{k[3]:g}"]
        if has_box:
            cells += [f"{mark}{t['mass_over_area_mean']:.2f}{mark}", f"{100 * t['items_above_1']:.0f} %",
                      " / ".join(f"{r['mass_over_area_mean']:.2f}" for r in rnd)]
        if has_del:
            cells += [f"{t['drop_top_cam']:.3f}", f"{t['drop_random']:.3f}"]
        cells += [f"{t.get('ripple', float('nan')):.2f}",
                  " / ".join(f"{r['ripple']:.2f}" for r in rnd) or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ the two set tasks
def box_masks(boxes: Sequence, shape: Sequence[int]) -> torch.Tensor:
    """0/1 masks of ``shape`` (H, W) from [top, left, bottom, right) boxes (one, or one per frame)."""
    nested = isinstance(boxes[0], (list, tuple))
    out = torch.zeros(len(boxes) if nested else 1, *shape)
    for i, (a, b, c, d) in enumerate(boxes if nested else [boxes]):
        out[i, a:c, b:d] = 1
    return out if nested else out[0]


def discs(args: argparse.Namespace) -> dict:
    from core.classification.config import ClassificationConfig
    from core.classification.data import build_transform

    loaded = load_model(args.checkpoint, ClassificationConfig)
    cfg, model = loaded.cfg, loaded.model
    root = Path(cfg.data.root) if cfg.data.root else ensure_discs()
    boxes = json.loads((root / "boxes.json").read_text())
    files = sorted(k for k in boxes if k.startswith(cfg.data.val_split + "/"))[:args.limit or None]
    classes = sorted(e.name for e in os.scandir(root / cfg.data.val_split) if e.is_dir())
    transform = build_transform(cfg, False)
    images = [np.asarray(Image.open(root / f).convert("RGB")) for f in files]
    x = torch.stack([transform(Image.fromarray(im)) for im in images])
    if tuple(x.shape[-2:]) != images[0].shape[:2]:
        raise SystemExit(f"the recipe's eval transform gives {tuple(x.shape[-2:])} from {images[0].shape[:2]}: set "
                         f"data.img_size to the image size and data.crop_pct=1 so that the boxes hold")
    where = torch.stack([box_masks(boxes[f], x.shape[-2:]) for f in files])
    labels = torch.tensor([classes.index(f.split("/")[1]) for f in files])
    rows, kept = measure(model, random_models(cfg, loaded.num_classes, args.seeds), x, where, labels, args, 100)
    picture_compare([(images[i], where[i].numpy()) for i in args.show], kept, args,
                    f"discs: val images {', '.join(map(str, args.show))}", os.path.join(args.out, f"{args.name}.png"))
    return {"task": "discs", "checkpoint": os.path.relpath(args.checkpoint), "data": str(root),
            "data_params": json.loads((root / ".complete.json").read_text()), "val_images": len(files),
            "classes": classes, "rows": rows}


def objects(args: argparse.Namespace) -> dict:
    from torchvision import tv_tensors

    from core.video.config import VideoConfig
    from core.video.data import VideoDataset
    from core.video.lists import read_list_file
    from core.video.transforms import build_video_transform

    loaded = load_model(args.checkpoint, VideoConfig)
    cfg, d, model = loaded.cfg, loaded.cfg.data, loaded.model
    root = Path(d.root) if d.root else ensure_moving_objects()
    boxes = json.loads((root / "boxes.json").read_text())
    params = json.loads((root / ".complete.json").read_text())
    lines = [(e.path, e.label) for e in read_list_file(root / "val.txt")][:args.limit or None]
    ds = VideoDataset([(str(root / p), int(y)) for p, y in lines], [str(i) for i in range(loaded.num_classes)],
                      clip_len=d.clip_len, frame_interval=d.frame_interval, num_clips=1, test_mode=True)
    transform = build_video_transform("test", d.crop_size, None, 1)
    inds = ds.frame_indices(params["num_frames"])[0]
    clips, where, raws = [], [], []
    for path, _ in lines:
        raw = ds.load_clips(str(root / path))[0]                        # (T, C, H, W) uint8
        if raw.shape[-2:] != (d.crop_size, d.crop_size):
            raise SystemExit(f"frames {tuple(raw.shape[-2:])} are not the crop size {d.crop_size}: the boxes would "
                             f"need the crop geometry")
        clips.append(transform(tv_tensors.Video(raw))[0])
        where.append(box_masks([boxes[path][i] for i in inds], raw.shape[-2:]))
        raws.append(raw.permute(0, 2, 3, 1).numpy())
    x, where = torch.stack(clips), torch.stack(where)
    labels = torch.tensor([int(y) for _, y in lines])
    rows, kept = measure(model, random_models(cfg, loaded.num_classes, args.seeds), x, where, labels, args, 25)
    picture_clips([(raws[i], where[i].numpy()) for i in args.show], kept, args,
                  f"moving objects: val clips {', '.join(map(str, args.show))}",
                  os.path.join(args.out, f"{args.name}.png"))
    return {"task": "moving_objects", "checkpoint": os.path.relpath(args.checkpoint), "data": str(root),
            "data_params": params, "val_clips": len(lines), "view": "1 clip x 1 crop (centred)",
            "frames": d.clip_len, "frame_interval": d.frame_interval, "rows": rows}


# ------------------------------------------------------------------------------------------------ pictures
def outlined(image: np.ndarray, where: np.ndarray) -> np.ndarray:
    """The image with the border of the 0/1 mask ``where`` (same size) in white."""
    f = image.copy()
    m = where > 0
    f[m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))] = (255, 255, 255)
    return f


def _columns(args: argparse.Namespace) -> list[tuple[str, tuple]]:
    """The maps pictured, (caption, kept key): the defaults at trained and random weights, then --compare."""
    d = ("trained", args.default[0], args.default[1], args.default[2], args.default[3])
    cols = [(f"the default: {d[1]},\nstage {d[2]}, smooth {d[4]:g}", d),
            ("the default at\nrandom weights", ("random", *d[1:]))]
    for m, s, layer, sm in args.compare:
        cols.append((f"{m}, stage {s} {layer},\nsmooth {sm:g}" + (" (the old default)" if (m, s, layer, sm) ==
                     ("gradcam", args.last_stage, "output", 0.0) else ""), ("trained", m, s, layer, sm)))
    return cols


def picture_compare(items: list, kept: dict, args: argparse.Namespace, title: str, path: str) -> None:
    """Per item a row: the input with the object's box, then the map over it for each pictured choice."""
    rows = []
    for n, (image, where) in enumerate(items):
        k = 192 // image.shape[0] if image.shape[0] < 192 else 1
        parts = [caption(outlined(_big(image, k), _big(where, k)), "input\n(the object's box)" if where.any()
                         else "input\n", 12, below=True)]
        for text, key in _columns(args):
            if key in kept:
                m = kept[key][args.show[n]].numpy()
                parts.append(caption(panels(image, m, (image.shape[0] * k, image.shape[1] * k))[2], text, 12,
                                     below=True))
        rows.append(_row(parts))
    Image.fromarray(caption(_col(rows), title, 14)).save(path)


def picture_clips(items: list, kept: dict, args: argparse.Namespace, title: str, path: str, frames: int = 4) -> None:
    """Per clip: a row of frames with the object's box, then a row per pictured choice of the maps over them."""
    blocks = []
    for n, (clip, where) in enumerate(items):
        picks = np.linspace(0, len(clip) - 1, frames).round().astype(int)
        k = 128 // clip.shape[1] if clip.shape[1] < 128 else 1
        size = (clip.shape[1] * k, clip.shape[2] * k)
        rows = [caption(_row([outlined(_big(clip[i], k), _big(where[i], k)) for i in picks]),
                        f"frames {', '.join(str(i + 1) for i in picks)}, object's box", 12)]
        for text, key in _columns(args):
            if key in kept:
                maps = kept[key][args.show[n]].numpy()
                rows.append(caption(_row([panels(clip[i], maps[i], size)[2] for i in picks]), text, 12))
        blocks.append(_col(rows))
    Image.fromarray(caption(_row(blocks, gap=12), title, 14)).save(path)


def _big(a: np.ndarray, k: int) -> np.ndarray:
    return a.repeat(k, 0).repeat(k, 1)


def _row(parts: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    h = max(p.shape[0] for p in parts)
    parts = [np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0))) for p in parts]
    sep = np.zeros((h, gap, 3), np.uint8)
    return np.concatenate([x for p in parts for x in (p, sep)][:-1], axis=1)


def _col(parts: Sequence[np.ndarray], gap: int = 4) -> np.ndarray:
    w = max(p.shape[1] for p in parts)
    parts = [np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0))) for p in parts]
    sep = np.zeros((gap, w, 3), np.uint8)
    return np.concatenate([x for p in parts for x in (p, sep)][:-1], axis=0)


# ------------------------------------------------------------------------------ checks on sets not chosen on
CONDITIONS = {  # name -> moving_shapes_item arguments (None: the run's own validation mp4 files, decoded)
    "data set": None,
    "panning background": dict(pan=True),   # the embedded set's clips, rendered: shapes and background move
    "still background": dict(pan=False),    # the shapes are the only motion
    "no shapes": dict(shapes=False),        # the panning background is the only motion (no masks to score)
}


def shapes(args: argparse.Namespace) -> dict:
    """Moving shapes: CAM mass on the shapes' masks over their area share, on the run's validation clips (trained
    and random weights) and, for the trained model, on the same clips rendered with one motion cue removed."""
    from torchvision import tv_tensors

    from core.video.config import VideoConfig
    from core.video.data import VideoDataset
    from core.video.lists import read_list_file
    from core.video.synthetic import CLASSES, ensure_moving_shapes, moving_shapes_item
    from core.video.transforms import build_video_transform

    loaded = load_model(args.checkpoint, VideoConfig)
    cfg, d = loaded.cfg, loaded.cfg.data
    # the embedded set, or a variant written by ensure_moving_shapes into data.root (e.g. pan=False)
    root = ensure_moving_shapes(d.root or None, num_train=d.num_train, num_val=d.num_val) \
        if d.dataset == "moving_shapes" else Path(d.root)
    gen = json.loads((root / ".complete.json").read_text())
    lines = [(e.path, e.label) for e in read_list_file(root / "val.txt")][:args.limit or None]
    ds = VideoDataset([(str(root / p), int(y)) for p, y in lines], CLASSES, clip_len=d.clip_len,
                      frame_interval=d.frame_interval, num_clips=1, test_mode=True)
    transform = build_video_transform("test", d.crop_size, None, 1)
    labels = torch.tensor([int(y) for _, y in lines])
    randoms = random_models(cfg, loaded.num_classes, args.seeds)
    rows, shown = [], None
    for cond, kw in CONDITIONS.items():
        if cond not in args.conditions:
            continue
        clips, masks, raws = [], [], []
        for i, (path, _) in enumerate(ds.samples):
            inds = ds.frame_indices(gen["num_frames"])[0]
            frames, m = moving_shapes_item("val", i, num_frames=gen["num_frames"], size=gen["size"], seed=gen["seed"],
                                           **(kw or {}))
            raw = ds.load_clips(path)[0] if kw is None else torch.from_numpy(frames[inds]).permute(0, 3, 1, 2)
            if raw.shape[-2:] != (d.crop_size, d.crop_size):
                raise SystemExit(f"frames {tuple(raw.shape[-2:])} are not the crop size {d.crop_size}: the masks "
                                 f"would need the crop geometry")
            clips.append(transform(tv_tensors.Video(raw))[0])
            masks.append(torch.from_numpy(m[inds]))
            raws.append(raw.permute(0, 2, 3, 1).numpy())
        scored = kw is None or kw.get("shapes", True)
        x, where = torch.stack(clips), torch.stack(masks).float()
        print(f"-- {cond}", flush=True)
        got, kept = measure(loaded.model, randoms if cond == "data set" else {}, x, where if scored else None,
                            labels, args, 25)
        rows += [{"condition": cond, **r} for r in got]
        if cond == "data set":
            shown = ([(raws[i], where[i].numpy()) for i in args.show], kept)
    if shown:
        picture_clips(*shown, args, f"moving shapes ({root.name}): val clips {', '.join(map(str, args.show))}, "
                                    f"the shapes' masks outlined", os.path.join(args.out, f"{args.name}.png"))
    return {"task": "moving_shapes", "checkpoint": os.path.relpath(args.checkpoint), "val_clips": len(lines),
            "data": gen, "view": "1 clip x 1 crop (centred)", "frames": d.clip_len, "frame_interval": d.frame_interval,
            "conditions": {k: v or "the data set's mp4 files, decoded" for k, v in CONDITIONS.items()
                           if k in args.conditions}, "rows": rows}


def digits(args: argparse.Namespace) -> dict:
    """The digits: the deletion test (no boxes), and the ripple, trained and random weights."""
    from core.classification.config import ClassificationConfig
    from core.classification.data import DigitsDataset

    loaded = load_model(args.checkpoint, ClassificationConfig)
    d, model = loaded.cfg.data, loaded.model
    val = DigitsDataset("val", img_size=d.img_size, val_fraction=d.val_fraction, in_chans=d.in_chans,
                        mean=tuple(d.mean), std=tuple(d.std))
    x, y = val.images[:args.limit or None], val.targets[:args.limit or None]
    rows, kept = measure(model, random_models(loaded.cfg, loaded.num_classes, args.seeds), x, None, y, args, 120)
    mean, std = torch.tensor(d.mean).view(-1, 1, 1), torch.tensor(d.std).view(-1, 1, 1)
    images = [(x[i] * std + mean).clamp(0, 1).mul(255).byte().permute(1, 2, 0).numpy() for i in args.show]
    picture_compare([(im, np.zeros(im.shape[:2])) for im in images], kept, args,
                    f"digits: val images {', '.join(map(str, args.show))} (labels "
                    f"{', '.join(str(int(y[i])) for i in args.show)})", os.path.join(args.out, f"{args.name}.png"))
    return {"task": "digits_deletion", "checkpoint": os.path.relpath(args.checkpoint), "val_images": len(x),
            "baseline": "grey (the normalisation mean)", "rows": rows}


# ------------------------------------------------------------------------------------------------------- main
TASKS = {"discs": discs, "objects": objects, "shapes": shapes, "digits": digits}


def parse_choice(text: str) -> tuple[str, int, str, float]:
    """``METHOD:STAGE:LAYER:SMOOTH`` (e.g. gradcam:2:output:0)."""
    method, stage, layer, smooth = (text.split(":") + ["", "", "", ""])[:4]
    return method, int(stage), layer or DEFAULT_LAYER, float(smooth or 0)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("make-sets", *TASKS))
    p.add_argument("--checkpoint", help="the trained run's best.pth (not for make-sets)")
    p.add_argument("--out", default=os.path.join(ROOT, "results", "explain"))
    p.add_argument("--name", default="", help="file names of the results (default: the task's name)")
    p.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++", "xgradcam", "hirescam", "layercam",
                                                      "eigencam"])
    p.add_argument("--stages", nargs="+", type=int, default=[], help="default: every stage of the model")
    p.add_argument("--layers", nargs="+", default=["output"], help="output and / or block (core.nn.cam.LAYERS)")
    p.add_argument("--smooths", nargs="+", type=float, default=[0.0, DEFAULT_SMOOTH, 1.0],
                   help="Gaussian sigmas in tokens of the stage")
    p.add_argument("--seeds", type=int, default=3, help="random-weight models")
    p.add_argument("--fraction", type=float, default=0.2, help="deletion test: share of the pixels greyed (0: off)")
    p.add_argument("--draws", type=int, default=3, help="deletion test: random deletions averaged")
    p.add_argument("--limit", type=int, default=0, help="the first N validation items only (0: all)")
    p.add_argument("--show", nargs="+", type=int, default=[0, 1, 2, 3], help="the validation items pictured")
    p.add_argument("--compare", nargs="*", type=parse_choice, default=None, metavar="METHOD:STAGE:LAYER:SMOOTH",
                   help="the maps pictured beside the defaults (default: the last stage's output, unsmoothed)")
    p.add_argument("--conditions", nargs="+", default=list(CONDITIONS), help="shapes: the conditions measured")
    args = p.parse_args(argv)
    if args.task == "make-sets":
        print(ensure_discs())
        print(ensure_moving_objects())
        return 0
    if not args.checkpoint:
        p.error(f"{args.task} needs --checkpoint")
    torch.set_grad_enabled(True)
    args.name = args.name or args.task
    probe = load_model(args.checkpoint, _schema(args.task)).model
    args.default = (default_method(probe.ndim), default_stage(probe), DEFAULT_LAYER, DEFAULT_SMOOTH)
    args.last_stage = len(probe.layers)
    if args.compare is None:                                   # the tools' default before issue 40
        args.compare = [("gradcam", args.last_stage, "output", 0.0)]
    args.keep = [("trained", *args.default), ("random", *args.default)] + [("trained", *c) for c in args.compare]
    for c in [args.default, *args.compare]:                    # the pictured choices are measured too
        args.methods += [c[0]] if c[0] not in args.methods else []
        args.layers += [c[2]] if c[2] not in args.layers else []
        args.smooths += [c[3]] if c[3] not in args.smooths else []
        args.stages += [c[1]] if args.stages and c[1] not in args.stages else []
    os.makedirs(args.out, exist_ok=True)
    out = TASKS[args.task](args)
    out = {**provenance(args), **out}
    write_json(os.path.join(args.out, f"{args.name}.json"), out)
    default = (args.default[0], args.default[1], args.default[2], args.default[3])
    Path(args.out, f"{args.name}.md").write_text(
        table(out["rows"] if args.task != "shapes" else [r for r in out["rows"] if r["condition"] == "data set"],
              default, f"{args.task}: {out['command']} (commit {out['commit']}, {out['date']}; {out['machine']}); "
                       f"the tools' default in bold"))
    print(f"wrote {os.path.join(args.out, args.name)}.json, .md and .png")
    return 0


def _schema(task: str) -> type:
    if task in ("discs", "digits"):
        from core.classification.config import ClassificationConfig
        return ClassificationConfig
    from core.video.config import VideoConfig
    return VideoConfig


if __name__ == "__main__":
    sys.exit(main())
