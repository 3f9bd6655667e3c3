"""The Swin V2 block: core's Swin block with res-post-norm and scaled cosine attention (swin_v2/attention.py).

Each residual branch normalises its output, x + drop_path(norm1(attn(x))) then x + drop_path(norm2(mlp(x))),
instead of normalising its input. Windows, shifts, masks, padding and the ``compat`` modes are core's.
"""
from __future__ import annotations

import torch

from core.nn.block import SwinBlock
from core.nn.window import Size, to_tuple

from .attention import CosineWindowAttention


class SwinV2Block(SwinBlock):
    """Res-post-norm (S)W-MSA block with cosine attention; ``pretrained_window_size`` (int or per axis, 0: the
    window in use) fixes the scale of the continuous position bias's offsets. Other arguments as SwinBlock."""

    def __init__(self, dim: int, num_heads: int, window_size: Size, shift_size: Size,
                 pretrained_window_size: int | Size = 0, **kwargs) -> None:
        self._pretrained = to_tuple(pretrained_window_size, len(window_size), "pretrained_window_size")
        super().__init__(dim, num_heads, window_size, shift_size, **kwargs)

    def build_mixer(self, dim: int, num_heads: int, **kwargs) -> None:
        self.attn = CosineWindowAttention(dim, num_heads, self.window_size,
                                          pretrained_window_size=self._pretrained, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.norm1(self.token_mix(x)))
        return x + self.drop_path2(self.norm2(self.mlp(x)))
