"""torch.compile (inductor) on this machine: compile time and speed of Swin-T, ours vs timm, inference and
training: ``python -m bench.compile_time [--modes infer train] [--models timm ours] [--batch 8]``.

Per (model, mode): eager median seconds per call, the first compiled call (compilation + one call), then the
compiled median; inference = forward under no_grad, train = forward + backward + AdamW step (the backward graph
is compiled on the first backward). Prints a markdown table and appends JSON lines to --out.
"""
from __future__ import annotations

import argparse
import time

import timm
import torch

from bench.run import append_jsonl, make_step, timeit
from core import create_model, load_pretrained


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    ref = timm.create_model("swin_tiny_patch4_window7_224")
    if name == "timm":
        return ref
    m = create_model("swin_t")
    load_pretrained(m, ref.state_dict())
    return m


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["timm", "ours"], choices=["timm", "ours"])
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default="outputs/bench_compile.jsonl")
    a = p.parse_args(argv)
    device = torch.device("cpu")
    x = torch.randn(a.batch, 3, 224, 224)
    rows = []
    for mode in a.modes:
        for name in a.models:
            model = build(name)
            eager = timeit(make_step(model, x, mode, None, compile_=False), device, 1, a.repeat)
            torch._dynamo.reset()
            step = make_step(model, x, mode, None, compile_=True)
            t = time.perf_counter()
            step()
            first = time.perf_counter() - t
            sec = timeit(step, device, 1, a.repeat)
            row = {"task": "swin_t_compile", "model": name, "mode": mode, "input": list(x.shape),
                   "threads": torch.get_num_threads(), "eager_sec": eager, "first_call_sec": first,
                   "compiled_sec": sec, "speedup_vs_eager": eager / sec}
            rows.append(row)
            print(f"{name} {mode}: eager {eager:.3f} s, first compiled call {first:.1f} s, compiled {sec:.3f} s",
                  flush=True)
    print("| model | mode | eager | first compiled call (compile + run) | compiled | compiled vs eager |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['mode']} | {1000 * r['eager_sec']:.0f} ms | {r['first_call_sec']:.0f} s | "
              f"{1000 * r['compiled_sec']:.0f} ms | {r['speedup_vs_eager']:.2f}x |")
    append_jsonl(a.out, rows)
    return rows


if __name__ == "__main__":
    main()
