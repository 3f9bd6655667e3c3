"""The Swin block: pre-norm (shifted-)window token mixing and an MLP, each with a residual and drop path."""
from __future__ import annotations

import torch
import torch.nn as nn
from timm.layers import DropPath, Mlp

from .attention import WindowAttention
from .mask import shifted_window_mask
from .window import (
    Size,
    crop,
    cyclic_shift,
    pad_to_multiple,
    window_and_shift,
    window_partition,
    window_reverse,
)

COMPAT_MODES = ("official", "timm", "torchvision", "timm_dynamic")


def static_size(x: torch.Tensor) -> Size:
    """Spatial size of (B, *spatial, C) as Python ints: under ONNX tracing ``x.shape`` holds traced values, and
    the masks and index tables of a size must come from (and stay in) their caches as constants."""
    return tuple(int(s) for s in x.shape[1:-1])


class SwinBlock(nn.Module):
    """W-MSA (shift 0) or SW-MSA (shift > 0) block for (B, *spatial, C) inputs of any size.

    ``compat`` picks how inputs not divisible by the window are handled:
      official:    pad, then roll, mask over the padded grid; shrink window/drop shift where input <= window;
      timm:        roll the unpadded input, then pad; same shrink rule;
      torchvision: as official, but the 2D model never shrinks the window (its 3D model does);
      timm_dynamic: timm built with dynamic_img_size=True: roll, then pad, never shrink the window.
    Subclasses replace ``mix_windows`` (and ``token_mix`` for another shifting scheme) to build variants.
    """

    def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: Size,
            shift_size: Size,
            mlp_ratio: float = 4.0,
            qkv_bias: bool = True,
            drop: float = 0.0,
            attn_drop: float = 0.0,
            drop_path: float = 0.0,
            norm_layer: type[nn.Module] = nn.LayerNorm,
            compat: str = "official",
            attn_impl: str = "auto",
    ) -> None:
        super().__init__()
        if compat not in COMPAT_MODES:
            raise ValueError(f"compat must be one of {COMPAT_MODES}, got {compat!r}")
        self.dim = dim
        self.num_heads = num_heads
        self.window_size = tuple(window_size)
        self.shift_size = tuple(shift_size)
        for w, s in zip(self.window_size, self.shift_size):
            if not 0 <= s < w:
                raise ValueError(f"shift_size {self.shift_size} must be in [0, window_size) = {self.window_size}")
        self.compat = compat
        self.shrink = compat not in ("torchvision", "timm_dynamic") or len(self.window_size) == 3
        self.roll_first = compat in ("timm", "timm_dynamic")
        self.norm1 = norm_layer(dim)
        self.build_mixer(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=drop, attn_impl=attn_impl)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU, drop=drop)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def build_mixer(self, dim: int, num_heads: int, **kwargs) -> None:
        """Create the token mixer applied inside windows (window attention here)."""
        self.attn = WindowAttention(dim, num_heads, self.window_size, **kwargs)

    def mix_windows(self, windows: torch.Tensor, window: Size, mask: torch.Tensor | None) -> torch.Tensor:
        """Mix the tokens of (B * num_windows, N, C) windows."""
        return self.attn(windows, window, mask)

    def token_mix(self, x: torch.Tensor) -> torch.Tensor:
        """Shifted-window token mixing of a normalised (B, *spatial, C) tensor."""
        size = static_size(x)
        window, shift = window_and_shift(size, self.window_size, self.shift_size, self.shrink)
        if self.roll_first:
            x = pad_to_multiple(cyclic_shift(x, shift), window)
        else:
            x = cyclic_shift(pad_to_multiple(x, window), shift)
        padded = static_size(x)
        mask = shifted_window_mask(padded, window, shift, x.device) if any(shift) else None
        x = window_reverse(self.mix_windows(window_partition(x, window), window, mask), window, padded)
        if self.roll_first:
            return cyclic_shift(crop(x, size), shift, inverse=True)
        return crop(cyclic_shift(x, shift, inverse=True), size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path1(self.token_mix(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))
