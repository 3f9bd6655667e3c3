"""Sharded training (train.strategy=fsdp) under 2-process torchrun on CPU (gloo): the same weights as DDP, sharded
checkpoints that resume exactly at the same world size and load at another, SIGTERM, a consolidated best.pth, and
the start-up errors of bad input."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from cli.train import main_image as main
from core.engine import sharding
from core.engine.checkpoint import CheckpointError, load_checkpoint
from core.engine.config import ConfigError
from helpers import DIGITS, ROOT, TINY_ENGINE, TINY_OPT, engine_cfg

OPTS = [TINY_OPT, "train.epochs=2", "sched.warmup_epochs=1", "train.max_iters_per_epoch=4", "data.batch_size=8",
        "data.eval_batch_size=128", "data.img_size=16", "train.progress=false", "train.tensorboard=false",
        "train.device=cpu", "model.drop_path_rate=0.1", "optim.accum_steps=2", "train.checkpoint_interval=1",
        "train.amp=none"]  # fp32: FSDP is compared with DDP to 1e-5
FSDP = ["train.strategy=fsdp", "train.grad_checkpointing=true"]


def launch(out: str, *extra: str, nproc: int = 2, fault: list[str] | None = None, timeout: int = 240):
    """``core.train`` on the digits recipe under torchrun (through the fault injector when ``fault`` is given)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SWIN_SUITE_CURVES": "0", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    script = [str(ROOT / "tests" / "faults" / "inject.py"), *fault, "core.train"] if fault else ["-m", "core.train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc), *script,
           "--config", DIGITS, "--output-dir", out, "--opt", *OPTS, *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(r: subprocess.CompletedProcess, rc: int = 0) -> str:
    assert r.returncode == rc, r.stdout[-3000:] + r.stderr[-3000:]
    return r.stdout


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted DDP run and FSDP run of the same recipe (2 processes each)."""
    root = tmp_path_factory.mktemp("fsdp")
    ddp, fsdp = str(root / "ddp"), str(root / "fsdp")
    _ok(launch(ddp))
    _ok(launch(fsdp, *FSDP))
    return root, ddp, fsdp


def _weights(run: str) -> dict[str, torch.Tensor]:
    return sharding.read_full_state(os.path.join(run, sharding.LAST), "model.model.")


def test_fsdp_gives_the_weights_of_ddp(runs):
    _, ddp, fsdp = runs
    assert sorted(os.listdir(fsdp)) == ["best.pth", "config.yaml", "last.dcp", "log.txt", "metrics.jsonl",
                                        "prev.dcp", "results.json"]
    ref = load_checkpoint(os.path.join(ddp, "last.pth"))["model"]
    got = _weights(fsdp)
    assert sorted(got) == sorted(ref)
    for k, v in ref.items():
        torch.testing.assert_close(got[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_best_pth_is_one_file_that_load_pretrained_reads(runs):
    from core import create_model, load_pretrained
    _, _, fsdp = runs
    best = load_checkpoint(os.path.join(fsdp, "best.pth"))
    assert best["strategy"] == "fsdp" and best["world_size"] == 2
    model = create_model("swin_t", num_classes=10, **TINY_ENGINE)
    report = load_pretrained(model, os.path.join(fsdp, "best.pth"))
    assert not (report.missing or report.unexpected or report.mismatched)
    for k, v in best["model"].items():
        assert torch.equal(model.state_dict()[k], v), k


def test_sigterm_saves_shards_and_the_resumed_run_equals_an_uninterrupted_one(runs, one_thread):
    root, _, fsdp = runs
    out = str(root / "preempted")
    r = launch(out, *FSDP, fault=["--rank", "0", "--fault", "sigterm", "--at", "2"])
    log = _ok(r, rc=1)  # torchrun's own code (core.engine.torchrun_wrapper passes the workers' 75 on)
    codes = set(re.findall(r"exitcode\s*:\s*(-?\d+)", r.stderr))  # a rank still exiting when torchrun stops it: -15
    assert "75" in codes and codes <= {"75", "-15"}, r.stderr[-2000:]
    assert f"checkpoint {out}/last.dcp written" in log and "last.pth" not in log
    assert sharding.read_sharded(os.path.join(out, sharding.LAST))["iter_in_epoch"] == 2
    shutil.copytree(out, str(root / "preempted_1"))
    log = _ok(launch(out, *FSDP))
    assert "resumed from" in log and "continuing epoch 1 at iteration 3" in log
    a, b = (os.path.join(r, sharding.LAST) for r in (out, fsdp))
    for prefix in ("model.", "optim."):  # the weights, the queues and AdamW's moments: bit for bit
        got, ref = sharding.read_full_state(a, prefix), sharding.read_full_state(b, prefix)
        assert sorted(got) == sorted(ref)
        for k in ref:
            assert torch.equal(got[k], ref[k]), k
    # the same shards continue on one process (the world-size policy of DDP: by samples seen, RNG reseeded)
    one = str(root / "preempted_1")
    assert main(["--config", DIGITS, "--output-dir", one, "--opt", *OPTS, *FSDP]) == 0
    log = open(os.path.join(one, "log.txt")).read()
    assert "world size 2 -> 1, global batch 32 -> 16" in log
    assert sharding.read_sharded(os.path.join(one, sharding.LAST))["iteration"] == 4


@pytest.mark.slow
def test_shards_of_two_processes_continue_on_four(runs):
    root, _, _ = runs
    out = str(root / "four")
    _ok(launch(out, *FSDP, "train.epochs=1"))
    log = _ok(launch(out, *FSDP, nproc=4))
    assert "resumed from" in log and "world size 4 on cpu" in log
    state = sharding.read_sharded(os.path.join(out, sharding.LAST))
    assert state["world_size"] == 4 and state["epoch"] == 2
    assert all(torch.isfinite(v).all() for v in _weights(out).values())


@pytest.mark.slow
def test_eval_only_loads_best_pth_into_the_sharded_model(runs):
    import json
    _, _, fsdp = runs
    _ok(launch(fsdp, *FSDP, "train.eval_only=true"))
    got = json.load(open(os.path.join(fsdp, "eval_results.json")))
    best = json.load(open(os.path.join(fsdp, "results.json")))["best"]
    assert got["checkpoint"].endswith("best.pth") and got["metrics"]["top1"] == best["top1"]


@pytest.mark.slow
@pytest.mark.parametrize("module, recipe", [("simmim.pretrain", "simmim/tiny_digits.yaml"),
                                            ("video_swin.train", "video_swin/tiny_moving_shapes.yaml")])
def test_simmim_and_video_swin_train_sharded(tmp_path, module, recipe):
    from helpers import CONFIGS
    out = str(tmp_path / "run")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SWIN_SUITE_CURVES": "0", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", module,
           "--config", str(CONFIGS / recipe), "--output-dir", out, "--opt", "train.epochs=1",
           "train.max_iters_per_epoch=2", "train.progress=false", "train.tensorboard=false", "train.device=cpu",
           "train.strategy=fsdp"]
    log = _ok(subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240))
    assert "world size 2 on cpu" in log and "FSDP" not in log
    state = sharding.read_sharded(os.path.join(out, sharding.LAST))
    assert state["world_size"] == 2 and state["iteration"] == 2
    assert load_checkpoint(os.path.join(out, "best.pth"))["strategy"] == "fsdp"


# ----------------------------------------------------------------------------------------------- bad input
def test_a_checkpoint_with_a_missing_shard_is_named_and_the_last_complete_one_offered(runs, one_thread, capsys):
    root, _, fsdp = runs
    out = root / "broken"
    shutil.copytree(fsdp, out)
    os.remove(out / "last.dcp" / "__1_0.distcp")
    assert main(["--config", DIGITS, "--output-dir", str(out), "--opt", *OPTS, *FSDP, "train.epochs=3"]) == 2
    assert "checkpoint error: " + str(out / "last.dcp") + " is missing shard file(s) __1_0.distcp" in \
        capsys.readouterr().err
    with pytest.raises(CheckpointError, match=r"missing shard file\(s\) __1_0.distcp.*last complete checkpoint is "
                                              r".*prev.dcp \(epoch 1\)"):
        sharding.read_sharded(str(out / "last.dcp"))
    os.remove(out / "prev.dcp" / sharding.MARKER)  # a half-written one is never taken either
    with pytest.raises(CheckpointError, match="prev.dcp is incomplete"):
        sharding.read_sharded(str(out / "prev.dcp"))
    with pytest.raises(CheckpointError, match="no complete sharded checkpoint is left"):
        sharding.read_sharded(str(out / "last.dcp"))


def test_a_missing_shard_through_the_wrapper_exits_2_with_its_line_once(runs):
    """torchrun_wrapper passes the workers' exit code on and prints each error line once, outside any traceback."""
    root, _, fsdp = runs
    out = root / "broken_wrapped"
    shutil.copytree(fsdp, out)
    os.remove(out / "last.dcp" / "__1_0.distcp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SWIN_SUITE_CURVES": "0", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}
    cmd = [sys.executable, "-m", "core.engine.torchrun_wrapper", "--standalone", "--nproc_per_node", "2", "-m",
           "core.train", "--config", DIGITS, "--output-dir", str(out), "--opt", *OPTS, *FSDP, "train.epochs=3"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    text = r.stdout + r.stderr
    line = f"checkpoint error: {out / 'last.dcp'} is missing shard file(s) __1_0.distcp"
    assert r.returncode == 2, text[-3000:]
    assert text.count(line) == 1 and "Traceback" not in text and "ChildFailedError" not in text, text[-3000:]


def test_the_last_checkpoint_of_a_sharded_run_is_named_by_its_strategy(runs):
    from core.engine.strategy import find_last, strategy_class
    _, ddp, fsdp = runs
    assert strategy_class("fsdp").kept(fsdp) == f"the last checkpoint {fsdp}/last.dcp is kept"
    assert strategy_class("ddp").kept(ddp) == f"the last checkpoint {ddp}/last.pth is kept"
    assert find_last(fsdp) == f"{fsdp}/last.dcp" and find_last(ddp) == f"{ddp}/last.pth"
    with pytest.raises(CheckpointError, match=r"last.pth was written by a train.strategy=ddp run"):
        strategy_class("fsdp").resume_point(ddp, auto_resume=True)


def test_a_mesh_that_does_not_fit_the_world_size_is_a_start_up_error():
    cfg = engine_cfg("train.strategy=fsdp", "train.fsdp_mesh=[2, 2]")
    with pytest.raises(ConfigError, match=r"train.fsdp_mesh = \[2, 2\] has 4 ranks but the run has world size 2"):
        sharding.mesh_shape(cfg.train, 2)
    assert sharding.mesh_shape(cfg.train, 4) == (2, 2)
    with pytest.raises(ConfigError, match="train.fsdp_mesh"):
        engine_cfg("train.fsdp_mesh=[0]")


def test_a_model_without_blocks_or_with_ema_is_a_start_up_error():
    from core.engine.distributed import DistInfo
    cfg = engine_cfg("train.strategy=fsdp")

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Linear(3, 3)

    with pytest.raises(ConfigError, match="cannot shard Linear: it has no 'blocks' list"):
        sharding.shard_task(Plain(), cfg.train, DistInfo(), None)
    with pytest.raises(ConfigError, match="train.strategy=fsdp does not support train.ema=true"):
        engine_cfg("train.strategy=fsdp", "train.ema=true")
    with pytest.raises(ConfigError, match="train.strategy"):
        engine_cfg("train.strategy=zero")


@pytest.mark.parametrize("recipe, millions", [("swin/swin_l_in22k_fsdp.yaml", 228.6),
                                              ("swin_v2/swinv2_l_192_w12_in22k_fsdp.yaml", 228.8),
                                              ("swin_v2/swinv2_g_192_w12_fsdp.yaml", 3087.3)])
def test_the_giant_recipes_load_and_have_the_papers_sizes(recipe, millions):
    """Built on the meta device (nothing allocated); the 22K heads included."""
    import swin_v2  # noqa: F401 -- registers the V2 models
    from core import create_model
    from core.classification.config import ClassificationConfig
    from core.engine.config import load_config
    from helpers import CONFIGS
    cfg = load_config(str(CONFIGS / recipe), [], ClassificationConfig)
    assert cfg.train.strategy == "fsdp" and cfg.train.grad_checkpointing
    with torch.device("meta"):
        model = create_model(cfg.model.name, num_classes=cfg.model.num_classes, **cfg.model.kwargs)
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=0.1)
    assert len(sharding.shard_units(model)) == sum(model.depths)


def test_an_interrupted_sharded_write_is_never_taken_and_is_removed_at_the_next_start(tmp_path):
    from core.engine.preempt import remove_stale_temps
    half = tmp_path / "last.dcp.123-4.tmp"  # what a crash inside save_sharded leaves
    half.mkdir()
    (half / "__0_0.distcp").write_bytes(b"half")
    assert sharding.find_sharded(str(tmp_path)) is None
    assert remove_stale_temps(str(tmp_path)) == [str(half)] and not half.exists()


def test_class_name_sees_through_the_fsdp_subclass():
    from torch.distributed.fsdp import FSDPModule

    from core.engine.strategy import class_name
    plain = nn.Linear(2, 2)
    assert class_name(plain) == "Linear"
    plain.__class__ = type("FSDPLinear", (FSDPModule, nn.Linear), {})  # what fully_shard does to a module
    assert sharding.is_sharded(plain) and class_name(plain) == "Linear"
