"""SimMIM recipe schemas: pretraining (``data`` + ``mim`` sections) and fine-tuning (classification + ``finetune``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.classification.config import ClassificationConfig
from core.engine.config import Config, ConfigError, LoaderConfig, check_registered, fld
from core.engine.data_fields import Normalize, ResizedCrop
from core.video.config import VideoConfig
from core.video.fields import ClipSampling, VideoSource
from core.video.sources import is_video_set, video_set_names

from .target import check_target

__all__ = ["MIMConfig", "PretrainDataConfig", "SimMIMConfig", "FinetuneSection", "ImageFinetuneConfig",
           "VideoFinetuneConfig"]


@dataclass
class MIMConfig:
    """Masking and the prediction head."""
    mask_patch_size: int = fld(32, ge=1, help="side of a mask patch in pixels (a multiple of the model's patch)")
    mask_ratio: float = fld(0.6, gt=0.0, lt=1.0, help="fraction of mask patches masked (rounded up)")
    decoder_stride: int = fld(0, ge=0, help="0 = the backbone's spatial stride; otherwise it must equal it")
    eval_seed: int = fld(0, help="seed of the fixed validation masks")
    mask_mode: Literal["tube", "frame"] = fld(
        "tube", help="clips: tube = one spatial mask on every temporal patch; frame = an independent spatial mask "
                     "per temporal patch (a masked place is mostly visible in another frame); images: the same")
    mask_last: int = fld(0, ge=0, help="clips: also mask the last N temporal patches entirely (predict the future "
                                       "from the past: needs the direction of motion); 0 = off")
    target: Literal["pixels", "norm_pixels", "frame_diff", "flow", "pixels_flow"] = fld(
        "pixels", help="what is regressed at masked positions: pixels (SimMIM); norm_pixels = pixels normalised "
                       "per mask patch (MAE's norm_pix_loss); frame_diff = x[t+1] - x[t]; flow = dense optical "
                       "flow to the next frame, OpenCV's Farneback (clips only); pixels_flow = both")
    loss: Literal["l1", "l2"] = fld("l1", help="l1 (SimMIM) or l2 = squared error (MAE) on the masked positions; "
                                               "held-out skill is measured with the same error")
    flow_estimator: Literal["farneback", "dis"] = fld(
        "farneback", help="flow targets: OpenCV's estimator of the flow, farneback (polynomial expansion) or dis "
                          "(dense inverse search, ultrafast preset)")


@dataclass
class PretrainDataConfig(LoaderConfig, Normalize, ResizedCrop, ClipSampling, VideoSource):
    """Unlabelled images (a pretraining image set of ``simmim.data``: ImageFolder, digits, crops of the scikit-learn
    photos) or clips (Kinetics-style, or a generated set: moving shapes, spin/zoom, speed change, spiral); labels,
    where there are any, are ignored."""
    dataset: str = fld("imagefolder", help="a pretraining image set (simmim.data.register_pretrain_set) or a video "
                                           "set (kinetics, core.video.sources.register_generated)")
    root: str = fld("", help="image/video folder; generated clip sets: cache folder ('' = ~/.cache/swin_suite/<set>)")
    train_split: str = "train"
    val_split: str = "val"
    img_size: int = fld(192, ge=1, help="crop side (images and clips)")
    interpolation: str = "bicubic"
    scale: list[float] = fld([0.67, 1.0], help="RandomResizedCrop area range")
    ratio: list[float] = fld([0.75, 1.3333333], help="RandomResizedCrop aspect range (SimMIM's value)")
    hflip: float = fld(0.5, ge=0.0, le=1.0)
    val_fraction: float = fld(0.2, gt=0.0, lt=1.0, help="digits: held-out fraction")
    photo_scale: float = fld(0.5, gt=0.0, le=1.0, help="photos: downscale factor of the two photos before cropping")
    epoch_size: int = fld(2048, ge=1, help="photos: random crops per epoch")
    clip_len: int = fld(8, ge=1)
    short_side: int = fld(0, ge=0, help="clips: training short-side resize, 0 = img_size")

    @property
    def is_video(self) -> bool:
        return is_video_set(self.dataset)

    def check(self) -> None:
        from .data import PRETRAIN_SETS  # registers the image sets (it imports this module)
        check_registered("data.dataset", self.dataset, [*PRETRAIN_SETS, *video_set_names()],
                         "a SimMIM pretraining set (an image set of simmim.data, or a video set)")

    @property
    def input_size(self) -> tuple[int, ...]:
        s = (self.img_size, self.img_size)
        return (self.clip_len, *s) if self.is_video else s


@dataclass
class SimMIMConfig(Config):
    """Root of a SimMIM pretraining recipe."""
    data: PretrainDataConfig = field(default_factory=PretrainDataConfig)
    mim: MIMConfig = field(default_factory=MIMConfig)

    def check(self) -> None:
        if self.model.num_classes:
            raise ConfigError(f"model.num_classes = {self.model.num_classes}: the SimMIM encoder is headless, "
                              f"expected 0")
        try:
            check_target(self.mim.target, self.data.input_size)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.mim.mask_last and not self.data.is_video:
            raise ConfigError(f"mim.mask_last = {self.mim.mask_last} hides the last temporal patches of a clip, but "
                              f"data.dataset = {self.data.dataset!r} gives images; set mim.mask_last=0")


@dataclass
class FinetuneSection:
    """Fine-tuning extras: a labelled subset (the clip set is data.dataset, a generated set or a folder)."""
    label_fraction: float = fld(1.0, gt=0.0, le=1.0, help="keep this fraction of the training labels per class")
    label_seed: int = fld(0, help="seed of the labelled subset")


@dataclass
class ImageFinetuneConfig(ClassificationConfig):
    finetune: FinetuneSection = field(default_factory=FinetuneSection)


@dataclass
class VideoFinetuneConfig(VideoConfig):
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
