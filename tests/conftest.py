"""Shared test settings: deterministic, one thread per process (2-core CI machine). Helpers: helpers.py."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("SWIN_SUITE_CURVES", "0")  # no curves.png per test run (matplotlib costs seconds); tested once

import pytest  # noqa: E402
import torch  # noqa: E402


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
