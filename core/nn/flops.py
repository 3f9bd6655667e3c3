"""Multiply-accumulates and parameters with PyTorch's own flop counter (the report: ``cli/summary.py``).

The paper counts multiply-accumulates (MACs); torch.utils.flop_counter counts 2 FLOPs per MAC, so the count
is halved. For one W-MSA layer on an h x w map with C channels and window M the count is the paper's
Omega(W-MSA) = 4hwC^2 + 2M^2hwC."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from core.nn.registry import create_model, model_defaults


def default_input(name: str) -> tuple[int, ...]:
    """Input shape (B=1) at which a registered model is reported: its variant's img_size (224 if none), 32 frames."""
    d = model_defaults(name)
    if d.get("ndim", 2) == 3:
        return (1, 3, 32, 224, 224)
    size = d.get("img_size") or 224
    return (1, 3, size, size)


def count_macs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> tuple[int, dict[str, int]]:
    """Total multiply-accumulates of one forward, and per top-level module (explicit attention, so bmm counts)."""
    for m in model.modules():
        if hasattr(m, "attn_impl"):
            m.attn_impl = "math"
    counter = FlopCounterMode(display=False, depth=2)
    with torch.no_grad(), counter:
        model(*inputs)
    per_module = {k: int(sum(v.values())) // 2 for k, v in counter.get_flop_counts().items()}
    return counter.get_total_flops() // 2, per_module


def window_attention_macs(h: int, w: int, C: int, M: int) -> int:
    """The paper's Omega(W-MSA) = 4hwC^2 + 2M^2hwC."""
    return 4 * h * w * C * C + 2 * M * M * h * w * C


def report(name: str, shape: Sequence[int] | None = None, **kwargs) -> dict[str, float]:
    """GMACs and M params of a registered model at a given input shape."""
    with torch.device("meta"):  # shapes only: no memory, no arithmetic
        model = create_model(name, **kwargs).eval()
    shape = tuple(shape or default_input(name))
    macs, _ = count_macs(model, [torch.zeros(shape, device="meta")])
    params = sum(p.numel() for p in model.parameters())
    return {"model": name, "input": "x".join(map(str, shape[1:])), "gmacs": macs / 1e9, "mparams": params / 1e6}


