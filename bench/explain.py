"""Do the class-activation maps mean something? Two measurements (issue 27), written to results/explain/.

``python -m bench.explain shapes --checkpoint RUN/best.pth``: on the moving-shapes validation clips (one centred
clip, one crop each), the share of each clip's CAM mass that falls on the moving shapes over the shapes' share of
the area (1 = no preference; the masks are regenerated from the data set's random stream), for the trained model
and for random-weight models of the same recipe (``--seeds``), per method and stage.

``python -m bench.explain digits --checkpoint RUN/best.pth``: deletion test on the digits validation images:
the predicted class's probability before and after replacing the top-20 % CAM pixels, or 20 % random pixels
(``--draws`` draws), by the normalisation mean (grey, 0 after normalising) or by the background (black).

Each writes ``<out>/<task>.json`` (the rows, with the command, commit and machine) and a picture ``<task>.png``.
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

from core.engine.files import write_json
from core.engine.inference import load_model
from core.engine.launch import build_model
from core.nn.cam import caption, class_activation_maps, overlay, upscale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def provenance(args: argparse.Namespace) -> dict:
    """Command, commit, machine and library versions of this measurement."""
    import importlib.metadata as md

    def git(*a: str) -> str:
        return subprocess.run(["git", "-C", ROOT, *a], capture_output=True, text=True).stdout.strip()
    return {"command": "python -m bench.explain " + " ".join(sys.argv[1:]),
            "commit": git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "--", "core",
                                                                            "bench", "video_swin") else ""),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, OMP_NUM_THREADS="
                       f"{os.environ.get('OMP_NUM_THREADS', '')}, {platform.python_implementation()} "
                       f"{platform.python_version()}",
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


# --------------------------------------------------------------------------------------------- moving shapes
CONDITIONS = {  # name -> moving_shapes_item arguments (None: the run's own validation mp4 files, decoded)
    "data set": None,
    "panning background": dict(pan=True),   # the embedded set's clips, rendered: shapes and background move
    "still background": dict(pan=False),    # the shapes are the only motion
    "no shapes": dict(shapes=False),        # the panning background is the only motion (no masks to score)
}


def shapes(args: argparse.Namespace) -> dict:
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
    lines = [(e.path, e.label) for e in read_list_file(root / "val.txt")]
    ds = VideoDataset([(str(root / p), int(y)) for p, y in lines], CLASSES, clip_len=d.clip_len,
                      frame_interval=d.frame_interval, num_clips=1, test_mode=True)
    transform = build_video_transform("test", d.crop_size, None, 1)
    inputs: dict[str, tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]] = {}
    for cond, kw in CONDITIONS.items():
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
            raws.append(raw)
        inputs[cond] = torch.stack(clips), torch.stack(masks).float(), raws
    labels = torch.tensor([int(y) for _, y in lines])
    models = {"trained": loaded.model}
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        models[f"random (seed {seed})"] = build_model(cfg, loaded.num_classes, initial_weights=False).eval()
    rows, shown = [], []
    for cond, (x, mask, raws) in inputs.items():
        area = mask.mean(dim=(1, 2, 3))                                   # shapes' share of each clip's area
        for method in args.methods:
            for stage in args.stages:
                for name, model in models.items():
                    if cond != "data set" and name != "trained":
                        continue
                    maps, logits, _ = maps_in_batches(model, x, 25, method=method, stage=stage)
                    row = {"condition": cond, "model": name, "method": method, "stage": stage,
                           "top1": float((logits.argmax(-1) == labels).float().mean() * 100), "clips": len(x)}
                    line = f"{cond:>16} {method:>10} stage {stage} {name:>16}: top-1 {row['top1']:3.0f}%"
                    if CONDITIONS[cond] is None or CONDITIONS[cond].get("shapes", True):
                        on = (maps * mask).sum(dim=(1, 2, 3)) / maps.sum(dim=(1, 2, 3)).clamp_min(1e-12)
                        ratio = (on / area).numpy()
                        row.update(mass_over_area_mean=float(ratio.mean()),
                                   mass_over_area_median=float(np.median(ratio)),
                                   clips_above_1=float((ratio > 1).mean()), clips_at_least_2=float((ratio >= 2).mean()),
                                   shape_area_share=float(area.mean()))
                        line += (f", CAM mass on shapes / their area: mean {ratio.mean():.2f} median "
                                 f"{np.median(ratio):.2f}, >1 in {100 * (ratio > 1).mean():.0f}% of clips")
                    rows.append(row)
                    print(line, flush=True)
                    if (method, stage) == args.picture and \
                            name in ("trained", "random (seed 0)") and cond in ("data set", args.also_show):
                        shown.append((f"{cond}: {name}", raws[args.show], mask[args.show], maps[args.show]))
    picture_shapes(shown, f"val clip {args.show} ({lines[args.show][0]}), {args.picture[0]} "
                          f"stage {args.picture[1]}", os.path.join(args.out, f"{args.name or 'moving_shapes'}.png"))
    return {"task": "moving_shapes", "checkpoint": os.path.relpath(args.checkpoint), "val_clips": len(lines),
            "data": gen,
            "view": "1 clip x 1 crop (centred)", "frames": d.clip_len, "frame_interval": d.frame_interval,
            "conditions": {k: v or "the data set's mp4 files, decoded" for k, v in CONDITIONS.items()}, "rows": rows}


def outlined(frame: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The frame with the mask's border in white."""
    f = frame.copy()
    m = mask > 0
    f[m & ~(np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1))] = (255, 255, 255)
    return f


