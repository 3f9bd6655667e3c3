"""FLOPs/params report with PyTorch's own flop counter: ``python -m core.tools.summary swin_t [swin_s ...]``.

The paper counts multiply-accumulates (MACs); torch.utils.flop_counter counts 2 FLOPs per MAC, so the report
divides by two. For one W-MSA layer on an h x w map with C channels and window M the count is the paper's
Omega(W-MSA) = 4hwC^2 + 2M^2hwC: qkv (3hwC^2) and output projection (hwC^2), plus QK^T and AV (M^2hwC each).
"""
from __future__ import annotations

import argparse
from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ..nn.registry import create_model, model_defaults


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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=["swin_t", "swin_s", "swin_b", "swin_b_384"])
    parser.add_argument("--input", type=int, nargs="+", help="input shape without batch, e.g. 3 224 224")
    args = parser.parse_args(argv)
    print(f"{'model':<18} {'input':<14} {'GMACs':>8} {'params (M)':>11}")
    for name in args.models:
        r = report(name, (1, *args.input) if args.input else None)
        print(f"{r['model']:<18} {r['input']:<14} {r['gmacs']:>8.2f} {r['mparams']:>11.2f}")


if __name__ == "__main__":
    main()
