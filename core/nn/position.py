"""Relative position index and bias tables for N-d windows: their size, the window a table was made for, resizing
and embedding them (what the model and the weight converters share)."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .cache import cached_constant


def table_size(window: Sequence[int]) -> int:
    """Entries of the bias table: prod(2 * w - 1), e.g. (2M-1)^2 in 2D, (2D-1)(2H-1)(2W-1) in 3D."""
    return math.prod(2 * w - 1 for w in window)


def infer_table_window(table: torch.Tensor, model_window: Sequence[int]) -> tuple[int, ...] | None:
    """The window a bias table was made for, square in the last two axes, keeping the model's leading (temporal)
    axes; None when the table fits no such window."""
    lead = model_window[:-2]
    lead_size = math.prod(2 * w - 1 for w in lead)
    if table.shape[0] % lead_size:
        return None
    side = math.isqrt(table.shape[0] // lead_size)
    if side * side * lead_size != table.shape[0] or side % 2 == 0:
        return None
    return tuple(lead) + ((side + 1) // 2,) * 2


def relative_position_index(
        window: Sequence[int],
        table_window: Sequence[int] | None = None,
        device: torch.device | str | None = None,
) -> torch.Tensor:
    """(N, N) index into a bias table made for ``table_window``, for token pairs of ``window``.

    ``window`` may be smaller than ``table_window`` along any axis (a window shrunk to a small input); the
    offsets are then looked up at their true place in the full table.
    """
    table_window = tuple(table_window or window)
    key = (tuple(window), table_window)
    return cached_constant("relative_position_index", key, lambda: _build(window, table_window), device)


def _build(window: Sequence[int], table_window: Sequence[int]) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(*[torch.arange(w) for w in window], indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]  # (ndim, N, N)
    index = torch.zeros(rel.shape[1:], dtype=torch.long)
    for axis, tw in enumerate(table_window):  # mixed radix over the offsets (2 * tw - 1 per axis)
        index = index * (2 * tw - 1) + rel[axis] + tw - 1
    return index


def resize_bias_table(table: torch.Tensor, old_window: Sequence[int], new_window: Sequence[int]) -> torch.Tensor:
    """Resize a (prod(2w-1), heads) table to another window: bicubic in 2D, trilinear in 3D (official fine-tuning)."""
    old = [2 * w - 1 for w in old_window]
    new = [2 * w - 1 for w in new_window]
    if old == new:
        return table
    heads = table.shape[1]
    grid = table.T.reshape(1, heads, *old).float()
    mode = {1: "linear", 2: "bicubic", 3: "trilinear"}[len(old)]
    out = F.interpolate(grid, size=new, mode=mode, align_corners=False)
    return out.reshape(heads, -1).T.contiguous().to(table.dtype)


def embed_bias_table(table: torch.Tensor, small_window: Sequence[int], window: Sequence[int]) -> torch.Tensor:
    """Place the table of a window shrunk to a small input (timm builds those) at its offsets in the full table.

    Exact: every offset of the small window keeps its value; offsets it cannot have are zero (never read at
    the size the small window was made for).
    """
    heads = table.shape[1]
    grid = table.T.reshape(heads, *[2 * s - 1 for s in small_window])
    pad: list[int] = []
    for s, w in zip(reversed(small_window), reversed(window)):
        pad += [w - s, w - s]
    return F.pad(grid, pad).reshape(heads, -1).T.contiguous()
