"""Window multi-head self-attention with an N-d relative position bias."""
from __future__ import annotations

import itertools
import weakref

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from .cache import BIAS_CACHE
from .position import relative_position_index, table_size
from .window import Size

ATTN_IMPLS = ("auto", "sdpa", "math")
BIAS_NAMESPACE = "attention_bias"
_OWNERS = itertools.count()  # one number per attention module: its folded biases in BIAS_CACHE carry it


def _owned_by(owner: int):
    return lambda key: key[0] == BIAS_NAMESPACE and key[1][0] == owner


def _forget_biases(owner: int) -> None:
    """Drop a module's folded biases (its weights changed, it went back to training, or it was deleted)."""
    BIAS_CACHE.discard(_owned_by(owner))


def folded_bias_bytes(model: nn.Module) -> int:
    """Bytes of eval-mode folded attention biases held between calls for ``model``'s attention modules (their
    latest input size's, and earlier sizes' in BIAS_CACHE)."""
    mods = [m for m in model.modules() if isinstance(m, WindowAttention)]
    owners = {m._bias_owner for m in mods}
    tensors = {id(t): t for t in BIAS_CACHE.values_where(lambda key: key[0] == BIAS_NAMESPACE and key[1][0] in owners)}
    tensors.update({id(m._bias_last[2]): m._bias_last[2] for m in mods if m._bias_last is not None})
    return sum(t.numel() * t.element_size() for t in tensors.values())


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
        self._new_bias_owner()

    def _new_bias_owner(self) -> None:
        """A number of its own for this module's folded biases (also for a deep copy or an unpickled module)."""
        self._bias_owner = next(_OWNERS)
        self._bias_version = 0  # bumped when the weights change: older folded biases are stale
        self._bias_state: tuple = ()
        self._bias_last: tuple | None = None  # (key, mask, bias) of the latest input size, outside the limit
        weakref.finalize(self, _forget_biases, self._bias_owner)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._new_bias_owner()

    def train(self, mode: bool = True) -> WindowAttention:
        if mode:  # training recomputes the bias on every call: free what eval mode cached
            _forget_biases(self._bias_owner)
            self._bias_state = ()
            self._bias_last = None
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
        constants of the graph. Costs memory between calls: one (nW, heads, N, N) tensor per block for the latest
        input size, and those of earlier sizes in core.nn.cache.BIAS_CACHE (least recently used first out, bounded
        by $SWIN_SUITE_CACHE_MB)."""
        if self.training or torch.is_grad_enabled():
            return self.fold_bias(window, mask, dtype)
        device = self.qkv.weight.device
        if torch.compiler.is_compiling():  # torch.compile: build inline (constant-folded); export: use the cache
            hit = self._cached_bias(self._bias_key(window, mask, dtype, device), peek=True) \
                if torch.compiler.is_exporting() else None
            return hit if hit is not None else self.fold_bias(window, mask, dtype)
        state = tuple((p.data_ptr(), p._version) for p in self.parameters())
        if state != self._bias_state:
            if self._bias_state:
                _forget_biases(self._bias_owner)
            self._bias_state, self._bias_last = state, None
            self._bias_version += 1
        key = self._bias_key(window, mask, dtype, device)
        bias = self._cached_bias(key)  # an entry holds its mask, so the mask's id cannot be reused meanwhile
        if bias is None:
            bias = self.fold_bias(window, mask, dtype)
        if self._bias_last is None or self._bias_last[0] != key:  # the previous size goes to the bounded pool
            if self._bias_last is not None:
                BIAS_CACHE.put(self._bias_last[0], self._bias_last[2], pin=self._bias_last[1])
            self._bias_last = (key, mask, bias)
        return bias

    def _cached_bias(self, key: tuple, peek: bool = False) -> torch.Tensor | None:
        """The folded bias of ``key``: the latest size's, else from the pool of earlier sizes, else None."""
        if self._bias_last is not None and self._bias_last[0] == key:
            return self._bias_last[2]
        return BIAS_CACHE.peek(key) if peek else BIAS_CACHE.get(key)

    def _bias_key(self, window: Size, mask: torch.Tensor | None, dtype: torch.dtype, device: torch.device) -> tuple:
        return (BIAS_NAMESPACE, (self._bias_owner, self._bias_version, tuple(window),
                                 None if mask is None else id(mask), dtype), device)

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
