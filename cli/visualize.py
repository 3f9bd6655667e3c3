"""Reconstruction picture: ``python -m simmim.visualize CHECKPOINT IMAGE_OR_VIDEO --out recon.png``.

Columns: the original, the masked input (masked patches grey), the reconstruction (predicted pixels in the
masked patches, the input elsewhere) and the raw prediction; one row for an image, a few frames of a clip.
A ``norm_pixels`` prediction is shown with each mask patch's true mean and spread put back (as MAE's demo); a
``frame_diff`` run shows the true and the predicted frame difference x[t+1] - x[t] around grey instead.
CHECKPOINT is a SimMIM run's ``last.pth`` / ``best.pth`` (the recipe is read from it; a video is read by its
``data.decoder``, or ``--decoder``). Without an image or video, ``photo:china`` / ``photo:flower`` name
scikit-learn's sample photographs.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from core.engine.checkpoint import CheckpointError
from core.engine.config import ConfigError
from core.engine.data import DataError
from simmim.pictures import load_input, load_task, reconstruction_figure
from simmim.target import DESCRIPTIONS


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("input", help="image, video, or photo:china / photo:flower")
    p.add_argument("--out", default="recon.png")
    p.add_argument("--size", type=int, nargs=2, metavar=("H", "W"), help="input size (default: the recipe's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask")
    p.add_argument("--frames", type=int, default=4, help="clips: frames shown")
    p.add_argument("--decoder", default=None, help="clips: decord | pyav | torchcodec (default: the recipe's "
                                                   "data.decoder)")
    args = p.parse_args(argv)
    try:
        task, cfg = load_task(args.checkpoint, args.size)
        size = args.size or (cfg.data.img_size, cfg.data.img_size)
        x, mean, std = load_input(args.input, cfg, size, args.decoder)
        res = reconstruction_figure(task, x, mean, std, args.out, args.seed, args.frames,
                                    title=os.path.basename(args.input))
    except (ConfigError, DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    what, trivial = DESCRIPTIONS[task.target]
    print(f"wrote {args.out}: {what} L1 {res['l1']:.4f}, {trivial} {res['l1_trivial']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