def picture_shapes(shown: list, title: str, path: str) -> None:
    """Per shown (condition, model): a row of 4 frames with the shapes outlined, then the heatmap over them."""
    strips = []
    for text, raw, mask, cam in shown:
        frames = raw.permute(0, 2, 3, 1).numpy()
        picks = np.linspace(0, len(frames) - 1, 4).round().astype(int)
        pics = [outlined(frames[i], mask[i].numpy()) for i in picks] + \
               [overlay(frames[i], cam[i].numpy()) for i in picks]
        gap = np.zeros((128, 4, 3), np.uint8)
        strip = np.concatenate([p for pic in pics for p in (upscale(pic, 128), gap)][:-1], axis=1)
        strips.append(caption(strip, f"{text} (frames {', '.join(map(str, picks))}: shapes outlined, then heatmap)"))
    Image.fromarray(caption(np.concatenate(strips, axis=0), f"moving shapes, {title}")).save(path)


# --------------------------------------------------------------------------------------------------- digits
def digits(args: argparse.Namespace) -> dict:
    from core.classification.config import ClassificationConfig
    from core.classification.data import DigitsDataset

    loaded = load_model(args.checkpoint, ClassificationConfig)
    d, model = loaded.cfg.data, loaded.model
    val = DigitsDataset("val", img_size=d.img_size, val_fraction=d.val_fraction, in_chans=d.in_chans,
                        mean=tuple(d.mean), std=tuple(d.std))
    x, y = val.images, val.targets
    black = torch.tensor([(0 - m) / s for m, s in zip(d.mean, d.std)]).view(1, -1, 1, 1)
    baselines = {"mean (grey)": torch.zeros(1, x.shape[1], 1, 1), "background (black)": black}
    g = torch.Generator().manual_seed(0)
    n_pix = x.shape[-2] * x.shape[-1]
    k = int(round(args.fraction * n_pix))

    @torch.no_grad()
    def prob(inp: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        return model(inp).softmax(-1).gather(1, cls[:, None])[:, 0]

    def delete(where: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        keep = torch.ones(len(x), n_pix)
        keep.scatter_(1, where, 0.0)
        keep = keep.view(len(x), 1, *x.shape[-2:])
        return x * keep + base * (1 - keep)

    rows, shown = [], None
    for method in args.methods:
        for stage in args.stages:
            maps, logits, targets = maps_in_batches(model, x, 120, method=method, stage=stage)
            cls = torch.tensor(targets)
            p0 = prob(x, cls)
            top = maps.flatten(1).argsort(dim=1, descending=True)[:, :k]
            for bname, base in baselines.items():
                p_cam = prob(delete(top, base), cls)
                p_rand = torch.stack([prob(delete(torch.rand(len(x), n_pix, generator=g).argsort(1)[:, :k], base), cls)
                                      for _ in range(args.draws)]).mean(0)
                drop_cam, drop_rand = (p0 - p_cam), (p0 - p_rand)
                rows.append({"method": method, "stage": stage, "baseline": bname, "fraction": args.fraction,
                             "top1": float((logits.argmax(-1) == y).float().mean() * 100),
                             "prob_before": float(p0.mean()), "prob_after_top_cam": float(p_cam.mean()),
                             "prob_after_random": float(p_rand.mean()), "drop_top_cam": float(drop_cam.mean()),
                             "drop_random": float(drop_rand.mean()),
                             "images_cam_drop_larger": float((drop_cam > drop_rand).float().mean()),
                             "images": len(x), "random_draws": args.draws})
                r = rows[-1]
                print(f"{method:>10} stage {stage} {bname:>18}: p {r['prob_before']:.3f} -> top-CAM "
                      f"{r['prob_after_top_cam']:.3f} (drop {r['drop_top_cam']:.3f}), random "
                      f"{r['prob_after_random']:.3f} (drop {r['drop_random']:.3f}); CAM drop larger on "
                      f"{100 * r['images_cam_drop_larger']:.0f}% of images", flush=True)
            if (method, stage) == args.picture:
                shown = (maps, targets, top, method, stage)
    picture_digits(x, y, shown, d, baselines["mean (grey)"], os.path.join(args.out, f"{args.name or 'digits'}.png"))
    return {"task": "digits_deletion", "checkpoint": os.path.relpath(args.checkpoint), "val_images": len(x),
            "pixels": n_pix, "deleted_pixels": k, "rows": rows}


def picture_digits(x: torch.Tensor, y: torch.Tensor, shown: tuple, d, grey: torch.Tensor, path: str) -> None:
    """Eight validation digits: the image, its heatmap, the image with its top-20 % CAM pixels greyed."""
    maps, targets, top, method, stage = shown
    mean, std = torch.tensor(d.mean).view(-1, 1, 1), torch.tensor(d.std).view(-1, 1, 1)

    def rgb(t: torch.Tensor) -> np.ndarray:
        return (t * std + mean).clamp(0, 1).mul(255).byte().permute(1, 2, 0).numpy()

    cols = []
    for i in range(8):
        img = rgb(x[i])
        keep = torch.ones(x.shape[-2] * x.shape[-1])
        keep[top[i]] = 0
        keep = keep.view(1, *x.shape[-2:])
        gone = rgb(x[i] * keep + grey[0] * (1 - keep))
        col = np.concatenate([upscale(p, 96) for p in (img, overlay(img, maps[i].numpy()), gone)], axis=0)
        cols.append(caption(col, f"is {int(y[i])}, cam of {targets[i]}"))
        cols.append(np.zeros((cols[-1].shape[0], 4, 3), np.uint8))
    sheet = caption(np.concatenate(cols[:-1], axis=1),
                    f"digits: image / {method} stage {stage} / top-20% CAM pixels removed (grey)")
    Image.fromarray(sheet).save(path)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", choices=("shapes", "digits"))
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", default=os.path.join(ROOT, "results", "explain"))
    p.add_argument("--methods", nargs="+", default=["gradcam", "gradcam++", "hirescam", "layercam", "eigencam"])
    p.add_argument("--stages", nargs="+", type=int, default=[1, 2])
    p.add_argument("--seeds", type=int, default=3, help="shapes: random-weight models")
    p.add_argument("--picture", default="", metavar="METHOD:STAGE",
                   help="the maps pictured (default: the first method at the last stage given)")
    p.add_argument("--show", type=int, default=1, help="shapes: the validation clip pictured")
    p.add_argument("--also-show", default="still background", help="shapes: a condition pictured too")
    p.add_argument("--fraction", type=float, default=0.2, help="digits: share of the pixels removed")
    p.add_argument("--name", default="", help="file names of the results (default: moving_shapes / digits)")
    p.add_argument("--draws", type=int, default=5, help="digits: random deletions averaged per image")
    args = p.parse_args(argv)
    method, _, stage = (args.picture or f"{args.methods[0]}:{args.stages[-1]}").partition(":")
    args.picture = (method, int(stage or args.stages[-1]))
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(True)
    out = shapes(args) if args.task == "shapes" else digits(args)
    name = args.name or ("moving_shapes" if args.task == "shapes" else "digits")
    write_json(os.path.join(args.out, f"{name}.json"), {**provenance(args), **out})
    print(f"wrote {os.path.join(args.out, name)}.json and .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
