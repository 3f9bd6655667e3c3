"""Speed of ``video_swin.extract_features`` on the embedded moving-shapes clips: videos/s and the fraction of the
time the model waits for decoded data. ``python -m bench.extract_features [--workers 0 2] [--checkpoint PATH]``.

Without --checkpoint it times the embedded default model with fresh weights (the speed does not depend on
them). Prints one markdown table row per worker count, with the exact command.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from typing import Sequence

import torch

from core.engine.config import config_to_dict, load_config
from core.engine.device import resolve_amp
from core.engine.inference import load_model, pick_device
from core.engine.launch import build_model
from core.video.config import VideoConfig
from core.video.data import default_stride
from core.video.features import SlidingClips, extract, plan
from core.video.synthetic import ensure_moving_shapes
from video_swin import DEFAULT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="", help="default: the embedded default model with fresh weights")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers, one run each")
    p.add_argument("--chunk", type=int, default=8)
    p.add_argument("--num-videos", type=int, default=500, help="first N of the 500 embedded clips")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    root = ensure_moving_shapes()
    device = pick_device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint
        if not ckpt:
            cfg = load_config(DEFAULT_CONFIG, [], schema=VideoConfig)
            torch.manual_seed(0)
            ckpt = os.path.join(tmp, "fresh.pth")
            torch.save({"model": build_model(cfg, 4, initial_weights=False).state_dict(),
                        "config": config_to_dict(cfg)}, ckpt)
        loaded = load_model(ckpt, VideoConfig, need_head=False, device=device)
        d = loaded.cfg.data
        cmd = "python -m bench.extract_features " + shlex.join(argv if argv is not None else sys.argv[1:])
        print("| command | device | workers | videos | clips | videos/s | clips/s | model waits for data |")
        print("|---|---|---|---|---|---|---|---|")
        with torch.no_grad():  # warm-up outside the timings: first-call costs (kernel choice, mask caches)
            loaded.model(torch.zeros(args.chunk, 3, d.clip_len, d.crop_size, d.crop_size, device=device))
        for w in args.workers:
            job = plan(os.path.join(tmp, f"out{w}"), root=str(root))
            videos, outputs = job.videos[:args.num_videos], job.outputs[:args.num_videos]
            ds = SlidingClips(videos, d.clip_len, d.frame_interval, default_stride(d.clip_len, d.frame_interval),
                              args.chunk, d.crop_size)
            r = extract(loaded.model, ds, outputs, device, stage=len(loaded.model.layers), pooling="mean",
                        workers=w, amp_dtype=resolve_amp(loaded.cfg.train.amp, device))
            n = len(r["records"])
            print(f"| `{cmd.strip()}` | {device.type} ({torch.get_num_threads()} threads) | {w} | {n} | {r['clips']} | "
                  f"{n / r['seconds']:.1f} | {r['clips'] / r['seconds']:.1f} | "
                  f"{100 * r['data_wait_s'] / r['seconds']:.0f} % |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
