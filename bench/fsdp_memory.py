"""Memory per rank under DDP and FSDP: the analytic state of the giant recipes, and a measurement on CPU.

    python -m bench.fsdp_memory analytic                                   # Swin-L, SwinV2-L, SwinV2-G at 8 and 64 ranks
    torchrun --nproc_per_node N -m bench.fsdp_memory measure --strategy fsdp --out results/fsdp_memory_cpu.jsonl

State is what training keeps between steps: fp32 parameters, their gradients and AdamW's two moments, 16 bytes a
parameter on every rank under DDP and 16 / N under FSDP (activations, buffers and communication buckets come on
top). ``measure`` trains a Swin-T-sized model (no data: random 64 x 64 images) for a few AdamW steps and reports,
per rank, the bytes of the tensors this rank holds (the local shards under FSDP: parameters, gradients, optimizer
state) and the process's peak resident memory (``ru_maxrss``) above what it held before the model was built.
Parameters are counted on the meta device: SwinV2-G is never allocated.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from typing import Any

import torch

from bench.run import machine
from core import create_model

GIB = 1024 ** 3
# (name, create_model name, kwargs): the paper's widths and depths; V2 sizes at 192 px, window 12, 1K classes
RECIPES = [
    ("Swin-L", "swin_l", {}),
    ("SwinV2-L", "swin_v2_b", dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), window_size=12,
                                   img_size=192)),
    ("SwinV2-G", "swin_v2_b", dict(embed_dim=512, depths=(2, 2, 42, 4), num_heads=(16, 32, 64, 128), window_size=12,
                                   img_size=192)),
]
# measured models: "small" (12.3 M parameters, 64 px: activations weigh as much as the state) and "wide" (49.0 M,
# 32 px, batch 1: the state dominates the resident memory)
BENCH_MODELS = {"small": (dict(embed_dim=64, depths=(2, 2, 6, 2), num_heads=(2, 4, 8, 16), window_size=4,
                               num_classes=100), 64),
                "wide": (dict(embed_dim=128, depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32), window_size=4,
                              num_classes=100), 32)}


def count_params(name: str, **kw: Any) -> int:
    """Parameters of a model built on the meta device (nothing allocated)."""
    import swin_v2  # noqa: F401 -- registers the V2 models

    with torch.device("meta"):
        model = create_model(name, num_classes=kw.pop("num_classes", 1000), **kw)
    return sum(p.numel() for p in model.parameters())


def analytic(ranks: tuple[int, ...] = (8, 64)) -> str:
    """A markdown table: parameters, state per rank under DDP and under FSDP at each of ``ranks``."""
    head = "| model | parameters | DDP, any rank count (GiB/rank) | " + " | ".join(
        f"FSDP, {n} ranks (GiB/rank)" for n in ranks) + " |"
    rows = [head, "|" + "---|" * (3 + len(ranks))]
    for label, name, kw in RECIPES:
        n = count_params(name, **dict(kw))
        cells = [label, f"{n / 1e6:,.1f} M", f"{16 * n / GIB:.2f}", *(f"{16 * n / k / GIB:.3f}" for k in ranks)]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _local_bytes(t: torch.Tensor) -> int:
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.numel() * t.element_size()


def measure(strategy: str, steps: int, batch: int, size: str = "small") -> dict[str, Any]:
    """Train a BENCH_MODELS model ``steps`` AdamW steps under ``strategy``; this rank's state bytes and peak RSS."""
    from torch.nn.parallel import DistributedDataParallel

    from core.engine import distributed as du
    from core.engine import sharding
    from core.engine.config import TrainConfig

    info = du.init_distributed("cpu")
    torch.manual_seed(0)
    base_rss = _rss_bytes()
    kw, px = BENCH_MODELS[size]
    model = create_model("swin_t", **kw)
    n_params = sum(p.numel() for p in model.parameters())
    train_model = model
    if strategy == "fsdp":
        sharding.shard_task(model, TrainConfig(strategy="fsdp"), info, None)
    elif info.distributed:
        train_model = DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 3, px, px)
    y = torch.randint(0, kw["num_classes"], (batch,))
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(train_model(x), y)
        loss.backward()
        opt.step()
        state = _state_bytes(model, opt)  # before zero_grad: the gradients are part of the state
        opt.zero_grad(set_to_none=True)
    row = {"model": size, "img_size": px, "batch": batch, "strategy": strategy, "world_size": info.world_size,
           "rank": info.rank, "params": n_params,
           "state_bytes": state, "analytic_bytes": 16 * n_params // (info.world_size if strategy == "fsdp" else 1),
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
           "peak_rss_above_start_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss,
           "step_s": (time.perf_counter() - start) / steps}
    rows = du.all_gather_object(row)
    du.cleanup()
    return {"ranks": rows} if info.is_main else {}


def _state_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> int:
    n = 0
    for p in model.parameters():
        n += _local_bytes(p)
        if p.grad is not None:
            n += _local_bytes(p.grad)
    for st in opt.state.values():
        n += sum(_local_bytes(v) for v in st.values() if isinstance(v, torch.Tensor) and v.ndim > 0)
    return n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("what", choices=["analytic", "measure"])
    p.add_argument("--strategy", choices=["ddp", "fsdp"], default="fsdp")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--batch", type=int, default=2, help="images per rank")
    p.add_argument("--size", choices=sorted(BENCH_MODELS), default="small")
    p.add_argument("--out", default="", help="append the measurement as one JSON line")
    a = p.parse_args(argv)
    if a.what == "analytic":
        print(analytic())
        return 0
    torch.set_num_threads(1)
    res = measure(a.strategy, a.steps, a.batch, a.size)
    if not res:
        return 0
    res.update(commit=machine()["commit"], machine=f"{platform.node()} {os.cpu_count()} cores, torch {torch.__version__}",
               command=f"torchrun --nproc_per_node {res['ranks'][0]['world_size']} -m bench.fsdp_memory measure "
                       f"--strategy {a.strategy} --steps {a.steps} --batch {a.batch} --size {a.size}",
               date=time.strftime("%Y-%m-%d"))
    for r in res["ranks"]:
        print(f"{a.size} {a.strategy} world {r['world_size']} rank {r['rank']}: state {r['state_bytes'] / 2**20:.1f} MiB "
              f"(analytic {r['analytic_bytes'] / 2**20:.1f}), peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB "
              f"({r['peak_rss_above_start_bytes'] / 2**20:.0f} above start)")
    if a.out:
        with open(a.out, "a") as f:
            f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
