"""Where a step's time goes: ``python -m bench.profile_step --model ours --task swin_t --mode train [--amp bf16]``.

torch.profiler (CPU) over one call after two warm-up calls, of our model or the reference (timm for swin_t,
torchvision for swin3d_t) on the bench's inputs; prints the operators by self CPU time (the profiles quoted in
results/README.md) and the matmul share (mm, addmm, bmm, the fused attention kernels).
"""
from __future__ import annotations

import argparse
import time

import torch
from torch.profiler import ProfilerActivity, profile

from bench.run import contenders, make_step, parse_clip

MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::_scaled_dot_product_flash_attention_for_cpu",
           "aten::_scaled_dot_product_flash_attention_for_cpu_backward")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="swin_t", choices=["swin_t", "swin3d_t"])
    p.add_argument("--model", default="ours", help="ours, ours(math), ours(sdpa), timm, torchvision")
    p.add_argument("--mode", default="train", choices=["infer", "train"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--clip", type=parse_clip, default=[2, 8, 112, 112], help="BxTxHxW (swin3d_t)")
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--amp", default="none", choices=["none", "bf16"], help="autocast dtype of the step")
    a = p.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, 224, 224) if a.task == "swin_t" else torch.randn(a.clip[0], 3, *a.clip[1:])
    impls = {"ours": "auto", "ours(math)": "math", "ours(sdpa)": "sdpa"}
    model = contenders(a.task, [impls.get(a.model, "auto")])[a.model]()
    step = make_step(model, x, a.mode, torch.bfloat16 if a.amp == "bf16" else None, False)
    step()
    t = time.perf_counter()
    step()
    plain = time.perf_counter() - t
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    share = sum(e.self_cpu_time_total for e in events if e.key in MATMULS) / total
    print(f"{a.model} {a.task} {'x'.join(map(str, x.shape))} {a.mode}: {plain:.3f} s per call unprofiled, "
          f"{total / 1e6:.3f} s self CPU under the profiler, matmuls {100 * share:.0f} %")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[:a.rows]:
        print(f"  {e.key:60s} {e.self_cpu_time_total / 1e3:8.1f} ms {100 * e.self_cpu_time_total / total:5.1f} % "
              f"({e.count} calls)")


if __name__ == "__main__":
    main()
