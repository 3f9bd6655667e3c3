"""Numerical faults: a NaN loss stops the run (exit 3, logged, no checkpoint with non-finite weights) or, with
train.nonfinite=skip, skips that step and counts it."""
from __future__ import annotations

import json
import os

import torch

from core.engine.checkpoint import load_checkpoint
from faults.helpers_faults import run


def test_nan_loss_stops_logs_and_keeps_the_last_good_checkpoint(tmp_path):
    out = str(tmp_path / "run")
    r = run(out, "train.log_interval=1", fault=("nan", 6))
    assert r.returncode == 3, r.stdout[-2000:] + r.stderr[-2000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "stopped: loss is nan at epoch 2 iteration 2" in log
    ckpt = load_checkpoint(os.path.join(out, "last.pth"))
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())
    assert ckpt["epoch"] * 4 + ckpt.get("iter_in_epoch", 0) == 5  # the step before the NaN


def test_nan_loss_is_skipped_and_counted(tmp_path):
    out = str(tmp_path / "run")
    r = run(out, "train.nonfinite=skip", fault=("nan", 3))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "non-finite loss at epoch 1 iteration 3: step skipped (1 so far" in r.stdout
    res = json.load(open(os.path.join(out, "results.json")))
    assert res["final"]["nonfinite_skipped"] == 1 and res["epochs"] == 2
    ckpt = load_checkpoint(os.path.join(out, "last.pth"))
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values())


def test_non_finite_weights_are_never_saved(tmp_path):
    import pytest
    import torch.nn as nn

    from core.classification.task import ClassificationTask
    from core.engine import Trainer
    from helpers import engine_cfg
    net = nn.Linear(4, 3)
    tr = Trainer(engine_cfg(output_dir=str(tmp_path)), ClassificationTask(net), [(torch.randn(4, 4), torch.zeros(4,
                 dtype=torch.long))], None)
    with torch.no_grad():
        net.weight[0, 0] = float("inf")
    with pytest.raises(FloatingPointError, match=r"weights are not finite .* no checkpoint was written"):
        tr.save(True)
    assert not os.listdir(tmp_path) or not any(f.endswith(".pth") for f in os.listdir(tmp_path))
