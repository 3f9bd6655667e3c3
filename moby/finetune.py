"""Fine-tune a pretrained backbone: ``python -m moby.finetune --config configs/moby/<recipe>.yaml
--opt model.pretrained=RUN/best.pth``.

The classification task of the engine (``core.train``) with the MoBY checkpoint as ``model.pretrained`` (loaded by
``core.load_pretrained``: our export or the official Transformer-SSL layout; the classifier head is new) and
layer-wise lr decay (``optim.layer_decay``). Adds the embedded shapes set to the image data sets. A Video Swin
pretrained on clips fine-tunes with ``python -m video_swin.train --opt model.pretrained=RUN/best.pth``, or on a
fraction of the labels (``finetune.label_fraction``) with ``python -m simmim.finetune --config
configs/simmim/tiny_spin_zoom_ft.yaml --opt model.pretrained=RUN/best.pth`` (any video recipe of that command).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

import torch
from torchvision.transforms import v2

from core.classification.build import build_classification
from core.classification.config import ClassificationConfig, DataConfig
from core.classification.data import ImageSet, build_image_datasets, register_image_set
from core.classification.shapes import ShapesDataset
from core.classification.task import ClassificationTask
from core.engine import ConfigError, RunContext, launch
from core.engine.config import fld

__all__ = ["FinetuneConfig", "setup_finetune", "main"]


@dataclass
class FinetuneDataConfig(DataConfig):
    """The classification data section plus the embedded shapes set (``num_train`` / ``num_val`` images)."""
    dataset: Literal["imagefolder", "digits", "shapes"] = "imagefolder"
    num_train: int = fld(4000, ge=8)
    num_val: int = fld(1000, ge=4)
    val_split: str = "val"
    shapes: dict[str, Any] = fld({}, help="shapes: difficulty (num_classes, texture, scale, rotation, noise); "
                                           "see core.classification.shapes")


@dataclass
class FinetuneConfig(ClassificationConfig):
    data: FinetuneDataConfig = field(default_factory=FinetuneDataConfig)


def _shapes(cfg: FinetuneConfig) -> tuple[Any, Any, int]:
    """Shapes train / val sets: random-resized crop and flip for training, the plain image for evaluation."""
    d = cfg.data
    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(d.mean), list(d.std))]
    train_tf = v2.Compose([v2.RandomResizedCrop(d.img_size, scale=(0.5, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(cfg.aug.hflip), *norm])
    train = ShapesDataset("train", num=d.num_train, size=d.img_size, seed=cfg.train.seed, transform=train_tf,
                         **d.shapes)
    val = ShapesDataset(d.val_split, num=d.num_val, size=d.img_size, seed=cfg.train.seed,
                        transform=v2.Compose(norm),
                        **d.shapes)
    return train, val, train.num_classes


register_image_set("shapes", ImageSet(_shapes))  # the embedded shapes, for recipes of this command


def setup_finetune(cfg: FinetuneConfig, run: RunContext) -> tuple[ClassificationTask, Any, Any]:
    """The classification setup with a required pretrained backbone."""
    if not cfg.model.pretrained and not run.continuing:
        raise ConfigError("model.pretrained is empty: fine-tuning needs a pretrained checkpoint, e.g. --opt "
                          "model.pretrained=outputs/moby_tiny_shapes/latest/best.pth")
    train_ds, val_ds, num_classes = build_image_datasets(cfg)
    # load_pretrained: the head is new, reported in the log
    return build_classification(cfg, run, train_ds, val_ds, num_classes, train_set=train_ds)


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=FinetuneConfig, setup=setup_finetune, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
