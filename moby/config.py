"""MoBY recipe schemas: pretraining and the linear probe (the engine's root config plus ``data``, ``aug`` (BYOL
views), ``moby``, ``knn`` and ``probe``), and fine-tuning (the classification recipe)."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.classification.config import ClassificationConfig, ShapesSet
from core.engine.config import Config, ConfigError, LoaderConfig, check_registered, fld
from core.engine.data_fields import Normalize
from core.video.fields import ClipSampling, VideoSource
from core.video.sources import is_video_set, video_set_names

__all__ = ["MoBYDataConfig", "ViewAugConfig", "MoBYHeadConfig", "KNNConfig", "ProbeConfig", "MoBYConfig",
           "FinetuneConfig"]


@dataclass
class MoBYDataConfig(LoaderConfig, Normalize, ClipSampling, VideoSource, ShapesSet):
    """Images of a registered image set with raw labelled splits (ImageFolder root/train, root/val; the generated
    shapes) or clips (a video folder, or a generated set: moving shapes, spin/zoom, speed change, spiral)."""
    dataset: str = fld("imagefolder", help="a registered image set with raw splits "
                                           "(core.classification.data.register_image_set) or a video set "
                                           "(kinetics, core.video.sources.register_generated)")
    root: str = fld("", help="ImageFolder / video folder; generated clip sets: cache folder ('' = "
                             "~/.cache/swin_suite/<name>)")
    train_split: str = "train"
    val_split: str = fld("val", help="the labelled split the kNN monitor queries (its bank: the training split)")
    probe_split: str = fld("val", help="the held-out split the linear probe reports")
    img_size: int = fld(224, ge=1, help="crop size of a view (images and clips)")
    clip_len: int = fld(16, ge=1)
    num_train: int = fld(4000, ge=8, help="shapes and the generated clip sets: training items")
    num_val: int = fld(1000, ge=4, help="shapes and the generated clip sets: validation items")

    @property
    def video(self) -> bool:
        return is_video_set(self.dataset)

    def check(self) -> None:
        from core.classification.data import image_set_names  # registers the embedded image sets
        images = image_set_names(raw_splits=True)
        other = sorted(set(image_set_names()) - set(images))
        note = (f" ({self.dataset!r} is a registered image set without raw labelled splits, which MoBY draws its "
                f"views from)" if self.dataset in other else "")
        check_registered("data.dataset", self.dataset, images + video_set_names(), "a data set MoBY builds (an "
                         "image set with raw splits, or a video set)", note)


@dataclass
class ViewAugConfig:
    """BYOL's two asymmetric views (per-view pairs: [view 1, view 2]); a clip gets one draw for all its frames."""
    scale: list[float] = fld([0.08, 1.0])
    hflip: float = fld(0.5, ge=0.0, le=1.0)
    color_jitter: list[float] = fld([0.4, 0.4, 0.2, 0.1], help="brightness, contrast, saturation, hue")
    color_jitter_prob: float = fld(0.8, ge=0.0, le=1.0)
    grayscale_prob: float = fld(0.2, ge=0.0, le=1.0)
    blur_prob: list[float] = fld([1.0, 0.1])
    blur_sigma: list[float] = fld([0.1, 2.0], help="in pixels: BYOL's range for 224-pixel crops")
    solarize_prob: list[float] = fld([0.0, 0.2])

    def check(self) -> None:
        for name in ("blur_prob", "solarize_prob"):
            v = getattr(self, name)
            if len(v) != 2 or not all(0.0 <= p <= 1.0 for p in v):
                raise ConfigError(f"config value out of range: aug.{name} = {v}, expected two probabilities "
                                  f"[view 1, view 2]")
        if len(self.color_jitter) != 4:
            raise ConfigError(f"aug.color_jitter = {self.color_jitter}: expected [brightness, contrast, saturation, "
                              f"hue]")


@dataclass
class MoBYHeadConfig:
    """The method: projector / predictor sizes, queues, temperature, momentum schedule, target drop path."""
    proj_dim: int = fld(256, ge=1)
    hidden_dim: int = fld(4096, ge=1)
    queue_len: int = fld(4096, ge=1, help="keys per queue; a multiple of the global batch")
    temperature: float = fld(0.2, gt=0.0)
    momentum: float = fld(0.99, ge=0.0, le=1.0, help="base momentum, cosine-increased to 1 over training")
    target_drop_path: float = fld(0.0, ge=0.0, lt=1.0, help="drop path of the target (momentum) backbone")
    sync_bn: bool = fld(True, help="SyncBatchNorm in projector / predictor under DDP")
    reverse_negatives: bool = fld(False, help="clips: the target also embeds each key clip played backwards, an "
                                              "extra negative of the other view's query (same appearance, opposite "
                                              "motion: only the direction of time tells them apart); not enqueued")
    reverse_views: bool = fld(False, help="clips: the online encoder also embeds both clips played backwards, each a "
                                          "query of its own (positive: the other view's reversed key) and a negative "
                                          "of its forward embedding, gradients through both (implies "
                                          "reverse_negatives; twice the online compute)")


@dataclass
class KNNConfig:
    """The kNN monitor run every train.eval_interval epochs; its top-1 picks best.pth."""
    k: int = fld(20, ge=1)
    temperature: float = fld(0.07, gt=0.0)
    max_bank: int = fld(0, ge=0, help="use at most N training items as the bank (0 = all)")


@dataclass
class ProbeConfig:
    """Linear probe on cached features of the frozen backbone (python -m moby.linear)."""
    random_init: bool = fld(False, help="probe the backbone at random initialisation (the baseline) instead of "
                                        "model.pretrained")
    standardize: bool = fld(False, help="standardise features with the training split's mean and std")


@dataclass
class MoBYConfig(Config):
    """Root of a MoBY pretraining or linear-probe recipe."""
    data: MoBYDataConfig = field(default_factory=MoBYDataConfig)
    aug: ViewAugConfig = field(default_factory=ViewAugConfig)
    moby: MoBYHeadConfig = field(default_factory=MoBYHeadConfig)
    knn: KNNConfig = field(default_factory=KNNConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)

    def check(self) -> None:
        for name in ("reverse_negatives", "reverse_views"):
            if getattr(self.moby, name) and not self.data.video:
                raise ConfigError(f"moby.{name}=true needs clips (a video data.dataset), but data.dataset = "
                                  f"{self.data.dataset!r} gives images; set moby.{name}=false")


@dataclass
class FinetuneConfig(ClassificationConfig):
    """Root of a MoBY fine-tuning recipe (``moby.finetune``): the classification recipe, any registered image set
    (the embedded shapes among them), with the MoBY checkpoint as ``model.pretrained``."""
