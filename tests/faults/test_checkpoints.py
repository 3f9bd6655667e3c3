"""Checkpoint faults: truncated, random, malicious, another model or class count, a full disk (for checkpoints,
torch's own write errors, results and metrics), an unreadable last.pth beside a good best.pth, resuming with
changed settings; files written for colleagues honour the umask."""
from __future__ import annotations

import errno
import json
import os
import pickle
import re
import subprocess

import pytest
import torch

from cli.train import main_image as main
from core.engine.checkpoint import CheckpointError, load_checkpoint
from faults.helpers_faults import run
from helpers import DIGITS, TINY_OPT


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/swin_suite_pwned",))


@pytest.mark.parametrize("kind", ["truncated", "random", "malicious", "not_a_dict"])
def test_bad_files_are_refused_without_running_code(tmp_path, kind):
    path = tmp_path / "x.pth"
    if kind == "truncated":
        torch.save({"model": {"w": torch.ones(100)}}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "malicious":
        path.write_bytes(pickle.dumps({"model": _Evil()}))
    else:
        torch.save([1, 2, 3], path)
    with pytest.raises(CheckpointError, match=rf"{path}") as e:
        load_checkpoint(str(path))
    assert "weights_only=False" not in str(e.value)  # torch's advice to disable the safety is not passed on
    assert not os.path.exists("/tmp/swin_suite_pwned")


def test_unreadable_last_names_the_good_best(tmp_path):
    out = str(tmp_path / "run")
    assert run(out, "train.epochs=1").returncode == 0
    with open(os.path.join(out, "last.pth"), "r+b") as f:
        f.truncate(100)
    r = run(out, "train.epochs=2")
    assert r.returncode == 2 and "checkpoint error: cannot read checkpoint" in r.stderr
    assert f"readable: {out}/best.pth (epoch 1): continue from it with --resume" in r.stderr


def test_unreadable_pretrained_file_is_a_checkpoint_error(tmp_path, capsys):
    bad = tmp_path / "in1k.pth"
    bad.write_bytes(b"garbage")
    rc = main(["--config", DIGITS, "--output-dir", str(tmp_path / "run"), "--opt", TINY_OPT, "train.epochs=1",
               "train.progress=false", f"model.pretrained={bad}"])
    err = capsys.readouterr().err
    assert rc == 2 and f"checkpoint error: model.pretrained = {bad}" in err


def test_resume_with_changed_settings_rebuilds_the_schedule(tmp_path):
    out = str(tmp_path / "run")
    assert run(out, "train.epochs=1", "sched.warmup_epochs=0").returncode == 0
    r = run(out, "train.epochs=3", "sched.warmup_epochs=0", "optim.lr=0.006")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "changed settings: optim.lr: 0.003 -> 0.006; train.epochs: 1 -> 3" in r.stdout
    rows = [json.loads(x) for x in open(os.path.join(out, "metrics.jsonl"))]
    lrs = [x["lr"] for x in rows if x["kind"] == "train" and x["epoch"] == 2]
    # the new cosine over 3 epochs at the new peak: epoch 2 runs well above the old run's minimum lr
    assert min(lrs) > 1e-3 and max(lrs) <= 0.006


def test_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        out = str(mnt / "run")
        r = run(out, "train.epochs=2")  # one checkpoint (~300 KB) fits, two writes do not
        assert r.returncode == 2, r.stdout[-1500:] + r.stderr[-1500:]
        err = r.stderr.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in r.stderr + r.stdout, r.stderr  # one line, whatever torch raised
        assert re.fullmatch(rf"checkpoint error: cannot write a checkpoint into {out}: No space left on device; "
                            rf"\d+\.\d KB free there \(the last checkpoint {out}/last.pth is kept\)", err[0]), err
        assert not any(f.endswith(".tmp") for f in os.listdir(out))
        ckpt = load_checkpoint(os.path.join(out, "last.pth"))  # the previous one, intact
        assert (ckpt["epoch"], ckpt["iter_in_epoch"]) == (0, 1)
        assert err[0] in open(os.path.join(out, "log.txt")).read()  # and the reason reaches log.txt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_another_model_or_class_count_is_refused(tmp_path):
    out = str(tmp_path / "run")
    assert run(out, "train.epochs=1").returncode == 0
    before = open(os.path.join(out, "last.pth"), "rb").read()
    other = "model.kwargs={embed_dim: 24, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}"
    r = run(out, "train.epochs=2", other)
    assert r.returncode == 2 and "does not match the model" in r.stderr
    five = load_checkpoint(os.path.join(out, "last.pth"))  # the same run with a 5-class head
    five["model"] = {k: (v[:5] if k.startswith("head.") else v) for k, v in five["model"].items()}
    torch.save(five, tmp_path / "five.pth")
    r = run(str(tmp_path / "fresh"), "train.epochs=2", "--resume", str(tmp_path / "five.pth"))
    assert r.returncode == 2 and "head.fc.weight: checkpoint (5, 32) vs model (10, 32)" in r.stderr
    assert open(os.path.join(out, "last.pth"), "rb").read() == before


def test_torch_save_write_error_is_one_line_naming_folder_and_free_space(tmp_path, monkeypatch):
    from core.engine import files

    def failing_save(obj, f, *a, **k):  # what torch.save raises when the disk fills under it
        f.write(b"PK")
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 576 vs 470")
    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(files.WriteError) as e:
        files.atomic_save({"w": 1}, str(tmp_path / "last.pth"))
    assert re.fullmatch(rf"cannot write last.pth into {tmp_path}: the write failed \(unexpected pos 576 vs 470\); "
                        r"[\d.]+ [KMG]?B free there", str(e.value)), str(e.value)
    assert os.listdir(tmp_path) == []  # the temporary file is gone, nothing half-written is left


@pytest.mark.parametrize("target", ["results.json", "metrics.jsonl"])
def test_full_disk_for_results_and_metrics_is_one_line_and_logged(tmp_path, capsys, monkeypatch, target):
    from core.engine import files, metrics
    full = OSError(errno.ENOSPC, "No space left on device")
    if target == "results.json":
        real = files._fsync_file

        def fsync(path):
            if os.path.basename(path).startswith("results.json"):
                raise full
            real(path)
        monkeypatch.setattr(files, "_fsync_file", fsync)
    else:
        real_open = open

        def opener(path, mode="r", *a, **k):
            if str(path).endswith("metrics.jsonl") and "a" in mode:
                raise full
            return real_open(path, mode, *a, **k)
        monkeypatch.setattr(metrics, "open", opener, raising=False)
    out = tmp_path / "run"
    rc = main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY_OPT, "train.epochs=1",
               "train.progress=false", "train.tensorboard=false", "train.max_iters_per_epoch=2", "data.batch_size=8",
               "data.img_size=16", "train.device=cpu"])
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    line = f"write error: cannot write {target} into {out}: No space left on device; "
    assert rc == 2 and len(err) == 1 and err[0].startswith(line) and err[0].endswith(" free there"), err
    assert line in (out / "log.txt").read_text()
    assert not (out / "results.json").exists()


def test_written_files_honour_the_umask(tmp_path):
    from core.engine.files import atomic_save, write_json
    old = os.umask(0o022)
    try:
        write_json(str(tmp_path / "results.json"), {"a": 1})
        atomic_save({"w": 1}, str(tmp_path / "best.pth"))
        os.umask(0o077)
        write_json(str(tmp_path / "private.json"), {"a": 1})
    finally:
        os.umask(old)
    assert oct(os.stat(tmp_path / "results.json").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "best.pth").st_mode & 0o777) == oct(0o644)
    assert oct(os.stat(tmp_path / "private.json").st_mode & 0o777) == oct(0o600)
