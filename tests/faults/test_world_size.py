"""World-size changes on resume: a checkpoint written inside an epoch by 2 processes continues on 1, and one of 1
process on 2, at the position of samples seen (the epoch's permutation is dealt round-robin, so its first
k * B * W positions are done at any world size): the change is logged in one line, no sample of the epoch is
trained twice, and the lr schedule ends where the config says."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DistributedSampler

from core.engine.checkpoint import load_checkpoint
from faults.helpers_faults import RUN, run
from helpers import ROOT

EIGHT = "train.max_iters_per_epoch=8"


def test_the_sampler_deals_one_permutation_whose_prefix_any_world_size_consumes():
    """The property the position mapping rests on: after k iterations of B on W ranks, the first k*B*W positions
    of the epoch's order are done, whatever W."""
    data = list(range(50))

    def done(world, batch, iters):
        got = []
        for r in range(world):
            s = DistributedSampler(data, num_replicas=world, rank=r, shuffle=True, seed=3)
            s.set_epoch(2)
            got += list(s)[:iters * batch]
        return sorted(got)
    s1 = DistributedSampler(data, num_replicas=1, rank=0, shuffle=True, seed=3)
    s1.set_epoch(2)
    order = list(s1)
    assert done(2, 4, 3) == sorted(order[:24]) == done(1, 4, 6) == done(3, 2, 4)


def _torchrun(out: str, *extra: str, fault: list[str] | None = None, timeout: int = 300):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    script = [str(ROOT / "tests" / "faults" / "inject.py"), *fault, "core.train"] if fault else ["-m", "core.train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *script,
           *RUN[:2], "--output-dir", out, *RUN[2:], *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _final(out):
    ckpt = load_checkpoint(os.path.join(out, "last.pth"))
    return ckpt, json.load(open(os.path.join(out, "results.json")))["final"]


@pytest.mark.slow
def test_two_processes_to_one(tmp_path):
    straight = str(tmp_path / "straight")
    assert run(straight, EIGHT).returncode == 0
    out = str(tmp_path / "run")
    r = _torchrun(out, EIGHT, fault=["--rank", "0", "--fault", "sigterm", "--at", "2"])
    assert "stopped by SIGTERM at epoch 1 iteration 2/8" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    r = run(out, EIGHT)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert ("world size 2 -> 1, global batch 32 -> 16: epoch 1 was interrupted after 64 samples (2 iterations of "
            "16 x 2) and continues at iteration 5 of 8 (0 samples of it left out, none trained twice)") in r.stdout
    ckpt, final = _final(out)
    ref, ref_final = _final(straight)
    assert ckpt["iteration"] == ref["iteration"] == 16  # 2 epochs x 8 updates: the schedule ends where it should
    assert final["lr"] == pytest.approx(ref_final["lr"])
    assert "the schedule continues at update 4 of 16; RNG streams reseeded" in r.stdout  # the same line
    assert "was saved with another world size" not in r.stdout  # one line, not three


@pytest.mark.slow
def test_one_process_to_two(tmp_path):
    out = str(tmp_path / "run")
    r = run(out, EIGHT, fault=("sigterm", 3))
    assert r.returncode == 75, r.stdout[-2000:] + r.stderr[-2000:]
    r = _torchrun(out, EIGHT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert ("world size 1 -> 2, global batch 16 -> 32: epoch 1 was interrupted after 48 samples (3 iterations of "
            "16 x 1) and continues at iteration 3 of 8 (16 samples of it left out, none trained twice); the schedule "
            "continues at update 2 of 16") in r.stdout
    ckpt, final = _final(out)
    assert ckpt["iteration"] == 16 and ckpt["world_size"] == 2
    min_lr = ckpt["config"]["sched"]["min_lr"]
    base = ckpt["config"]["optim"]["lr_base_size"]
    assert final["lr"] == pytest.approx(min_lr * (32 / base if base else 1.0), rel=1e-3)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
