"""Train Video Swin: ``python -m video_swin.train [--config configs/video_swin/<recipe>.yaml] [--opt k=v ...]``.

Without --config it trains the embedded default (configs/video_swin/tiny_moving_shapes.yaml): a generated set
of real mp4 clips whose label is the direction of motion, decoded by decord like any Kinetics video.
Runs on one CPU, one GPU or many through torchrun (DDP), with the engine's AMP, checkpoints and resume.
"""
from __future__ import annotations

import sys
from typing import Sequence

from core.engine import launch
from core.video.config import VideoConfig
from core.video.task import setup_video

from . import DEFAULT_CONFIG


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=VideoConfig, setup=setup_video, description=__doc__, default_config=DEFAULT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
