"""Per-shape constants (masks, index tables): built once per key and device, cached, compile-friendly."""
from __future__ import annotations

from typing import Callable, Hashable

import torch


def cached_constant(cache: dict, key: Hashable, build: Callable[[], torch.Tensor],
                    device: torch.device | str | None = None) -> torch.Tensor:
    """``build()`` on ``device``, once per (key, device) in eager mode.

    Under torch.compile the tensor is built inline instead, so the compiler folds it as a constant: a lookup
    in the cache would guard the compiled graph on the cache's contents and recompile as it fills.
    """
    device = torch.device(device or "cpu")
    if torch.compiler.is_compiling():
        return build().to(device)
    value = cache.get((key, device))
    if value is None:
        value = cache[(key, device)] = build().to(device)
    return value
