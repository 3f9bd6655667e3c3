"""Preemption safety: stop cleanly on SIGTERM / SIGINT / SIGUSR1, and one run per output folder (a lock file).

Clusters preempt with SIGTERM and a grace period (SLURM sends SIGUSR1 before the time limit when asked with
``--signal=USR1@120``). The first signal asks every rank to finish its current iteration, write a checkpoint
and exit with :data:`EXIT_PREEMPTED`; a second signal exits at once.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import threading
import time
from typing import Any

import torch

from . import distributed as du
from .checkpoint import CheckpointError

__all__ = ["EXIT_PREEMPTED", "Preempted", "StopSignals", "RunLock", "remove_stale_temps", "stop_file_request",
           "mark_preempted", "preempted_before"]

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: "try again later", what a requeue script looks for
SIGNALS = tuple(s for s in (getattr(signal, n, None) for n in ("SIGTERM", "SIGINT", "SIGUSR1")) if s is not None)


class Preempted(Exception):
    """Training stopped on a signal after writing a checkpoint."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum


class StopSignals:
    """Context manager that turns the first SIGTERM / SIGINT / SIGUSR1 into a stop request (a no-op off the main
    thread). :meth:`requested` agrees across ranks, so every rank stops after the same iteration."""

    def __init__(self) -> None:
        self.signum = 0
        self._old: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for s in SIGNALS:
                self._old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)
        self._old.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum:  # the second signal: the default action, now
            self.__exit__()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self.signum = signum
        logging.getLogger("swin").warning(f"{signal.Signals(signum).name} received: stopping after this iteration "
                                          f"with a checkpoint (send it again to exit at once)")

    def requested(self, device: torch.device) -> int:
        """The signal number any rank received, or the launcher wrapper asked for through ``$SWIN_STOP_FILE``
        (0: none); a collective under DDP, so all ranks must call it."""
        if not self.signum:
            self.signum = stop_file_request()
        if not du.is_dist():
            return self.signum
        flag = torch.tensor([float(self.signum)], device=device)
        return int(du.all_reduce_max(flag).item())


def stop_file_request() -> int:
    """The signal number written into ``$SWIN_STOP_FILE`` by ``core.engine.torchrun_wrapper`` (0: none)."""
    path = os.environ.get("SWIN_STOP_FILE")
    if not path or not os.path.exists(path):
        return 0
    try:
        with open(path) as f:
            return int(f.read().strip() or signal.SIGTERM)
    except (OSError, ValueError):
        return int(signal.SIGTERM)


def mark_preempted() -> None:
    """Tell the launcher wrapper (``$SWIN_PREEMPTED_FILE``) that this job stopped with a checkpoint on a signal."""
    path = os.environ.get("SWIN_PREEMPTED_FILE")
    if path:
        with open(path, "a") as f:
            f.write(f"{os.environ.get('RANK', '0')}\n")


def preempted_before() -> bool:
    """This launch already stopped for preemption (a worker restarted by torchrun must not train on)."""
    path = os.environ.get("SWIN_PREEMPTED_FILE")
    return bool(path) and os.path.exists(path)


class RunLock:
    """``<output_dir>/.lock`` holding pid, host and start time: a second run into the folder fails at once;
    the lock of a dead process on this host is taken over with a warning."""

    def __init__(self, output_dir: str) -> None:
        self.path = os.path.join(output_dir, ".lock")
        self.held = False

    def acquire(self) -> str:
        """Take the lock; returns a warning to log when a dead process's lock was taken over ('' otherwise)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        taken = ""
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                other = self._read()
                if other.get("pid") == os.getpid() and other.get("host") == me["host"]:
                    return ""  # this process holds it already (the entry point took it before building anything)
                if not self._stale(other):
                    raise CheckpointError(
                        f"{os.path.dirname(self.path)} is in use by another run (pid {other.get('pid')} on "
                        f"{other.get('host')} since {other.get('started')}): choose another --output-dir, or "
                        f"remove {self.path} if that run is gone") from None
                taken = f"taking over the stale lock {self.path} of pid {other.get('pid')} (no longer running)"
                os.remove(self.path)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return taken
        raise CheckpointError(f"cannot take the lock {self.path}")

    def release(self) -> None:
        if self.held and os.path.exists(self.path):
            os.remove(self.path)
        self.held = False

    def _read(self) -> dict:
        try:
            with open(self.path) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    @staticmethod
    def _stale(other: dict) -> bool:
        if other.get("host") != socket.gethostname():
            return not other  # another host: only an unreadable lock counts as stale
        try:
            os.kill(int(other.get("pid", -1)), 0)
        except (ProcessLookupError, ValueError):
            return True
        except PermissionError:
            return False
        return False


def remove_stale_temps(output_dir: str) -> list[str]:
    """Delete the temporary files (and folders) of interrupted atomic writes (``<name>.<random>.tmp``) in ``output_dir``."""
    if not os.path.isdir(output_dir):
        return []
    gone = [os.path.join(output_dir, f) for f in os.listdir(output_dir) if f.endswith(".tmp") and f.count(".") >= 2]
    for path in gone:
        if os.path.isdir(path) and not os.path.islink(path):  # a sharded checkpoint's folder (core.engine.sharding)
            shutil.rmtree(path)
        else:
            os.remove(path)
    return gone
