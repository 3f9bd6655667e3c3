"""Patch embedding, patch merging and the classifier head, for any number of spatial axes."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
from einops import rearrange

from .window import Size, crop, pad_to_multiple

_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *spatial) -> (B, *spatial, C)."""
    return x.permute(0, *range(2, x.ndim), 1)


def channels_first(x: torch.Tensor) -> torch.Tensor:
    """(B, *spatial, C) -> (B, C, *spatial)."""
    return x.permute(0, x.ndim - 1, *range(1, x.ndim - 1))


class PatchEmbed(nn.Module):
    """Non-overlapping patches (4x4 in 2D, 2x4x4 in 3D) projected to embed_dim; returns (B, *spatial, C).

    An input not divisible by the patch is zero-padded at its end (official detection/video code), or, with
    ``pad=False``, its remainder is dropped as a strided convolution does (torchvision's 2D model).
    """

    def __init__(self, patch_size: Size, in_chans: int = 3, embed_dim: int = 96,
                 norm_layer: type[nn.Module] | None = nn.LayerNorm, pad: bool = True) -> None:
        super().__init__()
        self.patch_size = tuple(patch_size)
        self.in_chans = in_chans
        self.pad = pad
        ndim = len(self.patch_size)
        self.proj = _CONV[ndim](in_chans, embed_dim, kernel_size=self.patch_size, stride=self.patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = pad_to_multiple(x, self.patch_size, channels_last=False)
        return self.norm(channels_last(self.proj(x)))


class PatchMerging(nn.Module):
    """Concatenate each group of neighbours (2x2 in 2D, 1x2x2 in 3D), LayerNorm, then a linear 4C -> 2C
    (with ``norm_after``: the linear, then LayerNorm on 2C, as Swin V2).

    Odd sizes are zero-padded first. Neighbours are concatenated with the first axis varying fastest,
    the order of the official code (x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2], x3 = [1::2, 1::2]).
    """

    def __init__(self, dim: int, factors: Size = (2, 2), out_dim: int | None = None,
                 norm_layer: type[nn.Module] = nn.LayerNorm, norm_after: bool = False) -> None:
        super().__init__()
        self.factors = tuple(factors)
        self.dim = dim
        group = math.prod(self.factors)
        self.out_dim = out_dim or 2 * dim
        self.norm_after = norm_after
        self.norm = norm_layer(self.out_dim if norm_after else group * dim)
        self.reduction = nn.Linear(group * dim, self.out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pad_to_multiple(x, self.factors)
        n = len(self.factors)
        s, f = [f"s{i}" for i in range(n)], [f"f{i}" for i in range(n)]
        pattern = (f"b {' '.join(f'({si} {fi})' for si, fi in zip(s, f))} c -> "
                   f"b {' '.join(s)} ({' '.join(reversed(f))} c)")  # first axis' offset varies fastest
        x = rearrange(x, pattern, **dict(zip(f, self.factors)))
        return self.norm(self.reduction(x)) if self.norm_after else self.reduction(self.norm(x))


class ClassifierHead(nn.Module):
    """Global average pool over all spatial axes, dropout, linear (the I3D head in 3D). Headless
    (``num_classes=0``): the pooled features, never dropped (the dropout belongs to the classifier).

    ``time_bins > 1`` (video): average over space only, pool the time axis into that many bins (adaptive average,
    so any clip length works) and put them side by side, so the classifier sees the order of events (speeding up
    vs slowing down) that a global average discards.
    """

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0, time_bins: int = 1) -> None:
        super().__init__()
        if not isinstance(time_bins, int) or time_bins < 1:
            raise ValueError(f"head_time_bins must be a positive integer, got {time_bins!r}")
        self.in_features, self.drop_rate, self.time_bins = in_features, drop_rate, time_bins
        self.out_features = in_features * time_bins                 # the pooled features' size (pre-logits)
        self.drop = nn.Dropout(drop_rate) if num_classes > 0 else nn.Identity()
        self.fc = nn.Linear(self.out_features, num_classes) if num_classes > 0 else nn.Identity()

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *spatial, C) -> (B, time_bins * C), the bins' features side by side, earliest first."""
        if self.time_bins == 1:
            return x.flatten(1, -2).mean(1)
        if x.ndim != 5:
            raise ValueError(f"head_time_bins={self.time_bins} pools the time axis of (B, T, H, W, C) video "
                             f"features, got shape {tuple(x.shape)}")
        x = x.mean((2, 3)).transpose(1, 2)                           # (B, C, T)
        return nn.functional.adaptive_avg_pool1d(x, self.time_bins).transpose(1, 2).flatten(1)

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(x)
        return x if pre_logits else self.fc(self.drop(x))


__all__ = ["PatchEmbed", "PatchMerging", "ClassifierHead", "channels_last", "channels_first", "crop"]
