"""SimMIM's one-layer prediction head: a 1x1 convolution to stride^d x 3 channels, then pixel shuffle."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
from einops import rearrange

__all__ = ["PixelShuffleND", "build_decoder", "encoder_stride"]

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}


class PixelShuffleND(nn.Module):
    """(B, C * prod(stride), *grid) -> (B, C, *(grid * stride)); in 2D with a square stride, nn.PixelShuffle."""

    def __init__(self, stride: Sequence[int]) -> None:
        super().__init__()
        self.stride = tuple(int(s) for s in stride)
        n = len(self.stride)
        g, s = [f"g{i}" for i in range(n)], [f"s{i}" for i in range(n)]
        self.pattern = (f"b (c {' '.join(s)}) {' '.join(g)} -> b c {' '.join(f'({gi} {si})' for gi, si in zip(g, s))}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rearrange(x, self.pattern, **{f"s{i}": v for i, v in enumerate(self.stride)})

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


def encoder_stride(encoder: nn.Module) -> tuple[int, ...]:
    """Per axis, input pixels per output token of a Swin backbone: patch x merge factor^(stages - 1)."""
    n = len(encoder.depths) - 1
    return tuple(p * f ** n for p, f in zip(encoder.patch_size, encoder.merge_factors))


def build_decoder(in_dim: int, stride: Sequence[int], out_chans: int = 3) -> nn.Sequential:
    """``decoder.0`` the 1x1 convolution (official key names), ``decoder.1`` the pixel shuffle."""
    stride = tuple(stride)
    conv = _CONV[len(stride)](in_dim, math.prod(stride) * out_chans, kernel_size=1)
    square = len(stride) == 2 and stride[0] == stride[1]
    return nn.Sequential(conv, nn.PixelShuffle(stride[0]) if square else PixelShuffleND(stride))
