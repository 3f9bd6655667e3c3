"""Config pieces of video data sections (a section lists the pieces it needs, each field written once): clip
sampling and the video source with its decoder. Each piece checks its own fields."""
from __future__ import annotations

from dataclasses import dataclass

from ..engine.config import ConfigError, fld
from .decoders import DECODERS

__all__ = ["ClipSampling", "VideoSource"]


@dataclass
class ClipSampling:
    """Frames of a clip: ``clip_len`` frames, ``frame_interval`` apart (mmaction2's SampleFrames)."""
    clip_len: int = fld(32, ge=1)
    frame_interval: int = fld(2, ge=1)


@dataclass
class VideoSource:
    """Where clips come from: a folder with list files / official CSVs / class folders, or a generated set."""
    root: str = fld("", help="video folder; a generated set: its cache folder ('' = ~/.cache/swin_suite/<set>)")
    root_val: str = fld("", help="folder of the validation/test videos when it differs from root (e.g. the CSV layout)")
    ann_train: str = fld("", help="list file (path label) or official CSV; '' = class folders under root/train")
    ann_val: str = ""
    num_train: int = fld(400, ge=8, help="generated sets: training clips")
    num_val: int = fld(100, ge=4, help="generated sets: validation clips")
    decoder: str = fld("decord", help="decord | pyav | torchcodec (core.video.decoders)")
    decode_short_side: int = fld(0, ge=0, help="decode frames larger than this straight to this short side (0 = "
                                               "full size); set it to the transform's short side to skip that work")
    decoded_cache_mb: int = fld(0, ge=0, help="decode each data set's videos once, at start in the main process, "
                                              "into up to this many MiB of shared memory (uint8) that the loader "
                                              "workers read; 0 = off. For small sets whose frames fit, not Kinetics; "
                                              "under DDP each rank holds its own copy; unused by data.backend "
                                              "pytorchvideo")

    def check(self) -> None:
        if self.decoder not in DECODERS:
            raise ConfigError(f"config value out of range: data.decoder = {self.decoder!r}, expected one of "
                              f"{sorted(DECODERS)}")

    def decoding(self) -> dict:
        """The reader's arguments (VideoDataset's decoder, decode_short_side and decoded_cache_mb)."""
        return {"decoder": self.decoder, "decode_short_side": self.decode_short_side,
                "decoded_cache_mb": self.decoded_cache_mb}
