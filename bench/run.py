"""Speed of our Swin vs timm and torchvision in one run: ``python -m bench.run [--device cuda] [--amp bf16]``.

Every contender gets the same weights and input. Reported: median seconds per call (inference: forward under
no_grad; train: forward + backward + AdamW step), throughput, peak memory on CUDA, and ratio = reference / ours
(> 1: ours faster). Results are printed as a markdown table, one row per task and mode with every contender
side by side (the layout of bench/RESULTS.md), and appended as JSON lines to --out (default
outputs/bench.jsonl, outside the source tree).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from typing import Callable

import timm
import torch
import torchvision

from core import create_model, load_pretrained


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timeit(fn: Callable[[], None], device: torch.device, warmup: int, repeat: int) -> float:
    """Median wall time of fn over repeat calls after warmup calls (CUDA peak memory from the first timed call)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def peak_gib(device: torch.device) -> tuple[float, str]:
    """Peak memory in GiB and what it counts: the CUDA allocator's peak, or this process's peak resident set."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30, "cuda max allocated"
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, "process max RSS"  # KiB on Linux


def append_jsonl(path: str, rows: list[dict]) -> None:
    """Append result rows as JSON lines ('' = nowhere)."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def ours(name: str, ref: torch.nn.Module) -> dict[str, Callable[[], torch.nn.Module]]:
    """Builders of our model in both attention forms, loaded with the reference's weights."""
    def build(impl: str) -> Callable[[], torch.nn.Module]:
        def make() -> torch.nn.Module:
            m = create_model(name, attn_impl=impl)
            load_pretrained(m, ref.state_dict())
            return m
        return make
    return {f"ours({impl})": build(impl) for impl in ("math", "sdpa")}


def contenders(task: str) -> dict[str, Callable[[], torch.nn.Module]]:
    """Builders of the models compared in a task; ours get the reference's weights."""
    if task == "swin_t":
        ref_tv = torchvision.models.swin_t()
        ref_timm = timm.create_model("swin_tiny_patch4_window7_224")
        return {"timm": lambda: ref_timm, "torchvision": lambda: ref_tv, **ours("swin_t", ref_timm)}
    if task == "swin3d_t":
        ref = torchvision.models.video.swin3d_t()
        return {"torchvision": lambda: ref, **ours("video_swin_t", ref)}
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


TASKS = ("swin_t", "swin3d_t")
MODES = ("infer", "train")


def bench_one(model: torch.nn.Module, x: torch.Tensor, mode: str, amp: torch.dtype | None, compile_: bool,
              warmup: int, repeat: int) -> dict[str, float]:
    device = x.device
    model = model.to(device)
    run_model = torch.compile(model) if compile_ else model
    ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else (lambda: torch.autocast(device.type, enabled=False))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if mode == "infer":
        model.eval()

        def step() -> None:
            with torch.no_grad(), ctx():
                run_model(x)
    else:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        y = torch.randint(0, 10, (x.shape[0],), device=device)

        def step() -> None:
            with ctx():
                loss = torch.nn.functional.cross_entropy(run_model(x).float(), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    sec = timeit(step, device, warmup, repeat)
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    model.to("cpu")
    return {"sec": sec, "items_per_s": x.shape[0] / sec, "peak_gib": mem}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS,
                   help="swin_t: Swin-T on images vs timm and torchvision; swin3d_t: Video Swin-T vs torchvision")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                   help="infer: forward under no_grad; train: forward + backward + AdamW step")
    p.add_argument("--batch", type=int, default=8, help="images per batch (swin_t)")
    p.add_argument("--clip", type=int, nargs=4, default=[1, 16, 224, 224], help="B T H W of swin3d_t clips")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--models", nargs="+", default=None, help="only these contenders, e.g. timm 'ours(sdpa)'")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")
    p.add_argument("--out", default="outputs/bench.jsonl", help="JSON lines appended here ('' = none)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    torch.manual_seed(0)
    rows = []
    for task in args.tasks:
        if task == "swin_t":
            x = torch.randn(args.batch, 3, 224, 224, device=device)
        else:
            b, t, h, w = args.clip
            x = torch.randn(b, 3, t, h, w, device=device)
        builders = {k: v for k, v in contenders(task).items() if not args.models or k in args.models}
        for mode in args.modes:
            results = {}
            for name, build in builders.items():
                results[name] = bench_one(build(), x, mode, amp, args.compile, args.warmup, args.repeat)
            best_ours = min((v["sec"], k) for k, v in results.items() if k.startswith("ours"))
            for name, r in results.items():
                row = {"task": task, "mode": mode, "model": name, "device": str(device),
                       "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                       "amp": args.amp, "compile": args.compile, "input": list(x.shape),
                       "threads": torch.get_num_threads(), **r,
                       "ratio_vs_best_ours": r["sec"] / best_ours[0]}
                rows.append(row)
    print(side_by_side(rows))
    append_jsonl(args.out, rows)


def side_by_side(rows: list[dict]) -> str:
    """The RESULTS.md table: one line per (task, mode), every contender's time and rate, ratios vs our best."""
    refs = ["timm", "torchvision"]
    names = refs + sorted({r["model"] for r in rows if r["model"].startswith("ours")})
    lines = ["| task (input) | mode | amp | " + " | ".join(names) + " | "
             + " | ".join(f"{n} time / best ours" for n in refs) + " |",
             "|---" * (3 + len(names) + len(refs)) + "|"]
    for key in dict.fromkeys((r["task"], r["mode"]) for r in rows):
        group = {r["model"]: r for r in rows if (r["task"], r["mode"]) == key}
        first = next(iter(group.values()))
        cell = lambda r: (f"{1000 * r['sec']:.1f} ms ({r['items_per_s']:.1f}/s"
                          + (f", {r['peak_gib']:.2f} GiB" if r["peak_gib"] == r["peak_gib"] else "") + ")")
        best = min(r["sec"] for n, r in group.items() if n.startswith("ours"))
        lines.append(f"| {key[0]} {'x'.join(map(str, first['input']))} | {key[1]} | {first['amp']} | "
                     + " | ".join(cell(group[n]) if n in group else "-" for n in names) + " | "
                     + " | ".join(f"**{group[n]['sec'] / best:.2f}**" if n in group else "-" for n in refs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
