"""Per-shape constants (masks, index tables): built once per key and device, kept in one LRU cache bounded by bytes.

One limit covers every per-shape constant of the suite (shifted-window masks, relative position indices, Swin V2
offset grids), on every device together: ``$SWIN_SUITE_CACHE_MB`` (default 128; ``inf`` for no bound, 0 to cache
nothing) or ``core.set_cache_limit(mb)``. The least recently used entries go first. A constant larger than the
limit is built on every call, with one warning naming the setting and the constant's size.

The same limit bounds a second pool, :data:`BIAS_CACHE`: the eval-mode folded attention biases (position bias plus
mask, one (nW, heads, N, N) tensor per attention block, input size and weights; core/nn/attention.py) of the input
sizes before the latest. They depend on the weights and are kept apart so that they never push the masks out;
each attention block also keeps the biases of its latest input size outside the limit (one size's worth: a fixed
size is always a hit, a Video Swin-T 32x224x224 clip folds 575 MB). No warning there: a bias that does not fit is
folded again when its size comes back, as in training.
"""
from __future__ import annotations

import math
import os
import threading
import warnings
from collections import OrderedDict
from typing import Callable, Hashable

import torch

from ..malloc import note_mask_built

ENV_VAR = "SWIN_SUITE_CACHE_MB"
DEFAULT_MB = 128.0  # a Video Swin 32x224x224 clip needs 105 MB of masks; a 2D image at 640 px 7 MB
MB = 2 ** 20


def parse_limit_mb(value: str | float | None) -> float:
    """A limit in MB from a number or a string ('' / None: the default; 'inf': no bound); ValueError if invalid."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_MB
    try:
        mb = float(value)
    except ValueError:
        raise ValueError(f"{ENV_VAR} must be a number of MB (or 'inf'), got {value!r}") from None
    if math.isnan(mb) or mb < 0:
        raise ValueError(f"{ENV_VAR} must be >= 0 MB (0: cache nothing, inf: no bound), got {value!r}")
    return mb


class ConstantCache:
    """Tensors keyed by (namespace, key, device), least recently used evicted first, total bytes <= the limit."""

    def __init__(self, limit_mb: float, warn: bool = True) -> None:
        self._warn = warn  # warn once when an entry can never fit
        self._entries: OrderedDict[tuple, tuple[torch.Tensor, object]] = OrderedDict()  # (value, pinned object)
        self._lock = threading.Lock()
        self.nbytes = 0
        self.limit_mb = limit_mb
        self._warned = False

    @property
    def limit_bytes(self) -> float:
        """The limit in bytes (math.inf when unbounded)."""
        return self.limit_mb * MB

    def set_limit(self, mb: float) -> float:
        """Set the limit in MB, evict down to it, return the previous one; the too-small warning may recur."""
        mb = parse_limit_mb(mb)
        with self._lock:
            previous, self.limit_mb, self._warned = self.limit_mb, mb, False
            self._evict(0)
        return previous

    def get(self, key: tuple) -> torch.Tensor | None:
        """The cached tensor or None; a hit becomes the most recently used."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def peek(self, key: tuple) -> torch.Tensor | None:
        """The cached tensor or None, untouched and without the lock (read while torch.export traces)."""
        entry = self._entries.get(key)
        return None if entry is None else entry[0]

    def put(self, key: tuple, value: torch.Tensor, pin: object = None) -> None:
        """Keep ``value`` if it fits the limit, evicting the least recently used; warn once if it never can.
        ``pin`` is held as long as the entry (e.g. a tensor whose id is part of the key, so the id stays its)."""
        size = value.numel() * value.element_size()
        with self._lock:
            if size > self.limit_bytes:
                self._warn_too_small(key, size)
                return
            old = self._entries.pop(key, None)
            if old is not None:
                self.nbytes -= old[0].numel() * old[0].element_size()
            self._evict(size)
            self._entries[key] = (value, pin)
            self.nbytes += size

    def discard(self, predicate: Callable[[tuple], bool]) -> int:
        """Drop the entries whose key satisfies ``predicate``; return how many."""
        with self._lock:
            gone = [k for k in self._entries if predicate(k)]
            for k in gone:
                value = self._entries.pop(k)[0]
                self.nbytes -= value.numel() * value.element_size()
            return len(gone)

    def values_where(self, predicate: Callable[[tuple], bool]) -> list[torch.Tensor]:
        """The tensors whose key satisfies ``predicate``."""
        with self._lock:
            return [v for k, (v, _) in self._entries.items() if predicate(k)]

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self.nbytes = 0

    def info(self) -> dict:
        """Entries, bytes held and the limit (MB), for logs and benchmarks."""
        with self._lock:
            return {"entries": len(self._entries), "bytes": self.nbytes, "limit_mb": self.limit_mb}

    def keys(self) -> list[tuple]:
        """The keys, least recently used first."""
        with self._lock:
            return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, incoming: int) -> None:
        while self._entries and self.nbytes + incoming > self.limit_bytes:
            _, (old, _) = self._entries.popitem(last=False)
            self.nbytes -= old.numel() * old.element_size()

    def _warn_too_small(self, key: tuple, size: int) -> None:
        if self._warned or not self._warn or self.limit_mb == 0:  # 0 asks for no caching: nothing to warn about
            return
        self._warned = True
        warnings.warn(
            f"{ENV_VAR}={self.limit_mb:g} (core.set_cache_limit) is below the size of one cached constant: "
            f"{key[0]} {key[1]} on {key[2]} takes {size / MB:.3g} MB. It is built on every call instead (slower, "
            f"same results); raise the limit to at least {math.ceil(size / MB)} MB to cache it.",
            RuntimeWarning, stacklevel=4)


