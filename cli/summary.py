"""FLOPs/params report with PyTorch's own flop counter: ``python -m core.tools.summary swin_t [swin_s ...]``.

The paper counts multiply-accumulates (MACs); torch.utils.flop_counter counts 2 FLOPs per MAC, so the report
divides by two. For one W-MSA layer on an h x w map with C channels and window M the count is the paper's
Omega(W-MSA) = 4hwC^2 + 2M^2hwC: qkv (3hwC^2) and output projection (hwC^2), plus QK^T and AV (M^2hwC each).
"""
from __future__ import annotations

import argparse
from typing import Sequence

from core.nn.flops import report


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
