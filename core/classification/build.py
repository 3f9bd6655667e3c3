"""The one setup every classification-style entry point shares: loaders, the model, per-rank seeds, mixup, the task."""
from __future__ import annotations

from typing import Any, Callable

from torch.utils.data import Dataset

from ..engine import ConfigError, build_model
from ..engine.data import build_loaders
from ..engine.device import seed_everything
from ..engine.distributed import DistInfo
from .task import ClassificationTask, build_mixup, classification_loss

__all__ = ["check_num_classes", "build_classification"]


def check_num_classes(cfg: Any, num_classes: int) -> None:
    """model.num_classes, when set, must equal the data's."""
    if cfg.model.num_classes and cfg.model.num_classes != num_classes:
        raise ConfigError(f"model.num_classes = {cfg.model.num_classes} but the dataset has {num_classes} "
                          f"classes (set model.num_classes=0 to take it from the data)")


def build_classification(cfg: Any, info: DistInfo, train_ds: Dataset | None, val_ds: Dataset | None,
                         num_classes: int, *, task_cls: type[ClassificationTask] = ClassificationTask,
                         loaders: Callable[..., tuple[Any, Any]] = build_loaders, collate_fn: Callable | None = None,
                         **task_kwargs: Any) -> tuple[ClassificationTask, Any, Any]:
    """Loaders, the classifier (identical on every rank, ``model.pretrained`` loaded), distinct augmentation
    streams per rank, mixup and ``task_cls(model, criterion, mixup, **task_kwargs)``."""
    check_num_classes(cfg, num_classes)
    extra = {"collate_fn": collate_fn} if collate_fn is not None else {}
    train_loader, val_loader = loaders(cfg, train_ds, val_ds, info, **extra)
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    model = build_model(cfg, num_classes)
    seed_everything(cfg.train.seed + info.rank)  # distinct augmentation streams per rank
    mixup = build_mixup(cfg.aug, num_classes)
    task = task_cls(model, classification_loss(cfg.aug, mixup is not None), mixup, **task_kwargs)
    return task, train_loader, val_loader