def limit_from_environment() -> float:
    """The limit in MB that $SWIN_SUITE_CACHE_MB asks for (the default when unset)."""
    return parse_limit_mb(os.environ.get(ENV_VAR))


CACHE = ConstantCache(limit_from_environment())
BIAS_CACHE = ConstantCache(CACHE.limit_mb, warn=False)  # folded attention biases of earlier input sizes


def set_cache_limit(mb: float) -> float:
    """Bound the per-shape constants to ``mb`` MB in all, and the folded attention biases to as much (math.inf: no
    bound; 0: none); return the old limit."""
    BIAS_CACHE.set_limit(mb)
    return CACHE.set_limit(mb)


def cache_info() -> dict:
    """{'entries', 'bytes', 'limit_mb'} of the per-shape constant cache, and 'bias_entries', 'bias_bytes' of the
    folded attention biases (bounded by the same limit)."""
    bias = BIAS_CACHE.info()
    return {**CACHE.info(), "bias_entries": bias["entries"], "bias_bytes": bias["bytes"]}


def cached_constant(namespace: str, key: Hashable, build: Callable[[], torch.Tensor],
                    device: torch.device | str | None = None) -> torch.Tensor:
    """``build()`` on ``device``, once per (namespace, key, device) in eager mode while it stays in the cache.

    Under torch.compile the tensor is built inline instead, so the compiler folds it as a constant: a lookup
    in the cache would guard the compiled graph on the cache's contents and recompile as it fills. Under
    torch.export a cached tensor is used when there is one (core/export.py fills the caches with one eager call
    first), so the exported graph holds it as a constant instead of the ops that build it.
    """
    full_key = (namespace, key, torch.device(device or "cpu"))
    if torch.compiler.is_compiling():
        value = CACHE.peek(full_key) if torch.compiler.is_exporting() else None
        return value if value is not None else build().to(full_key[2])
    value = CACHE.get(full_key)
    if value is None:
        value = build().to(full_key[2])
        CACHE.put(full_key, value)
        if namespace == "mask":
            note_mask_built()
    return value
