"""Run folders and records: a fresh folder per run, resume only when asked, finished runs left alone,
evaluations with their own record; the README's command sequence end to end."""
from __future__ import annotations

import json

import pytest

from cli.train import main_image as main
from helpers import CONFIGS, DIGITS, TINY_OPT, torchrun

MLP_DIGITS = str(CONFIGS / "swin_mlp" / "tiny_digits.yaml")
QUICK = ["train.epochs=1", "sched.warmup_epochs=0", "train.max_iters_per_epoch=2", "data.batch_size=16",
         "data.img_size=16", "train.progress=false", "train.tensorboard=false", "train.device=cpu"]
MLP_TINY = "model.kwargs={embed_dim: 24, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}"

pytestmark = pytest.mark.usefixtures("one_thread")


def _runs(root, name):
    folder = root / name
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name != "latest") if folder.is_dir() else []


@pytest.mark.slow  # four entry points in a row; each folder rule is also tested alone below
def test_readme_sequence_each_command_trains_in_its_own_folder(tmp_path, monkeypatch):
    from cli.train import main_image as mlp_main
    monkeypatch.setenv("SWIN_OUTPUT_ROOT", str(tmp_path / "outputs"))
    monkeypatch.chdir(tmp_path)
    assert main(["--config", DIGITS, "--opt", TINY_OPT, *QUICK]) == 0
    assert mlp_main(["--config", MLP_DIGITS, "--opt", MLP_TINY, *QUICK]) == 0   # used to hit the Swin run's last.pth
    torchrun("core.train", "--config", DIGITS, "--opt", TINY_OPT, *QUICK)
    swin, mlp = _runs(tmp_path / "outputs", "tiny_digits"), _runs(tmp_path / "outputs", "swin_mlp_tiny_digits")
    assert len(swin) == 2 and len(mlp) == 1
    for run in swin + mlp:  # each trained: one epoch, its own records
        res = json.load(open(run / "results.json"))
        assert res["epochs"] == 1 and res["time_s"] > 0 and "top1" in res["final"]
    assert {json.load(open(r / "results.json"))["world_size"] for r in swin} == {1, 2}
    latest = tmp_path / "outputs" / "tiny_digits" / "latest"  # recipes can name <name>/latest/best.pth
    assert latest.resolve() == max(swin, key=lambda r: (r / "last.pth").stat().st_mtime).resolve()


def test_named_folder_continues_finished_run_is_left_alone_and_resume_auto(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SWIN_OUTPUT_ROOT", str(tmp_path / "outputs"))
    out = tmp_path / "run"
    assert main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY_OPT, *QUICK]) == 0
    records = {f: (out / f).read_bytes() for f in ("results.json", "last.pth", "config.yaml", "metrics.jsonl")}
    capsys.readouterr()
    assert main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY_OPT, *QUICK]) == 0
    assert "already complete: 1 epochs; raise train.epochs to continue" in capsys.readouterr().out
    assert {f: (out / f).read_bytes() for f in records} == records  # nothing rewritten
    # raising the epochs continues the named folder
    assert main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY_OPT, *QUICK, "train.epochs=2"]) == 0
    assert json.load(open(out / "results.json"))["epochs"] == 2
    # --resume auto: the newest run of the recipe holding a last.pth (none yet under SWIN_OUTPUT_ROOT: a fresh run)
    assert main(["--config", DIGITS, "--resume", "auto", "--opt", TINY_OPT, *QUICK]) == 0
    first = _runs(tmp_path / "outputs", "tiny_digits")
    assert len(first) == 1
    assert main(["--config", DIGITS, "--resume", "auto", "--opt", TINY_OPT, *QUICK, "train.epochs=2"]) == 0
    assert _runs(tmp_path / "outputs", "tiny_digits") == first  # continued, no new folder
    assert json.load(open(first[0] / "results.json"))["epochs"] == 2


def test_eval_only_reads_best_and_writes_its_own_record(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY_OPT, *QUICK, "train.epochs=2"]) == 0
    before = {f: (out / f).read_bytes() for f in ("results.json", "metrics.jsonl", "config.yaml")}
    capsys.readouterr()
    assert main(["--config", DIGITS, "--output-dir", str(out), "--eval-only", "--opt", TINY_OPT, *QUICK]) == 0
    log = capsys.readouterr().out
    assert {f: (out / f).read_bytes() for f in before} == before  # training records byte-identical
    rec = json.load(open(out / "eval_results.json"))
    best = json.load(open(out / "results.json"))["best"]
    assert rec["checkpoint"] == str(out / "best.pth") and rec["data"]["dataset"] == "digits"
    assert rec["metrics"]["top1"] == best["top1"] and rec["metrics"]["count"] == 360
    assert "epoch 1/" not in log and "iterations /" not in log  # no training lines
    # a run that started from another run's checkpoint: --eval-only evaluates its own folder, not that checkpoint
    out2 = tmp_path / "run2"
    assert main(["--config", DIGITS, "--output-dir", str(out2), "--resume", str(out / "last.pth"), "--opt", TINY_OPT,
                 *QUICK, "train.epochs=3"]) == 0
    assert (out2 / "best.pth").is_file()  # the best so far came along, whether or not epoch 3 beat it
    assert main(["--output-dir", str(out2), "--eval-only"]) == 0
    assert json.load(open(out2 / "eval_results.json"))["checkpoint"] == str(out2 / "best.pth")


