"""Train a classifier: ``swin-train`` (= ``python -m video_swin.train``, ``core.train``, ``swin_mlp.train``).

    swin-train                      # the embedded Video Swin default (configs/video_swin/tiny_moving_shapes.yaml)
    swin-train --config configs/swin/tiny_digits.yaml --opt train.epochs=5
    torchrun --nproc_per_node 8 -m cli.train --config configs/video_swin/swin_t_k400_1k.yaml --opt data.root=...

A recipe whose model is ``video_*`` trains on clips (Video Swin, Video Swin V2, Video Swin-MLP: mp4 / list files /
the Kinetics CSV), any other model on images (ImageFolder, digits). One CPU, one GPU or torchrun (DDP or FSDP),
with the engine's AMP, checkpoints and exact resume; ``--eval-only`` evaluates a run's best.pth.
"""
from __future__ import annotations

import sys
from typing import Sequence

from cli.recipes import recipe_model_name
from core.classification.build import setup_classification
from core.classification.config import ClassificationConfig
from core.engine import launch
from core.video.config import VideoConfig
from core.video.task import setup_video
from video_swin import DEFAULT_CONFIG

MLP_DEFAULT = "configs/swin_mlp/tiny_digits.yaml"


def main_video(argv: Sequence[str] | None = None) -> int:
    """Video classification; without --config the embedded default."""
    return launch(argv, schema=VideoConfig, setup=setup_video, description=__doc__, default_config=DEFAULT_CONFIG)


def main_image(argv: Sequence[str] | None = None) -> int:
    """Image classification (Swin, Swin V2, Swin-MLP); --config is required."""
    return launch(argv, schema=ClassificationConfig, setup=setup_classification, description=__doc__)


def main(argv: Sequence[str] | None = None) -> int:
    """Video or image classification, by the recipe's model name."""
    argv = sys.argv[1:] if argv is None else list(argv)
    name = recipe_model_name(argv)
    return main_image(argv) if name and not name.startswith("video_") else main_video(argv)


if __name__ == "__main__":
    sys.exit(main())
