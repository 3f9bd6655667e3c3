"""Image classification entry point (one CPU, one GPU, or torchrun DDP).

    python -m core.train --config configs/swin/tiny_digits.yaml --opt train.epochs=5 optim.lr=1e-3
    torchrun --nproc_per_node 8 -m core.train --config configs/swin/swin_t_in1k.yaml --opt data.root=/data/in1k
"""
from __future__ import annotations

import sys
from typing import Any, Sequence

from .classification.config import ClassificationConfig
from .classification.data import build_image_datasets
from .classification.task import ClassificationTask, build_mixup, classification_loss
from .engine import ConfigError, build_model, launch
from .engine.data import build_loaders
from .engine.device import seed_everything
from .engine.distributed import DistInfo

__all__ = ["setup_classification", "main"]


def check_num_classes(cfg: Any, num_classes: int) -> None:
    """model.num_classes, when set, must equal the data's."""
    if cfg.model.num_classes and cfg.model.num_classes != num_classes:
        raise ConfigError(f"model.num_classes = {cfg.model.num_classes} but the dataset has {num_classes} "
                          f"classes (set model.num_classes=0 to take it from the data)")


def setup_classification(cfg: ClassificationConfig, info: DistInfo) -> tuple[ClassificationTask, Any, Any]:
    """Image datasets and loaders, the classifier (identical on every rank) and its task."""
    train_ds, val_ds, num_classes = build_image_datasets(cfg)
    check_num_classes(cfg, num_classes)
    train_loader, val_loader = build_loaders(cfg, train_ds, val_ds, info)
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    model = build_model(cfg, num_classes)
    seed_everything(cfg.train.seed + info.rank)  # distinct augmentation streams per rank
    mixup = build_mixup(cfg.aug, num_classes)
    return ClassificationTask(model, classification_loss(cfg.aug, mixup is not None), mixup, train_ds), \
        train_loader, val_loader


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=ClassificationConfig, setup=setup_classification, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
