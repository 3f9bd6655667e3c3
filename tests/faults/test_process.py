"""Process faults: signals stop with a checkpoint (exit 75) and resume exactly; SIGKILL at any iteration, even
inside a checkpoint write, loses nothing past the last checkpoint; one run per output folder."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys

import pytest

from core.engine.checkpoint import load_checkpoint
from faults.helpers_faults import STEPS, assert_same_run, run
from helpers import ROOT

SEED = 1234  # kill points are drawn from it, so every run of the suite injects the same faults


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight") / "run")
    r = run(out)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


@pytest.mark.parametrize("sig", ["sigterm", pytest.param("sigint", marks=pytest.mark.slow),
                                 pytest.param("sigusr1", marks=pytest.mark.slow)])  # one signal path by default
def test_signal_writes_a_checkpoint_exits_75_and_resumes_exactly(straight, tmp_path, sig):
    at = random.Random(f"{SEED}{sig}").randint(1, STEPS - 1)
    out = str(tmp_path / "run")
    r = run(out, fault=(sig, at))
    assert r.returncode == 75, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"stopped by {sig.upper()} at" in r.stdout and "continue with --output-dir" in r.stdout
    ckpt = load_checkpoint(os.path.join(out, "last.pth"))
    assert ckpt["epoch"] * 4 + ckpt.get("iter_in_epoch", 0) == at  # nothing lost: the interrupted step is saved
    assert "stopped by" in open(os.path.join(out, "log.txt")).read()
    r = run(out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert_same_run(straight, out)


def test_second_signal_exits_at_once(tmp_path):
    """The first SIGTERM asks for a clean stop; a second one, before it is reached, kills at once."""
    code = ("import os, signal; from core.engine.preempt import StopSignals\n"
            "with StopSignals() as s:\n"
            "    os.kill(os.getpid(), signal.SIGTERM); assert s.signum == signal.SIGTERM\n"
            "    os.kill(os.getpid(), signal.SIGTERM)\n"
            "    print('still alive')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == -signal.SIGTERM and "still alive" not in r.stdout


@pytest.mark.parametrize("fault", [pytest.param("sigkill", marks=pytest.mark.slow), "sigkill_in_save"])
def test_sigkill_loses_nothing_past_the_last_checkpoint(straight, tmp_path, fault):
    at = random.Random(f"{SEED}{fault}").randint(1, STEPS - 1)
    out = str(tmp_path / "run")
    r = run(out, fault=(fault, at))
    assert r.returncode == -signal.SIGKILL
    ckpt = load_checkpoint(os.path.join(out, "last.pth")) if os.path.exists(os.path.join(out, "last.pth")) else None
    done = ckpt["epoch"] * 4 + ckpt.get("iter_in_epoch", 0) if ckpt else 0
    assert done == (at - 1 if fault == "sigkill" else at - 1)  # every finished step but the killed one was saved
    if fault == "sigkill_in_save":
        assert any(f.endswith(".tmp") for f in os.listdir(out))  # the half-written file is left behind ...
    r = run(out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not any(f.endswith(".tmp") for f in os.listdir(out))  # ... and removed by the next start
    assert_same_run(straight, out)


def test_second_run_into_a_folder_fails_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": live.pid, "host": os.uname().nodename, "started": "now"}))
        r = run(str(out))
        assert r.returncode == 2 and f"{out} is in use by another run (pid {live.pid}" in r.stderr
        assert sorted(os.listdir(out)) == [".lock"]  # refused before writing anything into the running run's folder
    finally:
        live.kill()
        live.wait()
    r = run(str(out), "train.epochs=1")  # the holder is gone: its lock is stale
    assert r.returncode == 0 and "taking over the stale lock" in r.stdout
    assert not (out / ".lock").exists()
