"""Swin V2 attention: scaled cosine attention with q/v biases and a log-spaced continuous position bias, N-d.

The bias of a window is computed, not looked up in a learned table: a small MLP (ndim -> 512 -> heads, ReLU)
maps each relative offset, normalised by ``pretrained_window_size - 1`` (else by the window in use - 1),
scaled to [-8, 8] and log-spaced as sign(x) * log2(1 + |x|) / 3, to a per-head value passed through
16 * sigmoid. A model built for one window therefore runs with any other without resizing a table; in 3D the
offsets are (t, h, w). Keys and buffers follow timm / the official code (``cpb_mlp.0``, ``cpb_mlp.2``,
``logit_scale``, ``q_bias``, ``v_bias``), so their state dicts load unchanged.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.nn.attention import WindowAttention
from core.nn.cache import cached_constant
from core.nn.position import relative_position_index
from core.nn.window import Size

MAX_LOGIT_SCALE = math.log(100.0)  # the temperature 1 / exp(logit_scale) is clamped at 0.01


def log_spaced_coords(window: Sequence[int], normaliser: Sequence[int]) -> torch.Tensor:
    """(prod(2w - 1), ndim) log-spaced relative offsets of a window, in the raster order of the offset table."""
    axes = [torch.arange(-(w - 1), w, dtype=torch.float32) / max(n - 1, 1) for w, n in zip(window, normaliser)]
    coords = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, len(window)) * 8
    return torch.sign(coords) * torch.log2(coords.abs() + 1.0) / math.log2(8)


class ContinuousPositionBias(nn.Sequential):
    """The log-spaced continuous position bias MLP (Linear(ndim, 512), ReLU, Linear(512, heads, no bias))."""

    def __init__(self, ndim: int, num_heads: int, hidden: int = 512,
                 pretrained_window_size: Sequence[int] | None = None) -> None:
        super().__init__(nn.Linear(ndim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_heads, bias=False))
        self.pretrained_window_size = tuple(pretrained_window_size or (0,) * ndim)

    def bias(self, window: Size) -> torch.Tensor:
        """(heads, N, N) bias of a window: 16 * sigmoid(MLP(offset)) for every token pair."""
        norm = tuple(p if p > 0 else w for p, w in zip(self.pretrained_window_size, window))
        device = self[0].weight.device
        key = (tuple(window), norm)
        coords = cached_constant("swin_v2.log_spaced_coords", key, lambda: log_spaced_coords(window, norm), device)
        table = 16 * torch.sigmoid(self(coords))  # (prod(2w - 1), heads)
        index = relative_position_index(window, device=device)
        n = index.shape[0]
        return table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)


class CosineWindowAttention(WindowAttention):
    """Window attention with logits cos(q, k) / tau per head (tau = exp(-logit_scale) >= 0.01), q and v biases
    (no k bias) and the continuous position bias of the window actually used (a window shrunk to the input too)."""

    def __init__(self, dim: int, num_heads: int, window_size: Size, qkv_bias: bool = True,
                 pretrained_window_size: Sequence[int] | None = None, **kwargs) -> None:
        self._pretrained = pretrained_window_size
        super().__init__(dim, num_heads, window_size, qkv_bias=False, **kwargs)
        self.scale = 1.0  # the per-head temperature is applied to the normalised queries
        self.logit_scale = nn.Parameter(torch.full((num_heads, 1, 1), math.log(10.0)))
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None

    def build_position_bias(self) -> None:
        self.cpb_mlp = ContinuousPositionBias(len(self.window_size), self.num_heads,
                                              pretrained_window_size=self._pretrained)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        BW, N, _ = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat((self.q_bias, torch.zeros_like(self.q_bias), self.v_bias))
        qkv = F.linear(x, self.qkv.weight, bias).view(BW, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        scale = torch.clamp(self.logit_scale, max=MAX_LOGIT_SCALE).exp().to(q.dtype)
        return F.normalize(q, dim=-1) * scale, F.normalize(k, dim=-1), v

    def relative_position_bias(self, window: Size) -> torch.Tensor:
        return self.cpb_mlp.bias(window)
