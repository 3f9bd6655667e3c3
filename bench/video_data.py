"""Clips/s of the video training pipeline (decode + sample + augment), per decoder, on web-like files and after
``video_swin.prepare``: ``python -m bench.video_data [--sizes 1280x720 340x256] [--videos 4] [--workers 0 2]``.

Web-like files: 10 s at 30 fps, H.264 with a keyframe every 250 frames (as downloaded videos come), textured
moving content. Each row times one pass over the videos (``--repeat`` passes, median) of the Video Swin training
recipe's item: one clip of 32 frames every 2, short-side resize to 256 (a range for scale jitter is not used),
random-resized crop 224, flip, normalise; ``decode only`` rows time the decoder alone. The last column is the number
of such processes that would feed Video Swin-T training on an H100 (57.6 clips/s of 32x224x224, results/h100).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

H100_CLIPS_PER_S = 57.6


def write_web_video(path: Path, width: int, height: int, seconds: float = 10.0, fps: int = 30, keyint: int = 250,
                    seed: int = 0) -> None:
    """A textured scene panning and a bright square moving, H.264 yuv420p with sparse keyframes."""
    import av
    rng = np.random.default_rng(seed)
    tex = rng.integers(0, 255, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    tex = np.kron(tex, np.ones((8, 8, 1), np.uint8))
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"crf": "23", "preset": "veryfast", "x264-params": f"keyint={keyint}:min-keyint={keyint}:scenecut=0"}
        s.codec_context.thread_count = 1
        for t in range(int(seconds * fps)):
            dy, dx = t % 8, (2 * t) % 8
            f = np.ascontiguousarray(tex[dy:dy + height, dx:dx + width])
            y, x = (t * 3) % max(1, height - 40), (t * 5) % max(1, width - 40)
            f[y:y + 40, x:x + 40] = 255
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())


def _dataset(paths: Sequence[str], decoder: str, decode_short_side: int):
    from core.video.data import VideoDataset
    from core.video.transforms import build_video_transform
    return VideoDataset([(p, 0) for p in paths], ["x"], clip_len=32, frame_interval=2, num_clips=1,
                        transform=build_video_transform("train", 224, 256), decoder=decoder,
                        decode_short_side=decode_short_side)


def time_pipeline(paths: Sequence[str], decoder: str, decode_short_side: int, workers: int, repeat: int) -> float:
    """Clips/s of the training item over ``paths`` (a DataLoader with ``workers`` processes; 0 = this process)."""
    from torch.utils.data import DataLoader

    from core.video.data import collate_videos
    ds = _dataset(paths, decoder, decode_short_side)
    times = []
    for r in range(repeat + 1):  # the first pass warms up (imports, caches) and is not timed
        loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate_videos)
        t = time.perf_counter()
        n = sum(1 for b in loader if b["video"] is not None)
        if r:
            times.append(time.perf_counter() - t)
    return n / float(np.median(times))


def time_decode(paths: Sequence[str], decoder: str, decode_short_side: int, repeat: int) -> float:
    """Clips/s of the decoder alone (the same 32 sampled frames)."""
    from core.video.data import sample_frame_indices
    from core.video.decoders import open_video
    times = []
    for r in range(repeat + 1):
        g = torch.Generator().manual_seed(r)
        t = time.perf_counter()
        for p in paths:
            v = open_video(p, decoder=decoder, short_side=decode_short_side)
            v.get(sample_frame_indices(v.num_frames, 32, 2, 1, False, generator=g))
        if r:
            times.append(time.perf_counter() - t)
    return len(paths) / float(np.median(times))


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=["1280x720", "340x256"])
    p.add_argument("--videos", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    p.add_argument("--decoders", nargs="+", default=["decord", "pyav"])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="", help="JSON lines appended here")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    from core.video.prepare import prepare
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "torch": torch.__version__}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in a.sizes:
            w, h = map(int, size.split("x"))
            raw = Path(tmp) / f"raw_{size}"
            raw.mkdir()
            for i in range(a.videos):
                write_web_video(raw / f"v{i}.mp4", w, h, seed=i)
            rels = [f"v{i}.mp4" for i in range(a.videos)]
            t = time.perf_counter()
            prepare(raw, Path(tmp) / f"prep_{size}", rels, short_side=256, keyint=8, workers=1)
            prep_s = time.perf_counter() - t
            sets = {"raw": [str(raw / r) for r in rels],
                    "prepared": [str(Path(tmp) / f"prep_{size}" / r) for r in rels]}
            for files, paths in sets.items():
                for decoder in a.decoders:
                    for dss in (0, 256):
                        if files == "prepared" and dss:
                            continue  # already at short side 256
                        row = {"size": size, "files": files, "decoder": decoder, "decode_short_side": dss,
                               "decode_clips_per_s": time_decode(paths, decoder, dss, a.repeat)}
                        for wk in a.workers:
                            row[f"pipeline_clips_per_s_w{wk}"] = time_pipeline(paths, decoder, dss, wk, a.repeat)
                        best = max(v for k, v in row.items() if k.startswith("pipeline"))
                        per_proc = row.get("pipeline_clips_per_s_w0", best)
                        row["processes_per_h100"] = H100_CLIPS_PER_S / per_proc
                        row.update(prepare_s_per_video=prep_s / a.videos, commit=commit, **machine)
                        rows.append(row)
                        print(json.dumps(row), flush=True)
    cmd = " ".join(argv if argv is not None else sys.argv[1:])
    print(f"\n`OMP_NUM_THREADS=1 python -m bench.video_data {cmd}`".replace(" `", "`") + "\n")
    print("| size | files | decoder | decode-time short side | decode only (clips/s) | "
          + " | ".join(f"pipeline, {w} workers" for w in a.workers) + " | processes per H100 |")
    print("|---" * (6 + len(a.workers)) + "|")
    for r in rows:
        print(f"| {r['size']} | {r['files']} | {r['decoder']} | {r['decode_short_side'] or '-'} | "
              f"{r['decode_clips_per_s']:.2f} | " + " | ".join(f"{r[f'pipeline_clips_per_s_w{w}']:.2f}"
                                                      for w in a.workers) + f" | {r['processes_per_h100']:.0f} |")
    if a.out:
        with open(a.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
