"""Method-neutral config pieces of data sections (a section lists the pieces it needs, each field written once):
normalisation and the random-resized crop. Each piece checks its own fields. The video pieces (clip sampling, the
video source and its decoder) live in ``core.video.fields``: the engine never imports ``core.video``."""
from __future__ import annotations

from dataclasses import dataclass

from .config import ConfigError, fld

__all__ = ["Normalize", "ResizedCrop"]


@dataclass
class Normalize:
    """Per-channel normalisation (ImageNet's by default)."""
    mean: list[float] = fld([0.485, 0.456, 0.406])
    std: list[float] = fld([0.229, 0.224, 0.225])

    def check(self) -> None:
        if len(self.mean) != len(self.std):
            raise ConfigError(f"data.mean and data.std must have the same length, got {self.mean} and {self.std}")
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"config value out of range: data.std = {self.std}, expected all > 0")


@dataclass
class ResizedCrop:
    """RandomResizedCrop's area and aspect ranges for training views, and a horizontal flip."""
    scale: list[float] = fld([0.08, 1.0], help="RandomResizedCrop area range [lo, hi]")
    ratio: list[float] = fld([3 / 4, 4 / 3], help="RandomResizedCrop aspect range [lo, hi]")

    def check(self) -> None:
        if len(self.scale) != 2 or not 0 < self.scale[0] <= self.scale[1] <= 1:
            raise ConfigError(f"config value out of range: data.scale = {self.scale}, expected 0 < lo <= hi <= 1")
        if len(self.ratio) != 2 or not 0 < self.ratio[0] <= self.ratio[1]:
            raise ConfigError(f"config value out of range: data.ratio = {self.ratio}, expected 0 < lo <= hi")
