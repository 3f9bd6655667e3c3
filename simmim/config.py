"""SimMIM recipe schemas: pretraining (``data`` + ``mim`` sections) and fine-tuning (classification + ``finetune``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.classification.config import ClassificationConfig
from core.engine.config import Config, ConfigError, LoaderConfig, fld
from core.video.config import VideoConfig

__all__ = ["MIMConfig", "PretrainDataConfig", "SimMIMConfig", "FinetuneSection", "ImageFinetuneConfig",
           "VideoFinetuneConfig", "VIDEO_SETS"]

VIDEO_SETS = ("moving_shapes", "spin_zoom", "kinetics")


@dataclass
class MIMConfig:
    """Masking and the prediction head."""
    mask_patch_size: int = fld(32, ge=1, help="side of a mask patch in pixels (a multiple of the model's patch)")
    mask_ratio: float = fld(0.6, gt=0.0, lt=1.0, help="fraction of mask patches masked (rounded up)")
    decoder_stride: int = fld(0, ge=0, help="0 = the backbone's spatial stride; otherwise it must equal it")
    eval_seed: int = fld(0, help="seed of the fixed validation masks")


@dataclass
class PretrainDataConfig(LoaderConfig):
    """Unlabelled images (ImageFolder, digits, crops of the scikit-learn photos) or clips (Kinetics-style,
    the generated moving-shapes and spin/zoom sets); labels, where there are any, are ignored."""
    dataset: Literal["imagefolder", "digits", "photos", "moving_shapes", "spin_zoom", "kinetics"] = "imagefolder"
    root: str = fld("", help="image/video folder; generated clip sets: cache folder ('' = ~/.cache/swin_suite/<set>)")
    root_val: str = fld("", help="validation videos when they live elsewhere")
    train_split: str = "train"
    val_split: str = "val"
    ann_train: str = fld("", help="video list file or official CSV; '' = class folders under root/train")
    ann_val: str = ""
    img_size: int = fld(192, ge=1, help="crop side (images and clips)")
    interpolation: str = "bicubic"
    scale: list[float] = fld([0.67, 1.0], help="RandomResizedCrop area range")
    ratio: list[float] = fld([0.75, 1.3333333], help="RandomResizedCrop aspect range")
    hflip: float = fld(0.5, ge=0.0, le=1.0)
    mean: list[float] = fld([0.485, 0.456, 0.406])
    std: list[float] = fld([0.229, 0.224, 0.225])
    val_fraction: float = fld(0.2, gt=0.0, lt=1.0, help="digits: held-out fraction")
    photo_scale: float = fld(0.5, gt=0.0, le=1.0, help="photos: downscale factor of the two photos before cropping")
    epoch_size: int = fld(2048, ge=1, help="photos: random crops per epoch")
    clip_len: int = fld(8, ge=1)
    frame_interval: int = fld(2, ge=1)
    short_side: int = fld(0, ge=0, help="clips: training short-side resize, 0 = img_size")
    num_train: int = fld(400, ge=8, help="generated clip sets: training clips")
    num_val: int = fld(100, ge=4, help="generated clip sets: validation clips")

    @property
    def is_video(self) -> bool:
        return self.dataset in VIDEO_SETS

    @property
    def input_size(self) -> tuple[int, ...]:
        s = (self.img_size, self.img_size)
        return (self.clip_len, *s) if self.is_video else s

    def check(self) -> None:
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ConfigError(f"data.mean / data.std must have the same length and std > 0, got {self.mean} / "
                              f"{self.std}")
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError(f"config value out of range: data.scale = {self.scale}, expected 0 < lo <= hi <= 1")


@dataclass
class SimMIMConfig(Config):
    """Root of a SimMIM pretraining recipe."""
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    mim: MIMConfig = field(default_factory=MIMConfig)

    def check(self) -> None:
        if self.model.num_classes:
            raise ConfigError(f"model.num_classes = {self.model.num_classes}: the SimMIM encoder is headless, "
                              f"expected 0")


@dataclass
class FinetuneSection:
    """Fine-tuning extras: a labelled subset, and the generated spin/zoom clip set."""
    label_fraction: float = fld(1.0, gt=0.0, le=1.0, help="keep this fraction of the training labels per class")
    label_seed: int = fld(0, help="seed of the labelled subset")
    spin_zoom: bool = fld(False, help="video: generate the spin/zoom set and train on it (data.root = its folder)")


@dataclass
class ImageFinetuneConfig(ClassificationConfig):
    finetune: FinetuneSection = field(default_factory=FinetuneSection)


@dataclass
class VideoFinetuneConfig(VideoConfig):
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
