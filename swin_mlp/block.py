"""The Swin-MLP block: core's Swin block with window attention replaced by a per-head spatial MLP.

Token mixing inside a window of N = prod(window) tokens is one learned N x N matrix per head, shared by that
head's C / nH channels (the official code stores it as a grouped kernel-1 ``nn.Conv1d`` named ``spatial_mlp``,
weight ``(nH*N, N, 1)``, groups = nH; the same parameter here, applied as one batched matmul).

Shifted blocks do not roll: the map is zero-padded by (window - shift) before and shift after along each axis,
partitioned, mixed and cropped back, so the zero tokens take part in the MLP and no mask is needed.

Any input size. The weights fix the window, so unlike attention's it cannot shrink to a small map; the map
is padded instead, as official Swin detection code pads for attention:
  1. the map is zero-padded at its end (bottom/right) to a multiple of the window;
  2. along an axis no larger than the window (before step 1) the shift is dropped, with its padding;
     along the other axes a shifted block then pads (window - shift) before and shift after.
Wherever the official classifier runs (every stage a multiple of the window, e.g. 256 / window 8, 224 / 7) and
its min(H, W) <= window rule meets ours (square maps), this is its forward exactly. Where it would build a
smaller window for a map smaller than the window, zero padding acts as the top-left block of our bigger weight,
which is where ``swin_mlp.convert.embed_window`` puts such a checkpoint's weight (exact for the square maps
the official code runs there). On a map with one side <= window < the other, the official rule drops both
shifts, ours only that side's (per axis, like core and Video Swin).

Cost: on an h x w map (the map as padded above, so (h + M) x (w + M) for a shifted block of an M-divisible map)
the spatial MLP takes M^2 * h * w * C multiply-accumulates (N^2 per window and channel, hw / N windows), plus
h * w * C bias adds; in 3D M^2 becomes prod(window). See :func:`spatial_mlp_macs`.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from core.nn.block import SwinBlock
from core.nn.window import (
    Size,
    crop,
    pad_spatial,
    pad_to_multiple,
    padded_size,
    window_and_shift,
    window_partition,
    window_reverse,
)


def shift_padding(size: Sequence[int], window: Size, shift: Size) -> tuple[Size, Size, Size]:
    """(shift kept per axis, padding before, padding after) of a block on a map of ``size`` (rule above)."""
    _, shift = window_and_shift(size, window, shift, shrink=False)
    before = tuple(w - s if s else 0 for w, s in zip(window, shift))
    return shift, before, shift


def spatial_mlp_macs(size: Sequence[int], window: Size, shift: Size, dim: int) -> int:
    """MACs of one block's spatial MLP on a map of ``size``: prod(window) * prod(padded size) * dim."""
    _, before, after = shift_padding(size, window, shift)
    padded = [p + b + a for p, b, a in zip(padded_size(size, window), before, after)]
    return math.prod(window) * math.prod(padded) * dim


class SwinMLPBlock(SwinBlock):
    """Pre-norm spatial-MLP block (shift 0) or shifted spatial-MLP block (shift > 0) on (B, *spatial, C).

    Parameters as core's :class:`~core.nn.block.SwinBlock`; the attention arguments (qkv_bias, attn_drop,
    attn_impl) and ``compat`` are accepted and unused: there is a single padding rule (module docstring).
    """

    def build_mixer(self, dim: int, num_heads: int, **unused) -> None:
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        n = num_heads * math.prod(self.window_size)
        self.spatial_mlp = nn.Conv1d(n, n, kernel_size=1, groups=num_heads)
        trunc_normal_(self.spatial_mlp.weight, std=0.02)
        nn.init.zeros_(self.spatial_mlp.bias)

    def mix_windows(self, windows: torch.Tensor, window: Size, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B*nW, N, C) -> (B*nW, N, C): token n of head h is sum_m W[h, n, m] * token m + b[h, n]."""
        b, n, c = windows.shape
        h = self.num_heads
        x = windows.view(b, n, h, c // h).permute(2, 1, 0, 3).reshape(h, n, -1)  # (heads, tokens, b*d)
        x = torch.baddbmm(self.spatial_mlp.bias.view(h, n, 1), self.spatial_mlp.weight.view(h, n, n), x)
        return x.view(h, n, b, c // h).permute(2, 1, 0, 3).reshape(b, n, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != len(self.window_size) + 2 or x.shape[-1] != self.dim:
            axes = ", ".join("THW"[3 - len(self.window_size):])
            raise ValueError(f"{type(self).__name__} expects channels-last (B, {axes}, {self.dim}), "
                             f"got shape {tuple(x.shape)}")
        return super().forward(x)

    def token_mix(self, x: torch.Tensor) -> torch.Tensor:
        window, size = self.window_size, x.shape[1:-1]
        _, before, after = shift_padding(size, window, self.shift_size)
        x = pad_spatial(pad_to_multiple(x, window), before, after)
        padded = x.shape[1:-1]
        x = window_reverse(self.mix_windows(window_partition(x, window), window), window, padded)
        return crop(x, size, before)
