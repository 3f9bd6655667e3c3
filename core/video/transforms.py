"""Video clip transforms (torchvision.transforms.v2) following the Video Swin / mmaction2 recipe.

Every transform takes one clip as a uint8 ``tv_tensors.Video`` of shape (T, C, H, W) and returns a float
tensor laid out (C, T, H, W) (train, single view) or (V, C, T, H, W) (evaluation, V spatial crops).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

__all__ = [
    "IMAGENET_MEAN_255", "IMAGENET_STD_255", "ThreeCrop", "ToCTHW",
    "video_train_transform", "video_eval_transform", "build_video_transform", "test_view_box",
]

IMAGENET_MEAN_255 = (123.675, 116.28, 103.53)
IMAGENET_STD_255 = (58.395, 57.12, 57.375)


class ThreeCrop(nn.Module):
    """Three crops along the long side (left/center/right, or top/center/bottom for portrait clips)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        h, w = video.shape[-2:]
        s = self.size
        if min(h, w) < s:
            raise ValueError(f"ThreeCrop({s}) needs a clip of at least {s}x{s}, got {h}x{w}")
        if w >= h:
            boxes = [((h - s) // 2, left) for left in (0, (w - s) // 2, w - s)]
        else:
            boxes = [(top, (w - s) // 2) for top in (0, (h - s) // 2, h - s)]
        crops = torch.stack([F.crop(video, top, left, s, s) for top, left in boxes])
        return tv_tensors.wrap(crops, like=video) if isinstance(video, tv_tensors.Video) else crops


class ToCTHW(nn.Module):
    """Swap (..., T, C, H, W) to (..., C, T, H, W) and drop the tv_tensor wrapper."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return video.as_subclass(torch.Tensor).transpose(-4, -3).contiguous()


def _normalize(mean: Sequence[float], std: Sequence[float]) -> list[nn.Module]:
    return [v2.ToDtype(torch.float32, scale=False), v2.Normalize(list(mean), list(std)), ToCTHW()]


def video_train_transform(
        crop_size: int = 224,
        short_side: int | tuple[int, int] = 256,
        scale: tuple[float, float] = (0.08, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip: float = 0.5,
        mean: Sequence[float] = IMAGENET_MEAN_255,
        std: Sequence[float] = IMAGENET_STD_255,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Short-side resize (an int, or a (min, max) range for scale jitter), random-resized crop, flip, normalise."""
    if isinstance(short_side, int):
        resize: nn.Module = v2.Resize(short_side)
    else:
        resize = v2.RandomShortestSize(list(range(short_side[0], short_side[1] + 1)))
    ops: list[nn.Module] = [resize, v2.RandomResizedCrop(crop_size, scale=scale, ratio=ratio)]
    if hflip > 0:
        ops.append(v2.RandomHorizontalFlip(hflip))
    return v2.Compose(ops + _normalize(mean, std))


def video_eval_transform(
        crop_size: int = 224,
        short_side: int | None = None,
        num_crops: int = 3,
        mean: Sequence[float] = IMAGENET_MEAN_255,
        std: Sequence[float] = IMAGENET_STD_255,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Short-side resize (default: to the crop size), then 1 center crop or 3 crops; returns (V, C, T, H, W)."""
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops}")
    crop = ThreeCrop(crop_size) if num_crops == 3 else v2.Compose([v2.CenterCrop(crop_size), _AddViewDim()])
    return v2.Compose([v2.Resize(short_side or crop_size), crop] + _normalize(mean, std))


class _AddViewDim(nn.Module):
    """Add a leading view dimension of size 1."""

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        out = video.unsqueeze(0)
        return tv_tensors.wrap(out, like=video) if isinstance(video, tv_tensors.Video) else out


def build_video_transform(
        split: str,
        crop_size: int = 224,
        short_side: int | tuple[int, int] | None = None,
        num_crops: int = 3,
        hflip: float = 0.5,
        scale: tuple[float, float] = (0.08, 1.0),
        mean: Sequence[float] = IMAGENET_MEAN_255,
        std: Sequence[float] = IMAGENET_STD_255,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Recipe transforms: train (resize 256, RRC, flip), val (resize 256, center crop), test (resize 224, 3 crops)."""
    eval_short = short_side if isinstance(short_side, int) else None
    if split == "train":
        return video_train_transform(crop_size, short_side or round(crop_size * 256 / 224), scale, hflip=hflip,
                                     mean=mean, std=std)
    if split == "val":
        return video_eval_transform(crop_size, eval_short or round(crop_size * 256 / 224), 1, mean, std)
    if split == "test":
        return video_eval_transform(crop_size, eval_short or crop_size, num_crops, mean, std)
    raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")


def test_view_box(size: tuple[int, int], crop_size: int, num_crops: int, crop: int,
                  short_side: int | None = None) -> tuple[tuple[int, int], int, int]:
    """Where crop ``crop`` of ``build_video_transform("test", crop_size, short_side, num_crops)`` comes from in
    frames of ``size`` (H, W): (the resized frame's (H, W), top, left)."""
    h, w = size
    s = short_side or crop_size
    rh, rw = (s, int(s * w / h)) if h <= w else (int(s * h / w), s)
    if num_crops == 1:
        return (rh, rw), int(round((rh - crop_size) / 2.0)), int(round((rw - crop_size) / 2.0))
    if rw >= rh:
        return (rh, rw), (rh - crop_size) // 2, (0, (rw - crop_size) // 2, rw - crop_size)[crop]
    return (rh, rw), (0, (rh - crop_size) // 2, rh - crop_size)[crop], (rw - crop_size) // 2
