"""Speed of our Swin vs timm and torchvision in one run: ``python -m bench.run [--device cuda] [--amp bf16]``.

Every contender gets the same weights and input. Reported per (task, mode, contender): median seconds per call
(inference: forward under no_grad; train: forward + backward + AdamW step), throughput, GFLOP/s and its fraction
of the large-matmul rate measured in the same run (a 2048^3 matmul at the run's precision: fp32, or bf16 with
``--amp bf16``; timed at the start and after every
group of rows; the best of these is the machine's rate), peak memory,
and ratio = reference time / our best time (> 1: ours faster). FLOPs are counted once per input with
torch.utils.flop_counter on our model (forward; a training step counts 3x the forward). Peak memory: on CUDA the
allocator's peak; on the CPU the peak of live tensor bytes during one extra (untimed) call, read from the
profiler's allocation events, above what was allocated before it (weights, optimizer state, input).

Default: Swin-T at batch 8 vs timm, Video Swin-T at 2x8x112x112 and 1x16x224x224 vs torchvision ``swin3d_t``,
inference and training; ``--pretrain-steps moby simmim`` adds our MoBY and SimMIM steps (each run in its own
process by bench/moby_step.py and bench/simmim_step.py, ours alone). Results are printed as markdown tables and
appended as JSON lines to --out (default outputs/bench.jsonl, outside the source tree).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
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


def cpu_step_peak_gib(fn: Callable[[], None]) -> float:
    """Peak live CPU tensor memory (GiB) during one call of fn, above what was live before it."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU)
    live = peak = 0
    for _, nbytes in events:
        live += nbytes
        peak = max(peak, live)
    return peak / 2**30


def cached_gib(model: torch.nn.Module) -> float:
    """GiB held between calls by our eval-mode cache of folded attention biases (not in the per-call peak)."""
    from core.nn.attention import folded_bias_bytes
    return folded_bias_bytes(model) / 2**30


def machine() -> dict:
    """Commit, CPU, core count and torch version of this run."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
    except OSError:
        commit = ""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"commit": commit, "cpu": cpu, "nproc": os.cpu_count(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "timm": timm.__version__,
            "torchvision": torchvision.__version__, "malloc_mmap_threshold": os.environ.get("MALLOC_MMAP_THRESHOLD_", "")}


def append_jsonl(path: str, rows: list[dict]) -> None:
    """Append result rows as JSON lines ('' = nowhere)."""
    if not path:
        return
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def matmul_gflops(device: torch.device, n: int = 2048, repeat: int = 10,
                  dtype: torch.dtype = torch.float32) -> float:
    """This machine's large-matmul rate: GFLOP/s of an n^3 matmul in ``dtype`` (median of repeat after 3
    warm-ups)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sec = timeit(lambda: a @ b, device, 3, repeat)
    return 2 * n ** 3 / sec / 1e9


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOPs of one forward of x (matmuls, convolutions, attention; 2 per multiply-add)."""
    from torch.utils.flop_counter import FlopCounterMode
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(x)
    return float(counter.get_total_flops())


IMPL_NAMES = {"auto": "ours", "math": "ours(math)", "sdpa": "ours(sdpa)"}


def ours(name: str, ref: torch.nn.Module, impls: list[str]) -> dict[str, Callable[[], torch.nn.Module]]:
    """Builders of our model in the given attention forms, loaded with the reference's weights."""
    def build(impl: str) -> Callable[[], torch.nn.Module]:
        def make() -> torch.nn.Module:
            m = create_model(name, attn_impl=impl)
            load_pretrained(m, ref.state_dict())
            return m
        return make
    return {IMPL_NAMES[impl]: build(impl) for impl in impls}


def contenders(task: str, impls: list[str] = ("math", "sdpa")) -> dict[str, Callable[[], torch.nn.Module]]:
    """Builders of the models compared in a task; ours get the reference's weights."""
    if task == "swin_t":
        ref_timm = timm.create_model("swin_tiny_patch4_window7_224")
        return {"timm": lambda: ref_timm, "torchvision": torchvision.models.swin_t, **ours("swin_t", ref_timm, impls)}
    if task == "swin3d_t":
        ref = torchvision.models.video.swin3d_t()
        return {"torchvision": lambda: ref, **ours("video_swin_t", ref, impls)}
    raise ValueError(f"unknown task {task!r}; choose from {TASKS}")


