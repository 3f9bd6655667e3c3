"""Shared pieces of the fault suite: a tiny digits run with every source of randomness, and its comparison."""
from __future__ import annotations

import os
import subprocess
import sys

import torch

from core.engine.checkpoint import load_checkpoint
from helpers import DIGITS, ROOT, TINY_OPT

# dropout-like randomness everywhere: drop path, mixup/cutmix (numpy), random shifts (torch), EMA, label smoothing
RUN = ["--config", DIGITS, "--opt", TINY_OPT, "train.epochs=2", "sched.warmup_epochs=1", "train.max_iters_per_epoch=4",
       "data.batch_size=16", "data.img_size=16", "train.progress=false", "train.tensorboard=false",
       "model.drop_path_rate=0.2", "aug.mixup=0.8", "aug.cutmix=1.0", "train.ema=true", "train.ema_decay=0.9",
       "train.device=cpu", "train.checkpoint_interval=1"]
STEPS = 8  # 2 epochs x 4 iterations


def run(out: str, *extra: str, fault: tuple[str, int] | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    """``python -m core.train`` (through the injector when ``fault`` = (kind, step)) in a fresh process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    cmd = [sys.executable]
    if fault:
        cmd += [str(ROOT / "tests" / "faults" / "inject.py"), "--fault", fault[0], "--at", str(fault[1])]
    else:
        cmd += ["-m"]
    cmd += ["core.train", *RUN[:2], "--output-dir", out, *RUN[2:], *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def assert_same_run(a_dir: str, b_dir: str) -> None:
    """The final checkpoints of two runs hold identical weights, EMA, optimizer state and progress."""
    a, b = load_checkpoint(os.path.join(a_dir, "last.pth")), load_checkpoint(os.path.join(b_dir, "last.pth"))
    assert (a["epoch"], a["iteration"]) == (b["epoch"], b["iteration"])
    for part in ("model", "ema"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    for i, st in a["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg"], b["optimizer"]["state"][i]["exp_avg"]), i
    assert a["best"] == b["best"]
