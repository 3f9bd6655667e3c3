"""Window multi-head self-attention with an N-d relative position bias."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from .position import relative_position_index, table_size
from .window import Size

ATTN_IMPLS = ("auto", "sdpa", "math")


def use_sdpa(impl: str, x: torch.Tensor) -> bool:
    """Resolve 'auto' to what measured faster (bench/RESULTS.md): SDPA on GPU, for CPU inference and for
    CPU training with large (3D) windows; the explicit matmul-softmax-matmul for CPU training of 2D windows."""
    if impl == "auto":
        training = torch.is_grad_enabled() and x.requires_grad
        return x.device.type != "cpu" or not training or x.shape[1] > 64
    return impl == "sdpa"


class WindowAttention(nn.Module):
    """W-MSA: multi-head self-attention inside each window, plus a learned relative position bias."""

    def __init__(
            self,
            dim: int,
            num_heads: int,
            window_size: Size,
            qkv_bias: bool = True,
            attn_drop: float = 0.0,
            proj_drop: float = 0.0,
            attn_impl: str = "auto",
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f"attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.window_size = tuple(window_size)
        self.attn_impl = attn_impl
        self.build_position_bias()
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def build_position_bias(self) -> None:
        """Create the position bias parameters: a learned table of prod(2w - 1) offsets x heads."""
        self.relative_position_bias_table = nn.Parameter(torch.zeros(table_size(self.window_size), self.num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)

    def qkv_heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values (B * nW, heads, N, head_dim) of (B * nW, N, C) windows; logits = scale q k^T."""
        BW, N, _ = x.shape
        qkv = self.qkv(x).view(BW, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv.unbind(0)

    def relative_position_bias(self, window: Size) -> torch.Tensor:
        """(heads, N, N) bias for a window of this size (the full window or one shrunk to the input)."""
        index = relative_position_index(window, self.window_size, self.relative_position_bias_table.device)
        n = index.shape[0]
        return self.relative_position_bias_table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)

    def forward(self, x: torch.Tensor, window: Size, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * num_windows, N, C) windows; mask: (num_windows, N, N) additive, or None."""
        BW, N, C = x.shape
        q, k, v = self.qkv_heads(x)  # (B * nW, heads, N, head_dim)
        bias = self.relative_position_bias(window).to(q.dtype).unsqueeze(0)  # (1, heads, N, N)
        nw = 1
        if mask is not None:  # bias and mask folded into one additive mask, per window: (nW, heads, N, N)
            nw = mask.shape[0]
            bias = bias + mask.to(q.dtype).unsqueeze(1)
        drop = self.attn_drop if self.training else 0.0
        if use_sdpa(self.attn_impl, x):
            if nw > 1:  # SDPA wants a mask broadcastable to (B * nW, heads, N, N)
                bias = bias.unsqueeze(0).expand(BW // nw, -1, -1, -1, -1).reshape(BW, self.num_heads, N, N)
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=drop, scale=self.scale)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).view(BW // nw, nw, self.num_heads, N, N)
            attn = (attn + bias).view(BW, self.num_heads, N, N)  # broadcast over images
            attn = F.dropout(attn.softmax(dim=-1), drop, self.training)
            out = attn @ v
        out = out.transpose(1, 2).reshape(BW, N, C)
        return self.proj_drop(self.proj(out))
