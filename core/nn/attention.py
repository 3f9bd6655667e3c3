"""Window multi-head self-attention with an N-d relative position bias."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from .position import relative_position_index, table_size
from .window import Size

ATTN_IMPLS = ("auto", "sdpa", "math")
_BIAS_CACHE_SIZE = 8  # folded bias+mask tensors kept per attention module (one per input size seen in eval)


def use_sdpa(impl: str, x: torch.Tensor) -> bool:
    """Resolve 'auto' to what measured faster (results/README.md): SDPA on GPU and for CPU inference; the explicit
    matmul-softmax-matmul for CPU training (the bias needs its gradient there, so CPU SDPA falls back to its math
    kernel, which also expands the mask to every image)."""
    if impl == "auto":
        training = torch.is_grad_enabled() and x.requires_grad
        return x.device.type != "cpu" or not training
    return impl == "sdpa"


def windowed_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, dropout: float,
                  scale: float) -> torch.Tensor:
    """SDPA over (B * nW, heads, N, d) windows with an additive (nW, heads, N, N) mask shared by every image.

    SDPA's mask must broadcast to (B * nW, heads, N, N) (its fused CPU kernel takes 4-d inputs only). With one
    image, or one window, it does as it is. Otherwise one of two copies is needed, and the smaller is made:
    the mask once per image (B nW heads N^2 values), or q, k and v with the windows of an image folded into the
    head axis, (B, nW * heads, N, d), against a (1, nW * heads, N, N) mask (3 B nW heads N d values): the
    mask for N <= 3 d (2D windows of 49 tokens), q, k, v for larger windows (3D: 392 tokens, 4x smaller).
    """
    BW, h, N, d = q.shape
    nw = bias.shape[0]
    if nw == 1 or nw == BW:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)
    b = BW // nw
    if N <= 3 * d:
        bias = bias.unsqueeze(0).expand(b, -1, -1, -1, -1).reshape(BW, h, N, N)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout, scale=scale)
    q, k, v = (t.reshape(b, nw * h, N, d) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.reshape(1, nw * h, N, N), dropout_p=dropout,
                                         scale=scale)
    return out.view(BW, h, N, d)


def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor, dropout: float,
                       scale: float, training: bool) -> torch.Tensor:
    """Explicit softmax(scale q k^T + bias) v over (B * nW, heads, N, d) windows, bias (nW, heads, N, N).

    The maps are computed as (B, nW, heads, N, N) so the bias broadcasts over images and is added in place
    (the matmul saves its inputs, not its output, so autograd allows it; no second map is allocated).
    """
    BW, h, N, d = q.shape
    nw = bias.shape[0]
    q, k, v = (t.view(BW // nw, nw, h, N, d) for t in (q, k, v))
    attn = (q * scale) @ k.transpose(-2, -1)
    attn.add_(bias)
    attn = F.dropout(attn.softmax(dim=-1), dropout, training)
    return (attn @ v).view(BW, h, N, d)


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
        self._bias_cache: dict[tuple, tuple[torch.Tensor | None, torch.Tensor]] = {}
        self._bias_state: tuple = ()

    def train(self, mode: bool = True) -> WindowAttention:
        if mode:  # training recomputes the bias on every call: free what eval mode cached
            self._bias_cache.clear()
            self._bias_state = ()
        return super().train(mode)

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
        # index_select, not table[index]: its backward (index_add) is 2-2.5x faster than advanced indexing's
        # (index_put with accumulate) on the CPU for these tables (bench: 3D window, 3.1 vs 7.7 ms per block)
        return self.relative_position_bias_table.index_select(0, index.view(-1)).view(n, n, -1).permute(2, 0, 1)

    def fold_bias(self, window: Size, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """(nW, heads, N, N) additive attention bias: the position bias plus the shifted-window mask (nW = 1
        without a mask), computed from the parameters."""
        bias = self.relative_position_bias(window).to(dtype).unsqueeze(0)
        if mask is not None:
            bias = bias + mask.to(dtype).unsqueeze(1)
        return bias.contiguous()

    def attention_bias(self, window: Size, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """``fold_bias``, cached in eval mode when no gradient is needed: once per (window, mask, dtype, device),
        until a parameter changes (its version counter or storage: an optimizer step, load_state_dict, .to()).
        A model exported after one eager call at the export size (core/export.py) reads these tensors as
        constants of the graph. Costs memory between calls: one (nW, heads, N, N) tensor per block and size."""
        if self.training or torch.is_grad_enabled():
            return self.fold_bias(window, mask, dtype)
        key = (tuple(window), None if mask is None else id(mask), dtype, self.qkv.weight.device)
        if torch.compiler.is_compiling():  # torch.compile: build inline (constant-folded); export: use the cache
            hit = self._bias_cache.get(key) if torch.compiler.is_exporting() else None
            return hit[1] if hit is not None and hit[0] is mask else self.fold_bias(window, mask, dtype)
        state = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if state != self._bias_state:
            self._bias_cache.clear()
            self._bias_state = state
        hit = self._bias_cache.get(key)
        if hit is not None and hit[0] is mask:  # the mask is held, so its id cannot be reused by another tensor
            return hit[1]
        if len(self._bias_cache) >= _BIAS_CACHE_SIZE:
            self._bias_cache.pop(next(iter(self._bias_cache)))
        bias = self.fold_bias(window, mask, dtype)
        self._bias_cache[key] = (mask, bias)
        return bias

    def forward(self, x: torch.Tensor, window: Size, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B * num_windows, N, C) windows; mask: (num_windows, N, N) additive, or None."""
        BW, N, C = x.shape
        q, k, v = self.qkv_heads(x)  # (B * nW, heads, N, head_dim)
        bias = self.attention_bias(window, mask, q.dtype)  # (nW or 1, heads, N, N)
        drop = self.attn_drop if self.training else 0.0
        if use_sdpa(self.attn_impl, x):
            out = windowed_sdpa(q, k, v, bias, drop, self.scale)
        else:
            out = windowed_attention(q, k, v, bias, drop, self.scale, self.training)
        out = out.transpose(1, 2).reshape(BW, N, C)
        return self.proj_drop(self.proj(out))
