"""Run an entry point with one fault injected at a chosen iteration (deterministic, not timing luck):

    python tests/faults/inject.py --at 5 --fault sigkill -- core.train --config ... --opt ...

Faults: sigterm / sigint / sigusr1 (sent to this process once), sigkill (this process dies at once),
sigkill_in_save (dies in the middle of writing the next checkpoint, leaving its temporary file), nan (the
loss of that iteration becomes NaN). ``--at`` counts training steps of this process from 1. Under torchrun,
``--rank`` limits the fault to one rank and only the first attempt (TORCHELASTIC_RESTART_COUNT=0) is hit.
"""
from __future__ import annotations

import argparse
import os
import runpy
import signal
import sys

import torch

from core.engine import callbacks


class Fault(callbacks.Callback):
    """Injects ``fault`` at training step ``at`` of this process (a callback every trainer here adds)."""

    def __init__(self, fault: str, at: int) -> None:
        self.fault, self.at, self.calls = fault, at, 0

    def on_train_step(self, trainer, out):
        self.calls += 1
        if self.calls != self.at:
            return None
        if self.fault == "nan":
            return {**out, "loss": out["loss"] * float("nan")}
        if self.fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif self.fault == "sigkill_in_save":  # the next checkpoint dies half-written, inside torch.save
            def dying_save(obj, f, *a, **k):
                f.write(b"PK\x03\x04 half a checkpoint")
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            torch.save = dying_save
        else:
            os.kill(os.getpid(), getattr(signal, self.fault.upper()))
        return None


def install(fault: str, at: int) -> None:
    """Every trainer of this process injects ``fault`` at step ``at``."""
    callbacks.EXTRA.append(Fault(fault, at))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--at", type=int, required=True)
    p.add_argument("--fault", required=True,
                   choices=["sigterm", "sigint", "sigusr1", "sigkill", "sigkill_in_save", "nan"])
    p.add_argument("--rank", type=int, default=None, help="under torchrun: only this rank, first attempt only")
    p.add_argument("module")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args()
    first_try = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if (a.rank is None or int(os.environ.get("RANK", "0")) == a.rank) and first_try:
        install(a.fault, a.at)
    sys.argv = [a.module] + [x for x in a.args if x != "--"]
    runpy.run_module(a.module, run_name="__main__")


if __name__ == "__main__":
    main()
