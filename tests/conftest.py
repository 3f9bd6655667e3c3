"""Shared test settings: deterministic, one thread per process (2-core CI machine)."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def torchrun(module: str, *args: str, nproc: int = 2, timeout: int = 240) -> str:
    """Run ``python -m module args`` under a 2-process torchrun on CPU; returns stdout, fails on error or hang."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", module, *args]
    # own session, so a hang kills torchrun and its workers together
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        log, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, err = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{log[-3000:]}\n{err[-3000:]}")
    assert proc.returncode == 0, log[-3000:] + err[-3000:]
    return log


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (tests that spawn workers or compare runs)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (norms and biases too), so that equivalence tests exercise every parameter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model
