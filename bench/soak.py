"""Memory over a long run: inference over N distinct random input sizes, RSS sampled after every call.

``python -m bench.soak [--modes 2d multiscale 3d] [--sizes 100] [--warmup 25] [--cache-mb MB] [--out F.jsonl]``

Modes (eval, no grad, batch 1, fresh weights): ``2d`` Swin forward on random HxW in [--min, --max] px,
``multiscale`` ``forward_multiscale`` (the four stage outputs a detector reads) on the same kind of sizes,
``3d`` Video Swin on random TxHxW clips, each mode in its own process. Each reports the process RSS (VmRSS, the
resident size now) and its peak (VmHWM) after the warm-up size and after the last, their growth in between, and
the per-shape constant cache (entries, MB) and the model's eval-mode folded attention biases (MB: the latest size's
plus the bounded pool of earlier sizes'). ``--cache-mb inf`` measures the unbounded caches of before issue 28.

``predict``, ``extract`` and ``train`` (bench/soak_video.py): the video tools over ``--clips`` generated mp4s and
``--epochs`` training epochs with ``--workers`` DataLoader workers; RSS and open files of the main process and of
each worker.

Most of the RSS growth over many sizes is glibc's heap, not the cache: freed tensors between long-lived ones stay
resident. core switches glibc to mmapping large blocks once many sizes have been seen (core/malloc.py; each row
records ``heap``: switched / skipped / pending); ``SWIN_SUITE_MALLOC=off`` measures glibc's default, and
``MALLOC_MMAP_THRESHOLD_`` (recorded too) fixes the threshold from the start.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import subprocess
import sys
import time
from typing import Callable, Sequence

import torch

import core
from bench.run import append_jsonl, machine
from core.malloc import heap_state
from core.nn.attention import folded_bias_bytes

MODELS = {"2d": "swin_t", "multiscale": "swin_t", "3d": "video_swin_t"}
FILE_MODES = ("predict", "extract", "train")  # bench/soak_video.py: files through the video tools, epochs


def memory_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak (MB), from /proc/self/status (ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            fields = dict(line.split(":", 1) for line in f)
        return {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024}
    except OSError:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"rss_mb": peak, "hwm_mb": peak}


def open_fds() -> int:
    """Open file descriptors of this process (-1 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def random_shapes(mode: str, n: int, lo: int, hi: int, frames: tuple[int, int], seed: int) -> list[tuple[int, ...]]:
    """``n`` distinct input shapes (C, H, W) or (C, T, H, W), drawn uniformly."""
    rng = random.Random(seed)
    shapes: dict[tuple[int, ...], None] = {}
    while len(shapes) < n:
        hw = (rng.randint(lo, hi), rng.randint(lo, hi))
        shapes[(3, rng.randint(*frames), *hw) if mode == "3d" else (3, *hw)] = None
    return list(shapes)


def call_for(mode: str, model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    """The inference call of a mode."""
    return model.forward_multiscale if mode == "multiscale" else model


def soak(mode: str, shapes: Sequence[tuple[int, ...]], warmup: int, model_name: str) -> dict:
    """Run every shape once; RSS, peak RSS, cache and open files after each call; growth after the warm-up."""
    torch.manual_seed(0)
    model = create_eval_model(model_name)
    run = call_for(mode, model)
    core.nn.cache.CACHE.clear()
    samples = []
    start = time.perf_counter()
    with torch.no_grad():
        for i, shape in enumerate(shapes, 1):
            run(torch.randn(1, *shape))
            info = core.cache_info()
            samples.append({"n": i, **memory_mb(), "cache_mb": info["bytes"] / 2**20, "entries": info["entries"],
                            "folded_bias_mb": folded_bias_bytes(model) / 2**20, "fds": open_fds()})
    seconds = time.perf_counter() - start
    w, last = samples[warmup - 1], samples[-1]
    return {
        "bench": "soak", "mode": mode, "model": model_name, "sizes": len(shapes), "warmup": warmup,
        "cache_limit_mb": core.cache_info()["limit_mb"], "seconds": round(seconds, 1), "heap": heap_state(),
        "swin_suite_malloc": os.environ.get("SWIN_SUITE_MALLOC", "auto"),
        "rss_mb_at_warmup": round(w["rss_mb"], 1), "rss_mb_at_end": round(last["rss_mb"], 1),
        "rss_growth_mb": round(last["rss_mb"] - w["rss_mb"], 1),
        "max_rss_mb_at_warmup": round(w["hwm_mb"], 1), "max_rss_mb_at_end": round(last["hwm_mb"], 1),
        "max_rss_growth_mb": round(last["hwm_mb"] - w["hwm_mb"], 1),
        "cache_mb_at_warmup": round(w["cache_mb"], 1), "cache_mb_at_end": round(last["cache_mb"], 1),
        "cache_entries_at_end": last["entries"], "fds_growth": last["fds"] - w["fds"],
        "folded_bias_mb_at_warmup": round(w["folded_bias_mb"], 1), "folded_bias_mb_at_end": round(last["folded_bias_mb"], 1),
        "folded_bias_mb_max": round(max(s["folded_bias_mb"] for s in samples), 1),
        "samples": [{k: round(v, 1) if isinstance(v, float) else v for k, v in s.items()} for s in samples],
    }


def create_eval_model(name: str) -> torch.nn.Module:
    """A fresh-weight model in eval mode."""
    return core.create_model(name).eval()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--modes", nargs="+", default=["2d", "multiscale", "3d"], choices=[*MODELS, *FILE_MODES])
    p.add_argument("--sizes", type=int, default=100, help="distinct input sizes per mode")
    p.add_argument("--warmup", type=int, default=25, help="growth is measured from this size on")
    p.add_argument("--min", type=int, default=224, help="smallest height/width (px)")
    p.add_argument("--max", type=int, default=640, help="largest height/width (px)")
    p.add_argument("--frames", type=int, nargs=2, default=(8, 32), help="3d: clip length range")
    p.add_argument("--min-3d", type=int, default=112, help="3d: smallest height/width")
    p.add_argument("--max-3d", type=int, default=224, help="3d: largest height/width")
    p.add_argument("--model", default="", help="override the model of every mode")
    p.add_argument("--cache-mb", type=float, default=None, help="cache limit (default: $SWIN_SUITE_CACHE_MB or 128)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="append one JSON line per mode")
    v = p.add_argument_group("predict / extract / train (bench/soak_video.py)")
    v.add_argument("--clips", type=int, default=2000, help="predict/extract: generated mp4 clips")
    v.add_argument("--warmup-clips", type=int, default=200, help="predict/extract: growth from this clip on")
    v.add_argument("--every", type=int, default=20, help="predict/extract: sample every n forward passes")
    v.add_argument("--checkpoint", default="", help="predict/extract: a Video Swin checkpoint (default: the tiny "
                                                     "recipe trained one epoch into --data-dir)")
    v.add_argument("--epochs", type=int, default=20, help="train: epochs of the embedded tiny recipe")
    v.add_argument("--warmup-epochs", type=int, default=2, help="train: growth from the end of this epoch on")
    v.add_argument("--num-train", type=int, default=64, help="train: generated training clips")
    v.add_argument("--workers", type=int, default=2, help="DataLoader workers")
    v.add_argument("--data-dir", default="", help="generated clips, checkpoint and runs (default: "
                                                   "$TMPDIR/swin_suite_soak)")
    args = p.parse_args(argv)
    if not 1 <= args.warmup <= args.sizes:
        p.error(f"--warmup must be between 1 and --sizes ({args.sizes}), got {args.warmup}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cache_mb is not None:
        core.set_cache_limit(args.cache_mb)
    argv = list(sys.argv[1:] if argv is None else argv)
    command = os.environ.get("BENCH_SOAK_COMMAND") or "python -m bench.soak " + " ".join(map(shlex.quote, argv))
    if len(args.modes) > 1:  # one process per mode: no mode inherits another's heap
        env = dict(os.environ, BENCH_SOAK_COMMAND=command)
        for mode in args.modes:
            subprocess.run([sys.executable, "-m", "bench.soak", *argv, "--modes", mode], check=True, env=env)
        return 0
    rows = []
    for mode in args.modes:
        if mode in FILE_MODES:
            from bench.soak_video import run_mode
            row = run_mode(mode, args)
            row.update(command=command, **machine())
            rows.append(row)
            unit = "epochs" if mode == "train" else "clips"
            w = "" if "worker_rss_mb_growth" not in row else (
                f", workers RSS {row['worker_rss_mb_at_warmup']:.0f} -> {row['worker_rss_mb_at_end']:.0f} MB"
                f" ({row['worker_rss_mb_growth']:+.0f}), worker fds max {row['worker_max_fds']}")
            print(f"{mode:10s} {unit} {row['warmup']}->{row['samples'][-1]['n']}: RSS {row['rss_mb_at_warmup']:.0f}"
                  f" -> {row['rss_mb_at_end']:.0f} MB ({row['rss_growth_mb']:+.0f}, spread "
                  f"{row['rss_spread_mb_after_warmup']:.0f}), fds {row['fds_at_warmup']} -> {row['fds_at_end']}{w},"
                  f" {row['seconds']:.0f} s", flush=True)
            continue
        lo, hi = (args.min_3d, args.max_3d) if mode == "3d" else (args.min, args.max)
        shapes = random_shapes(mode, args.sizes, lo, hi, tuple(args.frames), args.seed)
        row = soak(mode, shapes, args.warmup, args.model or MODELS[mode])
        row.update(command=command, **machine())
        rows.append(row)
        limit = "inf" if math.isinf(row["cache_limit_mb"]) else f"{row['cache_limit_mb']:g}"
        print(f"{mode:10s} {row['model']:13s} sizes {args.warmup}->{args.sizes}: RSS {row['rss_mb_at_warmup']:.0f}"
              f" -> {row['rss_mb_at_end']:.0f} MB ({row['rss_growth_mb']:+.0f}), max RSS "
              f"{row['max_rss_mb_at_warmup']:.0f} -> {row['max_rss_mb_at_end']:.0f} MB "
              f"({row['max_rss_growth_mb']:+.0f}), cache {row['cache_mb_at_warmup']:.0f} -> "
              f"{row['cache_mb_at_end']:.0f} MB (limit {limit}), folded biases {row['folded_bias_mb_at_warmup']:.0f} -> "
              f"{row['folded_bias_mb_at_end']:.0f} MB, {row['seconds']:.0f} s", flush=True)
    append_jsonl(args.out, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
