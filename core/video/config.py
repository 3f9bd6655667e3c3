"""Video Swin recipe schema: the classification config with a video data section."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from core.classification.config import ClassificationConfig
from core.engine.config import ConfigError, LoaderConfig, check_registered, fld
from core.video.fields import ClipSampling, VideoSource
from core.video.sources import FOLDER, video_set_names


@dataclass
class VideoDataConfig(LoaderConfig, ClipSampling, VideoSource):
    """Kinetics-style clips (list file, official CSV or class folders) or the embedded moving-shapes set."""
    dataset: str = fld(FOLDER, help="kinetics = a folder of videos (list files, official CSVs or class folders), or "
                                    "a generated set (core.video.sources.register_generated)")
    backend: Literal["decord", "pytorchvideo"] = fld(
        "decord", help="decord: this suite's reader (SampleFrames frame indices); pytorchvideo: the same files through "
                       "pytorchvideo.data.LabeledVideoDataset (time-based clips of clip_len * frame_interval / fps s)")
    fps: float = fld(30.0, gt=0.0, help="pytorchvideo backend: frame rate that turns a clip's frames into seconds")
    ann_test: str = fld("", help="'' = ann_val")
    classes_file: str = fld("", help="list files: class names, one per line in label order ('' = a classes.txt "
                                     "beside the list file, else the label numbers)")
    num_clips: int = fld(4, ge=1, help="clips per video at test time")
    num_crops: int = fld(3, ge=1, le=3, help="spatial crops per clip at test time (1 or 3)")
    val_num_clips: int = fld(1, ge=1, help="clips per video for the per-epoch validation")
    crop_size: int = fld(224, ge=1)
    short_side: int = fld(256, ge=1, help="training short-side resize before the random-resized crop")
    scale: list[float] = fld([0.08, 1.0])
    hflip: float = fld(0.5, ge=0.0, le=1.0)
    single_frame: bool = fld(False, help="feed only the middle frame to a 2D model (the no-motion baseline)")
    batch_size: int = fld(8, ge=1, help="clips per process")
    num_workers: int = fld(4, ge=0)
    max_skipped_fraction: float = fld(
        0.5, ge=0.0, le=1.0, help="stop the run (data error, exit 2) when more than this fraction of an epoch's "
                                  "training videos, or of a validation pass, is unreadable; none readable always stops")

    def check(self) -> None:
        check_registered("data.dataset", self.dataset, video_set_names(), "a video data set (kinetics = a folder of "
                         "videos, or a generated set)")

    def decoding(self) -> dict:
        """VideoSource's reader arguments; no preload (decoded_cache_mb) under data.backend pytorchvideo."""
        return {**super().decoding(), **({"decoded_cache_mb": 0} if self.backend == "pytorchvideo" else {})}


@dataclass
class VideoConfig(ClassificationConfig):
    """Root of a Video Swin recipe."""
    data: VideoDataConfig = field(default_factory=VideoDataConfig)


def parse_views(text: str, cfg: VideoConfig) -> tuple[int, int]:
    """``--views``: '4x3' -> (4, 3) test clips x crops; '' -> the recipe's (data.num_clips, data.num_crops)."""
    if not text:
        return cfg.data.num_clips, cfg.data.num_crops
    m = re.fullmatch(r"(\d+)x([13])", text.strip())
    if not m or int(m.group(1)) < 1:
        raise ConfigError(f"--views {text!r}: expected CLIPSxCROPS with CROPS 1 or 3, e.g. 4x3")
    return int(m.group(1)), int(m.group(2))