TASKS = ("swin_t", "swin3d_t")
MODES = ("infer", "train")
DEFAULT_REFS = {"swin_t": ("timm",), "swin3d_t": ("torchvision",)}
PRETRAIN_STEPS = {"moby": "bench.moby_step", "simmim": "bench.simmim_step"}


def make_step(model: torch.nn.Module, x: torch.Tensor, mode: str, amp: torch.dtype | None,
              compile_: bool) -> Callable[[], None]:
    """One inference call (forward under no_grad) or one training step (forward, cross-entropy, backward, AdamW)."""
    device = x.device
    model = model.to(device)
    run_model = torch.compile(model) if compile_ else model
    ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else (lambda: torch.autocast(device.type, enabled=False))
    if mode == "infer":
        model.eval()

        def infer() -> None:
            with torch.no_grad(), ctx():
                run_model(x)
        return infer
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    y = torch.randint(0, 10, (x.shape[0],), device=device)

    def train() -> None:
        with ctx():
            loss = torch.nn.functional.cross_entropy(run_model(x).float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return train


def bench_group(steps: dict[str, Callable[[], None]], x: torch.Tensor, warmup: int, repeat: int,
                memory: bool = True) -> dict[str, dict[str, float]]:
    """Median seconds per call of each contender, timed in interleaved rounds (one call of each per round, so a
    drift of the machine's speed hits every contender alike), then each one's peak memory."""
    device = x.device
    for step in steps.values():
        for _ in range(warmup):
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            _sync(device)
            t = time.perf_counter()
            step()
            _sync(device)
            times[name].append(time.perf_counter() - t)
    results = {}
    for name, step in steps.items():
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            step()
            mem = torch.cuda.max_memory_allocated(device) / 2**30
        else:
            mem = cpu_step_peak_gib(step) if memory else float("nan")
        sec = statistics.median(times[name])
        results[name] = {"sec": sec, "items_per_s": x.shape[0] / sec, "peak_gib": mem,
                         "spread": (max(times[name]) - min(times[name])) / sec}
    return results


def run_pretrain_step(name: str, device: torch.device, amp: str) -> dict:
    """Run bench/<name>_step.py in its own process (its peak RSS is then its own); returns its JSON row."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.jsonl")
        cmd = [sys.executable, "-m", PRETRAIN_STEPS[name], "--device", str(device), "--out", out]
        if amp != "none":
            cmd += ["--amp", amp]
        subprocess.run(cmd, check=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        with open(out) as f:
            row = json.loads(f.read().splitlines()[-1])
    row["command"] = "python -m " + " ".join(cmd[2:-2])
    return row


def parse_clip(text: str) -> list[int]:
    parts = [int(p) for p in text.lower().split("x")]
    if len(parts) != 4:
        raise argparse.ArgumentTypeError(f"a clip is BxTxHxW, e.g. 2x8x112x112, got {text!r}")
    return parts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS,
                   help="swin_t: Swin-T on images vs timm (and torchvision); swin3d_t: Video Swin-T vs torchvision")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES,
                   help="infer: forward under no_grad; train: forward + backward + AdamW step")
    p.add_argument("--batch", type=int, default=8, help="images per batch (swin_t)")
    p.add_argument("--clips", type=parse_clip, nargs="+", default=[[2, 8, 112, 112], [1, 16, 224, 224]],
                   help="BxTxHxW of the swin3d_t clips, e.g. 2x8x112x112 1x16x224x224")
    p.add_argument("--clip", type=int, nargs=4, default=None, help="one clip as B T H W (instead of --clips)")
    p.add_argument("--impls", nargs="+", default=["auto"], choices=list(IMPL_NAMES),
                   help="our attention forms: auto (the default rule, 'ours'), math, sdpa")
    p.add_argument("--models", nargs="+", default=None,
                   help="only these contenders, e.g. timm torchvision ours 'ours(sdpa)' (default: the task's "
                        "reference (timm for swin_t, torchvision for swin3d_t) and ours in --impls)")
    p.add_argument("--pretrain-steps", nargs="*", default=[], choices=list(PRETRAIN_STEPS),
                   help="also time our MoBY (Swin-T, batch 8 at 224) and SimMIM (Swin-B at 192) pretraining steps")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--fp32-refs", action="store_true",
                   help="with --amp: also time the references in fp32 (what timm's train.py runs without --amp)")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--no-memory", action="store_true", help="skip the extra call that measures CPU memory")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")
    p.add_argument("--out", default="outputs/bench.jsonl", help="JSON lines appended here ('' = none)")
    args = p.parse_args()
    start = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    clips = [args.clip] if args.clip else args.clips
    torch.manual_seed(0)
    rate_dtype = amp or torch.float32  # fractions are of the large-matmul rate at the run's precision
    rate_name = args.amp if amp else "fp32"
    rates = [matmul_gflops(device, dtype=rate_dtype)]
    print(f"large-matmul rate (2048^3 {rate_name}): {rates[-1]:.1f} GFLOP/s", flush=True)
    rows = []
    for task in args.tasks:
        inputs = ([(8 if args.batch is None else args.batch, 3, 224, 224)] if task == "swin_t"
                  else [(b, 3, t, h, w) for b, t, h, w in clips])
        builders = contenders(task, args.impls)
        wanted = args.models or [*DEFAULT_REFS[task], *(IMPL_NAMES[i] for i in args.impls)]
        builders = {k: v for k, v in builders.items() if k in wanted}
        fp32_refs = {f"{k}(fp32)": v for k, v in builders.items() if args.fp32_refs and amp and
                     not k.startswith("ours")}
        ours_name = next(k for k in builders if k.startswith("ours")) if any(
            k.startswith("ours") for k in builders) else None
        for shape in inputs:
            x = torch.randn(*shape, device=device)
            flops = None
            if ours_name:  # counted once per input on one image/clip, then scaled by the batch
                flops = forward_flops(builders[ours_name]().to(device), x[:1]) * shape[0]
            for mode in args.modes:
                models = {name: build() for name, build in {**builders, **fp32_refs}.items()}
                steps = {name: make_step(m, x, mode, None if name in fp32_refs else amp, args.compile)
                         for name, m in models.items()}
                results = bench_group(steps, x, args.warmup, args.repeat, memory=not args.no_memory)
                for name, m in models.items():
                    results[name]["cache_gib"] = cached_gib(m)
                del steps, models
                for name, r in results.items():
                    print(f"  {task} {'x'.join(map(str, shape))} {mode} {name}: {r['sec']:.3f} s "
                          f"(spread {100 * r['spread']:.0f} %)", flush=True)
                ours_secs = [v["sec"] for k, v in results.items() if k.startswith("ours")]
                best_ours = min(ours_secs) if ours_secs else float("nan")
                for name, r in results.items():
                    step_flops = flops * (3 if mode == "train" else 1) if flops else float("nan")
                    rows.append({"task": task, "mode": mode, "model": name, "device": str(device),
                                 "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                                 "amp": "none" if name in fp32_refs else args.amp, "compile": args.compile,
                                 "input": list(shape), "matmul_dtype": rate_name,
                                 "threads": torch.get_num_threads(), **r, "gflops": step_flops / r["sec"] / 1e9,
                                 "ratio_vs_best_ours": r["sec"] / best_ours})
                rates.append(matmul_gflops(device, dtype=rate_dtype))  # again after every group: speed drifts
                print(f"  large-matmul rate: {rates[-1]:.1f} GFLOP/s", flush=True)
    rate = max(rates)  # what the machine can do; every row's fraction is of this one figure
    for r in rows:
        r.update(matmul_gflops=rate, matmul_gflops_all=rates, matmul_fraction=r["gflops"] / rate)
    print()
    print(f"large-matmul rate ({rate_name}): best {rate:.1f} GFLOP/s of {len(rates)} measurements "
          f"({', '.join(f'{x:.0f}' for x in rates)})")
    print(detail_table(rows, rate))
    extra = [run_pretrain_step(name, device, args.amp) for name in args.pretrain_steps]
    if extra:
        print()
        print(pretrain_table(extra))
    print(f"\nbench finished in {time.perf_counter() - start:.0f} s")
    info = {**machine(), "command": "python -m bench.run " + " ".join(sys.argv[1:])}
    append_jsonl(args.out, [{**info, **r} for r in rows + extra])


def detail_table(rows: list[dict], rate: float) -> str:
    """One line per (task, input, mode, contender): time, rate, GFLOP/s, fraction of the matmul rate, memory,
    and the reference's time over our best time on the reference's line."""
    dtype = rows[0].get("matmul_dtype", "fp32") if rows else "fp32"
    lines = [f"| task (input) | mode | model | time | items/s | GFLOP/s | of {dtype} matmul ({rate:.0f} GFLOP/s) | "
             "peak memory (GiB) | ref time / best ours |", "|---" * 9 + "|"]
    for r in rows:
        ratio = f"**{r['ratio_vs_best_ours']:.2f}**" if not r["model"].startswith("ours") else ""
        mem = f"{r['peak_gib']:.2f}" if r["peak_gib"] == r["peak_gib"] else "-"
        if r.get("cache_gib"):
            mem += f" (+{r['cache_gib']:.2f} cached)"
        model = r["model"] + (f" {r['amp']}" if r["amp"] != "none" else "")
        lines.append(f"| {r['task']} {'x'.join(map(str, r['input']))} | {r['mode']} | {model} | "
                     f"{1000 * r['sec']:.0f} ms | {r['items_per_s']:.2f} | {r['gflops']:.0f} | "
                     f"{100 * r['matmul_fraction']:.0f} % | {mem} | {ratio} |")
    return "\n".join(lines)


def pretrain_table(rows: list[dict]) -> str:
    lines = ["| pretraining step (ours alone) | input | time | images/s | peak memory (GiB) | command |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        shape = r.get("input") or [r.get("batch"), 3, r.get("size"), r.get("size")]
        lines.append(f"| {r['task']} {r['model']} | {'x'.join(map(str, shape))} | {r['sec']:.2f} s | "
                     f"{r['images_per_s']:.2f} | {r['peak_gib']:.2f} ({r['peak_kind']}) | `{r['command']}` |")
    return "\n".join(lines)



def _cell(r: dict) -> str:
    """A timed row as 'ms (items/s, peak GiB)'."""
    peak = f", {r['peak_gib']:.2f} GiB" if r["peak_gib"] == r["peak_gib"] else ""
    return f"{1000 * r['sec']:.1f} ms ({r['items_per_s']:.1f}/s{peak})"

def side_by_side(rows: list[dict]) -> str:
    """The older RESULTS.md layout: one line per (task, mode), every contender's time and rate, ratios vs our best."""
    refs = ["timm", "torchvision"]
    names = refs + sorted({r["model"] for r in rows if r["model"].startswith("ours")})
    lines = ["| task (input) | mode | amp | " + " | ".join(names) + " | "
             + " | ".join(f"{n} time / best ours" for n in refs) + " |",
             "|---" * (3 + len(names) + len(refs)) + "|"]
    for key in dict.fromkeys((r["task"], r["mode"]) for r in rows):
        group = {r["model"]: r for r in rows if (r["task"], r["mode"]) == key}
        first = next(iter(group.values()))
        best = min(r["sec"] for n, r in group.items() if n.startswith("ours"))
        lines.append(f"| {key[0]} {'x'.join(map(str, first['input']))} | {key[1]} | {first['amp']} | "
                     + " | ".join(_cell(group[n]) if n in group else "-" for n in names) + " | "
                     + " | ".join(f"**{group[n]['sec'] / best:.2f}**" if n in group else "-" for n in refs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
