"""Preemption through torchrun: SIGTERM and SIGUSR1 to the launcher (core.engine.torchrun_wrapper around
torchrun --nproc_per_node 2) -> every worker writes the checkpoint and stops, the caller sees exit 75 (and SLURM's
requeue is called with --requeue), no worker is left running, and the resumed job equals an uninterrupted one."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from faults.helpers_faults import RUN, assert_same_run
from helpers import ROOT

pytestmark = pytest.mark.slow
LONGER = ["train.epochs=3", "train.max_iters_per_epoch=6"]


def _launch(out, *wrapper, env=None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}", **(env or {})}
    cmd = [sys.executable, "-m", "core.engine.torchrun_wrapper", *wrapper, "--standalone", "--nproc_per_node", "2",
           "-m", "core.train", *RUN[:2], "--output-dir", out, *RUN[2:], *LONGER]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _workers_of(out):
    """Processes still running whose command line names the run folder."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit() and int(pid) != os.getpid():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if out in cmd:
                found.append(int(pid))
    return found


def _finish(p, timeout=300):
    try:
        log, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        log, _ = p.communicate()
        pytest.fail(f"timed out:\n{log[-3000:]}")
    return p.returncode, log


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("straight") / "run")
    rc, log = _finish(_launch(out))
    assert rc == 0, log[-3000:]
    return out


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGUSR1"])
def test_signal_to_the_launcher_is_exit_75_without_orphans_and_resumes_exactly(straight, tmp_path, sig):
    out = str(tmp_path / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/scontrol.txt\n")
    (bin_dir / "scontrol").chmod(0o755)
    p = _launch(out, "--requeue", env={"SLURM_JOB_ID": "4242", "PATH": f"{bin_dir}:{os.environ['PATH']}"})
    deadline = time.time() + 240
    while not os.path.exists(os.path.join(out, "last.pth")) and time.time() < deadline and p.poll() is None:
        time.sleep(0.2)  # the first update's checkpoint: the workers are training
    p.send_signal(getattr(signal, sig))
    rc, log = _finish(p)
    assert rc == 75, log[-4000:]
    assert f"stopped by {sig} at" in log and "exit 75 (the agent exited " in log
    assert (tmp_path / "scontrol.txt").read_text().split() == ["requeue", "4242"]
    assert _workers_of(out) == []  # no orphaned worker
    rc, log = _finish(_launch(out))
    assert rc == 0 and "resumed from" in log, log[-3000:]
    assert_same_run(straight, out)
