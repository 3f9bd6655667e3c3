"""Beyond one process: torchrun elastic restarts a job whose worker was killed mid-epoch and the result equals an
uninterrupted run; the README's multi-node command runs as two agents on the loopback address."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

from faults.helpers_faults import RUN, assert_same_run
from helpers import ROOT

pytestmark = pytest.mark.slow


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}


def _torchrun(out: str, *launcher: str, fault: list[str] | None = None):
    script = [str(ROOT / "tests" / "faults" / "inject.py"), *fault, "core.train"] if fault else ["-m", "core.train"]
    cmd = [sys.executable, "-m", "torch.distributed.run", *launcher, *script, *RUN[:2], "--output-dir", out, *RUN[2:]]
    return subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _wait(p, timeout=300):
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # torchrun and its workers together
        out, _ = p.communicate()
        pytest.fail(f"torchrun timed out:\n{out[-3000:]}")
    return p.returncode, out


def test_killed_worker_is_restarted_and_the_job_finishes_as_if_uninterrupted(tmp_path):
    straight = str(tmp_path / "straight")
    rc, log = _wait(_torchrun(straight, "--standalone", "--nproc_per_node", "2"))
    assert rc == 0, log[-3000:]
    out = str(tmp_path / "elastic")
    rc, log = _wait(_torchrun(out, "--standalone", "--nproc_per_node", "2", "--max-restarts", "1",
                              fault=["--rank", "1", "--fault", "sigkill", "--at", "3"]))
    assert rc == 0, log[-3000:]
    assert "failed (exitcode: -9)" in log and "resumed from" in log  # a worker died, the agent restarted the job
    assert_same_run(straight, out)


def test_two_agents_on_loopback_form_one_job(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    common = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv_backend", "c10d",
              "--rdzv_endpoint", f"127.0.0.1:{port}", "--rdzv_id", "swin_test"]
    out = str(tmp_path / "multi")
    agents = [_torchrun(out, *common) for _ in range(2)]
    results = [_wait(a) for a in agents]
    assert all(rc == 0 for rc, _ in results), results[0][1][-2000:] + results[1][1][-2000:]
    log = "".join(r[1] for r in results)
    assert "world size 2 on cpu" in log and os.path.isfile(os.path.join(out, "last.pth"))
