"""Swin V2-T speed, ours vs timm and torchvision, on this machine's CPU (fp32):

    OMP_NUM_THREADS=2 python -m bench.swin_v2 [--batch 8] [--size 256] [--repeat 3]

Our swin_v2_t (attn_impl auto) with timm swinv2_tiny_window8_256's weights, timm's model, and torchvision's
swin_v2_t with its own random weights (same architecture and cost). Inference: one forward under no_grad; train:
forward + backward + AdamW step. Median seconds per call over --repeat rounds, the contenders interleaved in each
round after one warm-up call each; ratio = reference / ours (> 1: ours faster). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import timm
import torch
import torchvision

from core import create_model, load_pretrained


def contenders() -> dict[str, torch.nn.Module]:
    ref = timm.create_model("swinv2_tiny_window8_256")
    ours = create_model("swin_v2_t")
    load_pretrained(ours, ref.state_dict())
    return {"ours": ours, "timm": ref, "torchvision": torchvision.models.swin_v2_t()}


def step_fn(model: torch.nn.Module, x: torch.Tensor, mode: str) -> Callable[[], None]:
    """One inference call, or one training step (forward, cross-entropy, backward, AdamW)."""
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.no_grad():
                model(x)
        return infer
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    y = torch.zeros(x.shape[0], dtype=torch.long)

    def train() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return train


def run(batch: int, size: int, repeat: int) -> dict[tuple[str, str], float]:
    torch.manual_seed(0)
    x = torch.randn(batch, 3, size, size)
    models = contenders()
    out = {}
    for mode in ("infer", "train"):
        steps = {name: step_fn(m, x, mode) for name, m in models.items()}
        for fn in steps.values():
            fn()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in steps}
        for _ in range(repeat):
            for name, fn in steps.items():  # interleaved, so drifts of a shared machine hit every contender
                t = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t)
        out.update({(mode, name): statistics.median(ts) for name, ts in times.items()})
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    res = run(args.batch, args.size, args.repeat)
    print(f"`OMP_NUM_THREADS={torch.get_num_threads()} python -m bench.swin_v2 {' '.join(sys.argv[1:])}`".replace(" `", "`"))
    print(f"Swin V2-T, batch {args.batch}, {args.size}x{args.size}, CPU fp32 ({torch.get_num_threads()} threads), "
          f"torch {torch.__version__}, timm {timm.__version__}, torchvision {torchvision.__version__}\n")
    print("| mode | ours (s) | timm (s) | torchvision (s) | timm / ours | torchvision / ours |")
    print("|---|---|---|---|---|---|")
    for mode in ("infer", "train"):
        o, t, v = res[(mode, "ours")], res[(mode, "timm")], res[(mode, "torchvision")]
        print(f"| {mode} | {o:.3f} | {t:.3f} | {v:.3f} | {t / o:.2f} | {v / o:.2f} |")


if __name__ == "__main__":
    main()
