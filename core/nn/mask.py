"""The shifted-window attention mask, built once per (padded shape, window, shift, device) and cached (LRU)."""
from __future__ import annotations

from typing import Sequence

import torch

from .cache import cached_constant
from .window import window_partition

MASK_VALUE = -100.0  # the value used by the official code, timm and torchvision


def region_labels(size: Sequence[int], window: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    """Label every position of the (padded) grid by the region it came from before the cyclic shift.

    Along each axis the shifted grid has three regions: [0, S-w), [S-w, S-s) and [S-s, S); a position's
    label combines its region index on every axis.
    """
    labels = torch.zeros(tuple(size), dtype=torch.long)
    for axis, (s, w, sh) in enumerate(zip(size, window, shift)):
        axis_label = torch.zeros(s, dtype=torch.long)
        if sh > 0:
            axis_label[s - w:s - sh] = 1
            axis_label[s - sh:] = 2
        view = [1] * len(size)
        view[axis] = s
        labels = labels * 3 + axis_label.view(view)
    return labels


def shifted_window_mask(
        size: Sequence[int],
        window: Sequence[int],
        shift: Sequence[int],
        device: torch.device | str | None = None,
) -> torch.Tensor:
    """(num_windows, N, N) additive mask: 0 within a region, MASK_VALUE across regions.

    ``size`` is the padded spatial shape; windows and tokens follow window_partition's order.
    """
    key = (tuple(size), tuple(window), tuple(shift))
    return cached_constant("mask", key, lambda: _build(size, window, shift), device)


def _build(size: Sequence[int], window: Sequence[int], shift: Sequence[int]) -> torch.Tensor:
    labels = region_labels(size, window, shift)
    win = window_partition(labels[None, ..., None], window).squeeze(-1)  # (nW, N)
    return (win[:, :, None] != win[:, None, :]).float() * MASK_VALUE
