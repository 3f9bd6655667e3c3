"""N-dimensional window helpers: padding, cyclic shift, window partition and reverse.

All functions take channels-last tensors of shape (B, *spatial, C) with any number of spatial axes
(2 for images, 3 for video) and a window / shift size per axis.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from einops import rearrange

Size = tuple[int, ...]


def to_tuple(value: int | Sequence[int], ndim: int, name: str = "value") -> Size:
    """Broadcast an int to an ndim-tuple, or check a sequence has ndim entries."""
    if isinstance(value, int):
        return (value,) * ndim
    value = tuple(int(v) for v in value)
    if len(value) != ndim:
        raise ValueError(f"{name} must have {ndim} entries (one per spatial axis), got {value}")
    return value


def window_and_shift(size: Sequence[int], window: Size, shift: Size, shrink: bool = True) -> tuple[Size, Size]:
    """The window and shift used at this input size.

    Along an axis where the input is no larger than the window, the shift is dropped, and with ``shrink``
    the window shrinks to the input (official Video Swin / detection rule); torchvision's 2D model keeps the window.
    """
    ws = tuple(s if (shrink and s <= w) else w for s, w in zip(size, window))
    ss = tuple(0 if s <= w else sh for s, w, sh in zip(size, window, shift))
    return ws, ss


def padded_size(size: Sequence[int], multiple: Sequence[int]) -> Size:
    """Round every axis up to a multiple."""
    return tuple(math.ceil(s / m) * m for s, m in zip(size, multiple))


def pad_spatial(x: torch.Tensor, before: Sequence[int], after: Sequence[int],
                channels_last: bool = True) -> torch.Tensor:
    """Zero-pad the spatial axes of (B, *spatial, C) (or (B, C, *spatial)): ``before[i]`` at the start and
    ``after[i]`` at the end of axis i."""
    if not any(before) and not any(after):
        return x
    pad: list[int] = [0, 0] if channels_last else []
    for b, a in zip(reversed(before), reversed(after)):
        pad += [b, a]
    return F.pad(x, pad)


def pad_to_multiple(x: torch.Tensor, multiple: Sequence[int], channels_last: bool = True) -> torch.Tensor:
    """Zero-pad the spatial axes of (B, *spatial, C) (or (B, C, *spatial)) at their end up to a multiple."""
    size = x.shape[1:-1] if channels_last else x.shape[2:]
    target = padded_size(size, multiple)
    return pad_spatial(x, (0,) * len(size), [t - s for s, t in zip(size, target)], channels_last)


def crop(x: torch.Tensor, size: Sequence[int], start: Sequence[int] | None = None) -> torch.Tensor:
    """Crop the spatial axes of (B, *spatial, C) to size, from ``start`` (default: the origin)."""
    start = start or (0,) * len(size)
    if tuple(x.shape[1:-1]) == tuple(size):
        return x
    return x[(slice(None),) + tuple(slice(b, b + s) for b, s in zip(start, size))].contiguous()


def cyclic_shift(x: torch.Tensor, shift: Sequence[int], inverse: bool = False) -> torch.Tensor:
    """Roll (B, *spatial, C) by -shift (towards the origin) per axis, or by +shift when inverse."""
    if not any(shift):
        return x
    sign = 1 if inverse else -1
    return torch.roll(x, shifts=tuple(sign * s for s in shift), dims=tuple(range(1, len(shift) + 1)))


def _axes(n: int, prefix: str) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def window_partition(x: torch.Tensor, window_size: Sequence[int]) -> torch.Tensor:
    """(B, *spatial, C) -> (B * num_windows, prod(window_size), C), windows and their tokens in raster order."""
    g, w = _axes(len(window_size), "g"), _axes(len(window_size), "w")
    pattern = f"b {' '.join(f'({gi} {wi})' for gi, wi in zip(g, w))} c -> (b {' '.join(g)}) ({' '.join(w)}) c"
    return rearrange(x, pattern, **dict(zip(w, window_size)))


def window_reverse(windows: torch.Tensor, window_size: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """(B * num_windows, prod(window_size), C) -> (B, *size, C); inverse of window_partition."""
    g, w = _axes(len(window_size), "g"), _axes(len(window_size), "w")
    pattern = f"(b {' '.join(g)}) ({' '.join(w)}) c -> b {' '.join(f'({gi} {wi})' for gi, wi in zip(g, w))} c"
    grid = {gi: s // wi_size for gi, s, wi_size in zip(g, size, window_size)}
    return rearrange(windows, pattern, **dict(zip(w, window_size)), **grid)
