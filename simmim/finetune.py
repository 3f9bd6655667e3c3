"""Fine-tune a SimMIM backbone: ``python -m simmim.finetune --config configs/simmim/<recipe>.yaml [--opt ...]``.

Image classification (``core.train``'s task) or, for a ``video_*`` model, Video Swin classification, from
``model.pretrained`` (our SimMIM checkpoint or the official one: encoder kept, decoder and mask token dropped,
a fresh head, bias tables resized to the new window) with layer-wise lr decay (``optim.layer_decay``).
``finetune.label_fraction`` keeps a stratified fraction of the training labels (the few-label comparisons);
leave ``model.pretrained`` empty for the same recipe from random weights.
"""
from __future__ import annotations

import logging
import math
import sys
from typing import Any, Sequence

import numpy as np
from torch.utils.data import Dataset, Subset

from core.classification.build import build_classification, check_num_classes
from core.classification.data import build_image_datasets
from core.classification.task import ClassificationTask
from core.engine import ConfigError, RunContext, launch
from core.engine.config import parse_overrides, read_recipe
from core.engine.data import DataError
from core.engine.launch import parse_args
from core.video.data import collate_videos
from core.video.datasets import run_datasets
from core.video.task import VideoClassificationTask

from .config import FinetuneSection, ImageFinetuneConfig, VideoFinetuneConfig

__all__ = ["label_subset", "setup_image_finetune", "setup_video_finetune", "main"]


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


def is_video_recipe(argv: Sequence[str] | None) -> bool:
    """Whether the recipe (with its --opt overrides) names a video model (``video_*``)."""
    args = parse_args(argv)
    try:
        tree = parse_overrides(args.opt, read_recipe(args.config))
    except ConfigError:
        return False  # launch() reports it
    name = (tree.get("model") or {}).get("name", "") if isinstance(tree.get("model"), dict) else ""
    return str(name).startswith("video_")


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if is_video_recipe(argv):
        return launch(argv, schema=VideoFinetuneConfig, setup=setup_video_finetune, description=__doc__)
    return launch(argv, schema=ImageFinetuneConfig, setup=setup_image_finetune, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
