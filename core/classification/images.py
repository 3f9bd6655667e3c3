"""Image files for the inference tools: a recipe's evaluation transform and class names, a readable-or-reported
file dataset and its collate."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from PIL import Image
from torch.utils.data import Dataset

from .config import ClassificationConfig
from .data import build_transform, image_set

__all__ = ["image_transform", "eval_crop_box", "recipe_classes", "ImageFiles", "collate_images"]


def image_transform(cfg: ClassificationConfig) -> Callable[[Image.Image], torch.Tensor]:
    """The recipe's evaluation transform of a file: its data set's own, else timm's resize + centre crop + normalise."""
    own = image_set(cfg).eval_transform
    return own(cfg) if own is not None else build_transform(cfg, train=False)


def eval_crop_box(cfg: ClassificationConfig, size: tuple[int, int]) -> tuple[tuple[int, int], int, int]:
    """Where :func:`image_transform`'s input comes from in an image of ``size`` (H, W): (the resized image's
    (H, W), top, left) of the img_size x img_size crop; digits: the whole image resized, no crop."""
    d = cfg.data
    if image_set(cfg).whole_image:
        return (d.img_size, d.img_size), 0, 0
    import math
    h, w = size
    scale = math.floor(d.img_size / d.crop_pct)          # timm: resize the short side, then centre crop
    rh, rw = (scale, int(scale * w / h)) if h <= w else (int(scale * h / w), scale)
    return (rh, rw), int(round((rh - d.img_size) / 2.0)), int(round((rw - d.img_size) / 2.0))


def recipe_classes(cfg: ClassificationConfig) -> list[str]:
    """Class names the recipe's data implies (e.g. digits 0-9, an ImageFolder's training class folders)."""
    names = image_set(cfg).classes
    return names(cfg) if names is not None else []


class ImageFiles(Dataset):
    """Image files as (tensor, index), or (None, index, error) for one that cannot be read."""

    def __init__(self, files: Sequence[str], transform: Callable[[Image.Image], torch.Tensor],
                 channels: int = 3) -> None:
        self.files, self.transform = list(files), transform
        self.mode = {1: "L", 3: "RGB"}.get(channels, "RGB")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Any, ...]:
        try:
            with Image.open(self.files[i]) as im:
                return self.transform(im.convert(self.mode)), i
        except Exception as e:  # noqa: BLE001 -- PIL raises many kinds on broken files
            return None, i, f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def collate_images(items: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """Stack readable images (``x``, ``index``); unreadable ones go to ``errors`` {index: message}."""
    good = [it for it in items if it[0] is not None]
    return {"x": torch.stack([it[0] for it in good]) if good else None,
            "index": torch.tensor([it[1] for it in good], dtype=torch.long),
            "errors": {it[1]: it[2] for it in items if it[0] is None}}
