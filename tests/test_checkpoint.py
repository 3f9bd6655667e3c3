"""Checkpoints: atomic writes, RNG round trip, mismatch errors, and exact kill-and-resume equivalence."""
from __future__ import annotations

import json
import os
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

from cli.train import main_image as main
from core.engine.checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_state_dict,
    load_checkpoint,
    restore_rng_state,
)
from core.engine.files import atomic_save
from helpers import DIGITS, interrupt_at
from helpers import TINY_OPT as TINY

# dropout-like randomness everywhere: drop path, mixup/cutmix (numpy), random shifts (torch), EMA, label smoothing
COMMON = ["--opt", TINY, "train.epochs=2", "sched.warmup_epochs=1", "train.max_iters_per_epoch=3",
          "data.batch_size=16", "data.img_size=16", "train.progress=false", "train.tensorboard=false",
          "model.drop_path_rate=0.2", "aug.mixup=0.8", "aug.cutmix=1.0", "train.ema=true", "train.ema_decay=0.9",
          "train.device=cpu"]


pytestmark = pytest.mark.usefixtures("one_thread")


def test_atomic_save_keeps_last_good_file_on_crash(tmp_path, monkeypatch):
    path = str(tmp_path / "last.pth")
    atomic_save({"w": torch.ones(3), "epoch": 1}, path)
    good = open(path, "rb").read()
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)  # a full write into the temp file ...
        f.write(b"partial")
        raise OSError("disk full")  # ... then the process dies before the rename

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"w": torch.zeros(3), "epoch": 2}, path)
    monkeypatch.undo()
    assert open(path, "rb").read() == good
    assert os.listdir(tmp_path) == ["last.pth"]  # no temp file left behind
    ckpt = load_checkpoint(path)
    assert ckpt["epoch"] == 1 and torch.equal(ckpt["w"], torch.ones(3))


def test_load_errors(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.pth"):
        load_checkpoint(str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*bad\.pth"):
        load_checkpoint(str(bad))


def test_rng_round_trip_is_weights_only_safe(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    np.random.normal()  # leave a cached gaussian in numpy's state
    state = capture_rng_state()
    path = str(tmp_path / "rng.pth")
    atomic_save({"rng": state}, path)
    expect = (random.random(), np.random.normal(), np.random.rand(), torch.rand(2))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    restore_rng_state(load_checkpoint(path)["rng"])  # weights_only=True load
    got = (random.random(), np.random.normal(), np.random.rand(), torch.rand(2))
    assert got[:3] == expect[:3] and torch.equal(got[3], expect[3])


def test_state_dict_mismatch_lists_keys():
    a = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 4))
    b = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 1))
    with pytest.raises(CheckpointError) as e:
        check_state_dict(a, b.state_dict(), "resume file x.pth")
    msg = str(e.value)
    assert "resume file x.pth does not match the model (Sequential)" in msg
    assert "unexpected in checkpoint (2):\n    3.weight\n    3.bias" in msg
    assert "shape mismatch (2):\n    1.weight: checkpoint (5, 3) vs model (4, 3)" in msg
    check_state_dict(a, {f"module.{k}": v for k, v in a.state_dict().items()})  # DDP prefix is accepted


def _final_state(out):
    ckpt = load_checkpoint(os.path.join(out, "last.pth"))
    return ckpt


def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path, monkeypatch):
    straight = str(tmp_path / "straight")
    common = [*COMMON, "train.log_interval=1"]  # rows after the checkpoint that the kill leaves behind
    assert main(["--config", DIGITS, "--output-dir", straight, *common]) == 0

    # the same run, killed in the middle of epoch 2 ...
    resumed = str(tmp_path / "resumed")
    interrupt_at(monkeypatch, 5)  # iteration 2 of epoch 2
    with pytest.raises(KeyboardInterrupt):
        main(["--config", DIGITS, "--output-dir", resumed, *common])
    monkeypatch.undo()
    assert load_checkpoint(os.path.join(resumed, "last.pth"))["epoch"] == 1
    # ... and auto-resumed from its output directory, after the global RNGs were disturbed
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    assert main(["--config", DIGITS, "--output-dir", resumed, *common]) == 0

    a, b = _final_state(straight), _final_state(resumed)
    assert a["epoch"] == b["epoch"] == 2 and a["iteration"] == b["iteration"] == 6
    for part in ("model", "ema"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.allclose(a[part][k], b[part][k], rtol=0, atol=1e-7), (part, k)
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    for i in sa:
        assert torch.allclose(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"], rtol=0, atol=1e-9)
    assert a["best"] == b["best"]
    assert a["best"]["top1"] >= 0 and a["best"]["epoch"] in (1, 2)
    # the rows the killed run wrote after its checkpoint are dropped on resume: each step is logged once
    steps = {}
    for out in (straight, resumed):
        rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
        steps[out] = [(r["kind"], r["step"]) for r in rows]
    assert steps[resumed] == steps[straight] and len(set(steps[resumed])) == len(steps[resumed])


def test_resume_from_another_model_is_refused_and_keeps_checkpoint(tmp_path, capsys):
    out = str(tmp_path / "run")
    opts = [*COMMON, "train.epochs=1", "sched.warmup_epochs=0"]
    assert main(["--config", DIGITS, "--output-dir", out, *opts]) == 0
    last = os.path.join(out, "last.pth")
    before = open(last, "rb").read()
    other = "model.kwargs={embed_dim: 24, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}"
    # auto-resume of a different model from the same output dir
    rc = main(["--config", DIGITS, "--output-dir", out, *opts, other])
    err = capsys.readouterr().err
    assert rc == 2
    assert f"checkpoint error: resume file {last} does not match the model (SwinTransformer)" in err
    assert "shape mismatch" in err and "patch_embed.proj.weight: checkpoint (16, 3, 4, 4) vs model (24, 3, 4, 4)" in err
    assert open(last, "rb").read() == before
    # explicit --resume into a fresh output dir: same error, nothing written there
    fresh = str(tmp_path / "fresh")
    rc = main(["--config", DIGITS, "--output-dir", fresh, "--resume", last, *opts, other])
    assert rc == 2 and "does not match the model" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(fresh, "last.pth"))
    assert open(last, "rb").read() == before
