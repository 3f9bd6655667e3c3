"""The one setup every classification-style entry point shares: loaders, the model, per-rank seeds, mixup, the task."""
from __future__ import annotations

from typing import Any, Callable

from torch.utils.data import Dataset

from ..engine import ConfigError, RunContext, build_model
from ..engine.data import build_loaders
from ..engine.device import rank_seeds
from .task import ClassificationTask, build_mixup, classification_loss

__all__ = ["check_num_classes", "dataset_classes", "build_classification", "setup_classification"]


def check_num_classes(cfg: Any, num_classes: int) -> None:
    """model.num_classes, when set, must equal the data's."""
    if cfg.model.num_classes and cfg.model.num_classes != num_classes:
        raise ConfigError(f"model.num_classes = {cfg.model.num_classes} but the dataset has {num_classes} "
                          f"classes (set model.num_classes=0 to take it from the data)")


def dataset_classes(ds: Any) -> list[str] | None:
    """The class names of a data set, seen through Subset-like wrappers (``.dataset``)."""
    while ds is not None and not hasattr(ds, "classes"):
        ds = getattr(ds, "dataset", None)
    classes = getattr(ds, "classes", None)
    return list(classes) if classes else None


def build_classification(cfg: Any, run: RunContext, train_ds: Dataset | None, val_ds: Dataset | None,
                         num_classes: int, *, task_cls: type[ClassificationTask] = ClassificationTask,
                         loaders: Callable[..., tuple[Any, Any]] = build_loaders, collate_fn: Callable | None = None,
                         **task_kwargs: Any) -> tuple[ClassificationTask, Any, Any]:
    """Loaders, the classifier (identical on every rank, ``model.pretrained`` loaded), distinct augmentation
    streams per rank, mixup and ``task_cls(model, criterion, mixup, **task_kwargs)``."""
    check_num_classes(cfg, num_classes)
    extra = {"collate_fn": collate_fn} if collate_fn is not None else {}
    train_loader, val_loader = loaders(cfg, train_ds, val_ds, run.info, **extra)
    with rank_seeds(cfg.train.seed, run.info.rank):
        model = build_model(cfg, num_classes, initial_weights=not run.continuing)
    mixup = build_mixup(cfg.aug, num_classes)
    task = task_cls(model, classification_loss(cfg.aug, mixup is not None), mixup, **task_kwargs)
    task.classes = dataset_classes(train_ds) or dataset_classes(val_ds)
    return task, train_loader, val_loader


def setup_classification(cfg: Any, run: RunContext) -> tuple[ClassificationTask, Any, Any]:
    """Image datasets and loaders, the classifier (identical on every rank) and its task."""
    from .data import build_image_datasets
    train_ds, val_ds, num_classes = build_image_datasets(cfg)
    return build_classification(cfg, run, train_ds, val_ds, num_classes, train_set=train_ds)
