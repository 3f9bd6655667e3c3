"""Embedded default video data set "moving shapes": real mp4 files, class = direction of motion.

A few random shapes (random kind, colour, size, start position, speed) drift left, right, up or down over a
random textured background and wrap around the borders, so no single frame tells the class; only motion does.
Written once with PyAV (libx264, yuv420p) into a cache folder, with mmaction2 list files and classes.txt.
Horizontal flip swaps left and right: train on it with ``hflip=0`` (see ``MOVING_SHAPES_RECIPE``).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["CLASSES", "MOVING_SHAPES_RECIPE", "default_cache_dir", "render_clip", "write_mp4",
           "ensure_moving_shapes"]

CLASSES = ("left", "right", "up", "down")
_VELOCITY = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}  # (dy, dx)
_MARKER = ".complete.json"
_VERSION = 2
# data-set arguments for build_video_dataset(root, root / "train.txt", split=..., **MOVING_SHAPES_RECIPE)
MOVING_SHAPES_RECIPE = dict(clip_len=8, frame_interval=2, crop_size=32, short_side=32, hflip=0.0, scale=(0.5, 1.0))


def default_cache_dir() -> Path:
    """$SWIN_SUITE_CACHE, else ~/.cache/swin_suite."""
    return Path(os.environ.get("SWIN_SUITE_CACHE") or Path.home() / ".cache" / "swin_suite")


def render_clip(rng: np.random.Generator, direction: str, num_frames: int = 16, size: int = 32) -> np.ndarray:
    """Frames (T, H, W, 3) uint8 of 2-4 shapes moving in ``direction`` over a random texture that pans with them.

    Everything wraps around, and start positions are uniform, so no single frame tells the direction.
    """
    coarse = rng.uniform(30, 225, (4, 4, 3))
    grid = np.linspace(0, 3, size)
    i0 = np.minimum(grid.astype(int), 2)
    w = (grid - i0)[:, None]
    rows = coarse[i0] * (1 - w[..., None]) + coarse[i0 + 1] * w[..., None]           # (size, 4, 3)
    bg = rows[:, i0] * (1 - w.T[..., None]) + rows[:, i0 + 1] * w.T[..., None]       # (size, size, 3)
    bg = bg + rng.normal(0, 10, bg.shape)
    n = int(rng.integers(2, 5))
    kinds = rng.integers(0, 3, n)                      # square, disc, diamond
    radius = rng.uniform(2.5, size / 6, n)
    colors = rng.uniform(0, 255, (n, 3))
    start = rng.uniform(0, size, (n, 2))              # (y, x), anywhere: frame 0 carries no class
    speed = rng.uniform(1.0, 2.5, n)
    vel = np.asarray(_VELOCITY[direction])[None] * speed[:, None]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    bg_step = np.asarray(_VELOCITY[direction], dtype=np.int64) * int(rng.integers(1, 3))  # pan 1-2 px/frame
    for t in range(num_frames):
        img = np.roll(bg, shift=tuple(t * bg_step), axis=(0, 1))
        for k in range(n):
            cy, cx = start[k] + t * vel[k]
            dy = (yy - cy + size / 2) % size - size / 2    # wrapped distances: shapes re-enter on the other side
            dx = (xx - cx + size / 2) % size - size / 2
            if kinds[k] == 0:
                mask = np.maximum(abs(dy), abs(dx)) <= radius[k]
            elif kinds[k] == 1:
                mask = dy * dy + dx * dx <= radius[k] ** 2
            else:
                mask = abs(dy) + abs(dx) <= radius[k] * 1.3
            img[mask] = colors[k]
        frames[t] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255)
    return frames


def write_mp4(path: str | os.PathLike, frames: np.ndarray, fps: int = 10, codec: str = "libx264",
              faststart: bool = False) -> None:
    """Encode (T, H, W, 3) uint8 RGB frames as a yuv420p mp4 with PyAV (one encoder thread)."""
    import av

    with av.open(str(path), mode="w", options={"movflags": "faststart"} if faststart else {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {"crf": "15", "preset": "veryfast"}
        else:
            stream.codec_context.qscale = 2
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        container.mux(stream.encode())


def _generate(out: Path, params: dict) -> None:
    """Write the clips, train.txt / val.txt, classes.txt and the completion marker into ``out``."""
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split_id, (split, count) in enumerate((("train", params["num_train"]), ("val", params["num_val"]))):
        lines = []
        for c in CLASSES:
            (out / split / c).mkdir(parents=True)
        for i in range(count):
            label = i % len(CLASSES)
            rng = np.random.default_rng([params["seed"], split_id, i])
            rel = f"{split}/{CLASSES[label]}/{i:05d}.mp4"
            write_mp4(out / rel, render_clip(rng, CLASSES[label], params["num_frames"], params["size"]),
                      codec=params["codec"])
            lines.append(f"{rel} {label}")
        (out / f"{split}.txt").write_text("\n".join(lines) + "\n")
    (out / _MARKER).write_text(json.dumps(params, sort_keys=True))


def ensure_moving_shapes(root: str | os.PathLike | None = None, *, num_train: int = 400, num_val: int = 100,
                         num_frames: int = 16, size: int = 32, seed: int = 0, codec: str | None = None) -> Path:
    """Generate the data set once (atomically, into a temp folder then renamed) and return its folder."""
    root = Path(root) if root is not None else default_cache_dir() / "moving_shapes"
    if codec is None:
        import av
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    params = dict(version=_VERSION, num_train=num_train, num_val=num_val, num_frames=num_frames, size=size,
                  seed=seed, codec=codec)
    if _check(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp-", dir=root.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private
    try:
        _generate(tmp, params)
        try:
            os.rename(tmp, root)
        except OSError:
            if not _check(root, params):  # not a concurrent generator that won the race
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _check(root: Path, params: dict) -> bool:
    """True if root holds a complete set made with params; raises if it holds something else."""
    if not root.exists():
        return False
    marker = root / _MARKER
    if not marker.is_file():
        raise FileExistsError(f"{root} exists but is not a complete moving-shapes data set; remove it")
    found = json.loads(marker.read_text())
    if found != params:
        raise ValueError(f"{root} was generated with {found}, not {params}; remove it or pass another root")
    return True
