"""Fine-tune a pretrained backbone: ``swin-finetune --config configs/simmim/<recipe>.yaml [--opt ...]``
(= ``python -m simmim.finetune``; ``python -m moby.finetune`` for the MoBY recipes on the embedded shapes).

Image classification or, for a ``video_*`` model, Video Swin classification, from ``model.pretrained`` (our SimMIM
or MoBY checkpoint, the official ones, or registered weights by name: encoder kept, decoder / projector dropped, a
fresh head, bias tables resized to the new window) with layer-wise lr decay (``optim.layer_decay``).
``finetune.label_fraction`` keeps a stratified fraction of the training labels (the few-label comparisons); leave
``model.pretrained`` empty for the same recipe from random weights.
"""
from __future__ import annotations

import sys
from typing import Sequence

from cli.recipes import recipe_model_name
from core.engine import launch
from moby.config import FinetuneConfig
from moby.runs import setup_finetune
from simmim.config import ImageFinetuneConfig, VideoFinetuneConfig
from simmim.runs import setup_image_finetune, setup_video_finetune


def main(argv: Sequence[str] | None = None) -> int:
    """Clips for a ``video_*`` model, else images."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if recipe_model_name(argv).startswith("video_"):
        return launch(argv, schema=VideoFinetuneConfig, setup=setup_video_finetune, description=__doc__)
    return launch(argv, schema=ImageFinetuneConfig, setup=setup_image_finetune, description=__doc__)


def main_moby(argv: Sequence[str] | None = None) -> int:
    """The MoBY fine-tuning recipes (the embedded shapes among the image sets)."""
    return launch(argv, schema=FinetuneConfig, setup=setup_finetune, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
