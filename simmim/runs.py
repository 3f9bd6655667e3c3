"""SimMIM's runs: the pretraining setup and the fine-tuning setups (images or clips, a stratified fraction of the
labels); the commands are ``cli/pretrain.py`` and ``cli/finetune.py``."""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from core.classification.build import build_classification, check_num_classes
from core.classification.data import build_image_datasets
from core.classification.task import ClassificationTask
from core.engine import RunContext
from core.engine.data import DataError, build_loaders
from core.engine.device import rank_seeds
from core.video.data import collate_videos
from core.video.datasets import run_datasets
from core.video.task import VideoClassificationTask
from simmim.config import FinetuneSection, ImageFinetuneConfig, SimMIMConfig, VideoFinetuneConfig
from simmim.data import build_pretrain_datasets
from simmim.task import SimMIM, build_simmim

__all__ = ["DEFAULT_CONFIG", "setup_simmim", "label_subset", "setup_image_finetune",
           "setup_video_finetune"]

DEFAULT_CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "simmim" / "tiny_digits.yaml")


def setup_simmim(cfg: SimMIMConfig, run: RunContext) -> tuple[SimMIM, Any, Any]:
    """Datasets, loaders and the task (identical initial weights on every rank)."""
    collate = None
    if cfg.data.is_video:
        collate = collate_videos
    with rank_seeds(cfg.train.seed, run.info.rank):  # identical weights; distinct masks and augmentation per rank
        task = build_simmim(cfg, not run.continuing)  # checks sizes, patch and stride before any data is read
        train_ds, val_ds = build_pretrain_datasets(cfg)
        train_loader, val_loader = build_loaders(cfg, train_ds, val_ds, run.info, collate_fn=collate)
    return task, train_loader, val_loader





def _labels(ds: Dataset) -> np.ndarray:
    for attr in ("targets", "_labels"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr))
    raise DataError(f"{type(ds).__name__} exposes no labels (targets) for finetune.label_fraction")


def label_subset(ds: Dataset, ft: FinetuneSection) -> Dataset:
    """Keep ceil(fraction x n_c) random samples of every class c (seeded by finetune.label_seed)."""
    if ft.label_fraction >= 1.0:
        return ds
    labels = _labels(ds)
    rng = np.random.default_rng(ft.label_seed)
    keep = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        keep += sorted(rng.choice(idx, math.ceil(ft.label_fraction * len(idx)), replace=False).tolist())
    logging.getLogger("swin").info(f"finetune.label_fraction = {ft.label_fraction}: {len(keep)} of {len(labels)} "
                                   f"training labels kept ({len(np.unique(labels))} classes, label_seed "
                                   f"{ft.label_seed})")
    return Subset(ds, sorted(keep))


def setup_image_finetune(cfg: ImageFinetuneConfig, run: RunContext) -> tuple[ClassificationTask, Any, Any]:
    train_ds, val_ds, num_classes = build_image_datasets(cfg)
    check_num_classes(cfg, num_classes)
    return build_classification(cfg, run, label_subset(train_ds, cfg.finetune), val_ds, num_classes)


def setup_video_finetune(cfg: VideoFinetuneConfig, run: RunContext) -> tuple[Any, Any, Any]:
    d = cfg.data
    train_ds, val_ds, num_classes = run_datasets(cfg, run.output_dir)
    return build_classification(cfg, run, label_subset(train_ds, cfg.finetune), val_ds, num_classes,
                                task_cls=VideoClassificationTask, collate_fn=collate_videos,
                                clip_shape=(3, d.clip_len, d.crop_size, d.crop_size), single_frame=d.single_frame)
