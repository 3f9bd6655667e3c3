"""The classification recipe schema: the engine's root config plus image ``data`` and ``aug`` sections."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..engine.config import Config, ConfigError, LoaderConfig, check_registered, fld
from ..engine.data_fields import Normalize, ResizedCrop

__all__ = ["ShapesSet", "DataConfig", "AugConfig", "ClassificationConfig"]


@dataclass
class ShapesSet:
    """The embedded shapes set (``core.classification.shapes``): images per split and their difficulty."""
    num_train: int = fld(4000, ge=8, help="shapes: training images")
    num_val: int = fld(1000, ge=4, help="shapes: validation images")
    num_test: int = fld(1000, ge=4, help="shapes: test images")
    shapes: dict[str, Any] = fld({}, help="shapes: difficulty (num_classes, texture, scale, rotation, noise, "
                                           "polarity); see core.classification.shapes")


@dataclass
class DataConfig(LoaderConfig, Normalize, ResizedCrop, ShapesSet):
    """Image data: a registered image set (``core.classification.data.register_image_set``): an ImageFolder tree
    (root/train/<class>/*, root/val/<class>/*), the embedded digits or the generated shapes."""
    dataset: str = fld("imagefolder", help="a registered image set (core.classification.data.register_image_set)")
    root: str = ""
    train_split: str = "train"
    val_split: str = "val"
    img_size: int = fld(224, ge=1)
    in_chans: int = fld(3, ge=1)
    interpolation: str = "bicubic"
    crop_pct: float = fld(0.875, gt=0.0, le=1.0)
    verify_images: bool = fld(False, help="open every image once at start to drop unreadable files up front")
    val_fraction: float = fld(0.2, gt=0.0, lt=1.0, help="digits: held-out fraction")

    def check(self) -> None:
        from .data import image_set_names  # registers the embedded sets (it imports this module)
        check_registered("data.dataset", self.dataset, image_set_names(), "a registered image data set")


@dataclass
class AugConfig:
    """Training augmentation and target mixing (official Swin recipe defaults)."""
    auto_augment: str = fld("rand-m9-mstd0.5-inc1", help="timm auto-augment string, '' = off")
    color_jitter: float = fld(0.4, ge=0.0)
    reprob: float = fld(0.25, ge=0.0, le=1.0)
    remode: str = "pixel"
    recount: int = fld(1, ge=1)
    hflip: float = fld(0.5, ge=0.0, le=1.0)
    mixup: float = fld(0.8, ge=0.0, help="mixup alpha, 0 = off")
    cutmix: float = fld(1.0, ge=0.0, help="cutmix alpha, 0 = off")
    cutmix_minmax: list[float] | None = None
    mixup_prob: float = fld(1.0, ge=0.0, le=1.0)
    mixup_switch_prob: float = fld(0.5, ge=0.0, le=1.0)
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    label_smoothing: float = fld(0.1, ge=0.0, lt=1.0)

    @property
    def mixing(self) -> bool:
        """Mixup or CutMix is on."""
        return (self.mixup > 0 or self.cutmix > 0 or self.cutmix_minmax is not None) and self.mixup_prob > 0


@dataclass
class ClassificationConfig(Config):
    """Root of a classification recipe (images; Video Swin extends its data section)."""
    data: DataConfig = field(default_factory=DataConfig)
    aug: AugConfig = field(default_factory=AugConfig)

    def check(self) -> None:
        if self.aug.mixing and self.data.batch_size % 2:
            raise ConfigError(f"config value out of range: data.batch_size = {self.data.batch_size}, expected an even "
                              f"number when mixup/cutmix is on (aug.mixup={self.aug.mixup}, aug.cutmix={self.aug.cutmix})")
