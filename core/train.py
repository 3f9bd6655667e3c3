"""Image classification entry point (one CPU, one GPU, or torchrun DDP).

    python -m core.train --config configs/swin/tiny_digits.yaml --opt train.epochs=5 optim.lr=1e-3
    torchrun --nproc_per_node 8 -m core.train --config configs/swin/swin_t_in1k.yaml --opt data.root=/data/in1k
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

from .classification.build import build_classification
from .classification.config import ClassificationConfig
from .classification.data import build_image_datasets
from .classification.task import ClassificationTask
from .engine import RunContext, launch

__all__ = ["setup_classification", "main"]


def setup_classification(cfg: ClassificationConfig, run: RunContext) -> tuple[ClassificationTask, Any, Any]:
    """Image datasets and loaders, the classifier (identical on every rank) and its task."""
    train_ds, val_ds, num_classes = build_image_datasets(cfg)
    return build_classification(cfg, run, train_ds, val_ds, num_classes, train_set=train_ds)


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=ClassificationConfig, setup=setup_classification, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
