"""2-process torchrun DDP on CPU (gloo): training, exact sharded evaluation, one checkpoint location."""
from __future__ import annotations

import json
import os

import pytest
import torch

from cli.train import main_image as main
from core.engine.checkpoint import load_checkpoint
from helpers import DIGITS, torchrun
from helpers import TINY_OPT as TINY

OPTS = [TINY, "train.epochs=1", "sched.warmup_epochs=0", "train.max_iters_per_epoch=4", "data.batch_size=16",
        "data.eval_batch_size=64", "data.img_size=16", "train.progress=false", "train.tensorboard=false",
        "train.device=cpu"]


def test_torchrun_two_process_cpu_matches_single_process_eval(tmp_path, capsys):
    out = tmp_path / "ddp"
    log = torchrun("core.train", "--config", DIGITS, "--output-dir", str(out), "--opt", *OPTS)
    assert "world size 2 on cpu; batch 16 per process x 2 processes x 1 accumulation = global batch 32" in log
    assert log.count("resolved config:") == 1  # printed by rank 0 only
    assert log.count("best top-1") == 1

    # one checkpoint location, written once, no stray temp files
    assert sorted(os.listdir(out)) == ["best.pth", "config.yaml", "last.pth", "log.txt", "metrics.jsonl",
                                       "results.json"]
    ckpt = load_checkpoint(str(out / "last.pth"))
    assert ckpt["epoch"] == 1 and ckpt["iteration"] == 4 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])  # per-rank augmentation streams
    rows = [json.loads(line) for line in open(out / "metrics.jsonl")]
    assert [r["kind"] for r in rows].count("epoch") == 1
    ddp = json.load(open(out / "results.json"))
    assert ddp["global_batch"] == 32 and ddp["world_size"] == 2
    assert ddp["final"]["count"] == 360  # every validation image exactly once across the two ranks

    # single-process evaluation of the same weights
    single = tmp_path / "single"
    torch.set_num_threads(1)
    rc = main(["--config", DIGITS, "--output-dir", str(single), "--resume", str(out / "last.pth"), "--eval-only",
               "--opt", *OPTS])
    assert rc == 0
    one = json.load(open(single / "eval_results.json"))  # an evaluation writes its own record
    assert one["checkpoint"] == str(out / "last.pth") and one["metrics"]["count"] == 360
    assert one["metrics"]["top1"] == ddp["final"]["top1"]
    assert one["metrics"]["top5"] == ddp["final"]["top5"]
    assert one["metrics"]["loss"] == pytest.approx(ddp["final"]["loss"], rel=1e-5)
    assert not os.path.exists(single / "last.pth")  # evaluation writes no checkpoint


def test_restart_store_isolates_each_single_node_attempt(monkeypatch):
    """torchrun's shared agent store (torch >= 2.5) keeps a killed attempt's keys: each restart gets its own prefix."""
    from core.engine.distributed import _restart_store

    agent = torch.distributed.TCPStore("127.0.0.1", 0, 1, is_master=True)
    env = {"TORCHELASTIC_USE_AGENT_STORE": "True", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(agent.port),
           "LOCAL_WORLD_SIZE": "2", "TORCHELASTIC_MAX_RESTARTS": "1"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for attempt, address in (("0", b"killed rank's port"), ("1", b"live rank's port")):
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", attempt)
        _restart_store(2, 0).set("default_pg/0", address)
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert _restart_store(2, 0).get("default_pg/0") == b"live rank's port"  # not the stale key of attempt 0
    assert agent.get("attempt_0/default_pg/0") == b"killed rank's port"

    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "False")  # the agent opted out: env:// builds the store
    assert _restart_store(2, 0) is None
    monkeypatch.setenv("TORCHELASTIC_USE_AGENT_STORE", "True")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # two nodes: restart counts differ between agents, so no prefix
    with pytest.warns(UserWarning, match="TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1"):
        assert _restart_store(2, 0) is None