def test_a_ddp_run_never_restarts_a_sharded_run_folder(tmp_path):
    from core.engine.checkpoint import CheckpointError
    from core.engine.rundir import resume_path
    from helpers import engine_cfg
    (tmp_path / "last.dcp").mkdir()
    with pytest.raises(CheckpointError, match=r"last.dcp was written by a train.strategy=fsdp run; continue it with "
                                              r"train.strategy=fsdp \(or --resume"):
        resume_path(engine_cfg(output_dir=str(tmp_path)))


def test_unknown_model_argument_is_named(tmp_path, capsys):
    rc = main(["--config", DIGITS, "--output-dir", str(tmp_path), "--opt", *QUICK,
               "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], windw_size: 4}"])
    err = capsys.readouterr().err
    assert rc == 2 and "config error: model 'swin_t' does not take" in err and "'windw_size'" in err


def test_latest_follows_checkpoints_and_eval_only_finds_the_newest_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SWIN_OUTPUT_ROOT", str(tmp_path / "outputs"))
    assert main(["--config", DIGITS, "--opt", TINY_OPT, *QUICK]) == 0
    latest = tmp_path / "outputs" / "tiny_digits" / "latest"
    good = latest.resolve()
    # a run that fails at start leaves latest where it was
    assert main(["--config", DIGITS, "--resume", str(tmp_path / "nope.pth"), "--opt", TINY_OPT, *QUICK]) == 2
    assert latest.resolve() == good and (latest / "best.pth").is_file()
    capsys.readouterr()
    # --eval-only without a folder: the newest run's best.pth; with --output-dir: no --config needed
    assert main(["--config", DIGITS, "--eval-only", "--opt", TINY_OPT, *QUICK]) == 0
    assert json.load(open(good / "eval_results.json"))["checkpoint"] == str(good / "best.pth")
    (good / "eval_results.json").unlink()
    assert main(["--output-dir", str(good), "--eval-only"]) == 0
    assert json.load(open(good / "eval_results.json"))["metrics"]["count"] == 360
    assert main(["--eval-only"]) == 2 and "give --config RECIPE.yaml" in capsys.readouterr().err


def test_a_start_up_error_leaves_no_empty_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SWIN_OUTPUT_ROOT", str(tmp_path / "outputs"))
    assert main(["--config", DIGITS, "--opt", TINY_OPT, *QUICK, "train.amp=fp16"]) == 2
    assert "config error: train.amp=fp16 on CPU" in capsys.readouterr().err
    assert not list((tmp_path / "outputs").rglob("*.txt"))  # the fresh folder went again; the error was printed
    named = tmp_path / "named"
    assert main(["--config", DIGITS, "--output-dir", str(named), "--opt", TINY_OPT, *QUICK, "train.amp=fp16"]) == 2
    assert "train.amp=fp16" in (named / "log.txt").read_text()  # a folder the user named keeps the log


@pytest.mark.parametrize("opts, kind", [
    (["model.num_classes=4"], "config error: model.num_classes = 4 but the dataset has 10 classes"),
    (["data.dataset=imagefolder", "data.root=EMPTY"], "data error: data folder not found"),
    (["model.pretrained=GARBAGE"], "checkpoint error: model.pretrained = "),
    (["model.pretrained=PICKLE"], "holds objects other than tensors and plain containers, refused without running"),
])
def test_a_start_up_error_leaves_no_run_folder(opts, kind, tmp_path, monkeypatch, capsys):
    """A config, data or checkpoint error at start: one line, and the folder this call created is gone (its recipe's
    folder too when it is left empty); a folder the user named keeps its log."""
    import pickle

    (tmp_path / "empty").mkdir()
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")

    class Boom:
        def __reduce__(self):
            return (print, ("this must never run",))

    (tmp_path / "pickle.pth").write_bytes(pickle.dumps({"model": Boom()}))
    opts = [o.replace("EMPTY", str(tmp_path / "empty")).replace("GARBAGE", str(tmp_path / "garbage.pth"))
            .replace("PICKLE", str(tmp_path / "pickle.pth")) for o in opts]
    monkeypatch.setenv("SWIN_OUTPUT_ROOT", str(tmp_path / "outputs"))
    assert main(["--config", DIGITS, "--opt", TINY_OPT, *QUICK, *opts]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and kind in err[0], captured.err
    assert "weights_only=False" not in captured.err + captured.out and "this must never run" not in captured.out
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*"))
    named = tmp_path / "mine"
    assert main(["--config", DIGITS, "--output-dir", str(named), "--opt", TINY_OPT, *QUICK, *opts]) == 2
    assert kind in (named / "log.txt").read_text()
