"""A Swin stage: optional patch merging, then blocks alternating W-MSA and SW-MSA."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn as nn
from torch.utils.checkpoint import checkpoint

from .block import SwinBlock
from .layers import PatchMerging
from .window import Size


class SwinStage(nn.Module):
    """Downsample (stages after the first), then ``depth`` blocks; odd blocks shift by half a window."""

    def __init__(
            self,
            dim: int,
            out_dim: int,
            depth: int,
            num_heads: int,
            window_size: Size,
            downsample: Size | None = None,
            drop_path: Sequence[float] = (),
            norm_layer: type[nn.Module] = nn.LayerNorm,
            block_fn: Callable[..., nn.Module] = SwinBlock,
            merge_layer: Callable[..., nn.Module] = PatchMerging,
            **block_kwargs,
    ) -> None:
        super().__init__()
        self.downsample = merge_layer(dim, downsample, out_dim, norm_layer) if downsample else nn.Identity()
        shift = tuple(w // 2 for w in window_size)
        drop_path = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList([
            block_fn(out_dim, num_heads, window_size, (0,) * len(window_size) if i % 2 == 0 else shift,
                     drop_path=drop_path[i], norm_layer=norm_layer, **block_kwargs)
            for i in range(depth)
        ])
        self.grad_checkpointing = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for block in self.blocks:
            if self.grad_checkpointing and x.requires_grad and not torch.jit.is_scripting():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x
