"""Per-shape constants (masks, index tables): built once per key and device, cached, compile-friendly."""
from __future__ import annotations

from typing import Callable, Hashable

import torch


def cached_constant(cache: dict, key: Hashable, build: Callable[[], torch.Tensor],
                    device: torch.device | str | None = None) -> torch.Tensor:
    """``build()`` on ``device``, once per (key, device) in eager mode.

    Under torch.compile the tensor is built inline instead, so the compiler folds it as a constant: a lookup
    in the cache would guard the compiled graph on the cache's contents and recompile as it fills. Under
    torch.export a cached tensor is used when there is one (core/export.py fills the caches with one eager call
    first), so the exported graph holds it as a constant instead of the ops that build it.
    """
    device = torch.device(device or "cpu")
    if torch.compiler.is_compiling():
        value = cache.get((key, device)) if torch.compiler.is_exporting() else None
        return value if value is not None else build().to(device)
    value = cache.get((key, device))
    if value is None:
        value = cache[(key, device)] = build().to(device)
    return value
