"""torchrun with preemption that reaches the caller: ``python -m core.engine.torchrun_wrapper [--requeue]
TORCHRUN_ARGS...`` runs ``torchrun TORCHRUN_ARGS...`` and

- on SIGTERM, SIGINT or SIGUSR1 asks every worker to stop at its next optimizer update with a checkpoint (through
  ``$SWIN_STOP_FILE``, so a worker that the scheduler also signalled directly is not asked twice and killed); the
  torchrun agent itself ignores SIGUSR1 (it would die of it and orphan its workers) and is left to end by itself;
  a second signal kills the agent and its workers at once;
- exits with **75** when the job stopped for preemption (a worker wrote ``$SWIN_PREEMPTED_FILE``; torchrun itself
  would exit 1), else with torchrun's own code; a worker that torchrun restarts after that exits 75 at once;
- with ``--requeue`` and ``$SLURM_JOB_ID`` set, runs ``scontrol requeue $SLURM_JOB_ID`` on 75;
- passes the workers' own exit code on (2 config / checkpoint / data error, 3 non-finite, 4 diverged; torchrun
  itself would exit 1) and prints each worker's error line once (the ranks hand their lines over through
  ``$SWIN_ERRORS_DIR``), not inside torchrun's traceback.

    #SBATCH --signal=B:USR1@120 --requeue
    exec python -m core.engine.torchrun_wrapper --requeue --nproc_per_node 8 -m video_swin.train ...
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Sequence

from core.engine.preempt import EXIT_PREEMPTED

__all__ = ["main"]

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


def _agent_preexec() -> None:
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # workers install their own handler (exec keeps SIG_IGN)


def _agent(args: Sequence[str]) -> int:
    """torchrun itself; a failed worker's exit code instead of torchrun's traceback and exit 1."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run
    try:
        run(parse_args(list(args)))
    except ChildFailedError as e:
        codes = [f.exitcode for _, f in sorted(e.failures.items())]
        return next((c for c in codes if c > 0), 1)
    return 0


def _error_lines(errors: str) -> tuple[list[str], int | None]:
    """The distinct error lines the ranks handed over (rank order) and the first rank's exit code."""
    lines, code = [], None
    for path in sorted(glob.glob(os.path.join(errors, "rank*.json")), key=lambda p: int(p.rsplit("rank", 1)[1][:-5])):
        try:
            with open(path) as f:
                item = json.load(f)
        except (OSError, ValueError):
            continue
        code = code if code is not None else int(item.get("code", 1))
        if item.get("line") and item["line"] not in lines:
            lines.append(item["line"])
    return lines, code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--agent"]:
        return _agent(args[1:])
    requeue = "--requeue" in args[:1]
    if requeue:
        args = args[1:]
    if not args or args[0] in ("-h", "--help"):
        print(f"usage: swin-torchrun [--requeue] TORCHRUN_ARGS...\n{__doc__}")
        return 0 if args else 2
    state = tempfile.mkdtemp(prefix="swin_torchrun_")
    stop, preempted, errors = (os.path.join(state, n) for n in ("stop", "preempted", "errors"))
    os.makedirs(errors)
    env = {**os.environ, "SWIN_STOP_FILE": stop, "SWIN_PREEMPTED_FILE": preempted, "SWIN_ERRORS_DIR": errors}
    agent = subprocess.Popen([sys.executable, "-m", "cli.torchrun", "--agent", *args], env=env,
                             start_new_session=True, preexec_fn=_agent_preexec)
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        received.append(signum)
        if len(received) == 1:
            print(f"torchrun_wrapper: {signal.Signals(signum).name} received: the workers stop at their next "
                  f"update with a checkpoint (send it again to kill them at once)", file=sys.stderr, flush=True)
            tmp = stop + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(int(signum)))
            os.replace(tmp, stop)
        else:
            os.killpg(agent.pid, signal.SIGKILL)

    old = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        rc = agent.wait()  # the agent reaps its workers before it exits
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    was_preempted = os.path.exists(preempted)
    lines, code = _error_lines(errors)
    shutil.rmtree(state, ignore_errors=True)
    for line in lines:
        print(line, file=sys.stderr, flush=True)
    if was_preempted:
        print(f"torchrun_wrapper: the job stopped with a checkpoint on a signal: exit {EXIT_PREEMPTED} "
              f"(the agent exited {rc})", file=sys.stderr, flush=True)
        if requeue and os.environ.get("SLURM_JOB_ID"):
            subprocess.run(["scontrol", "requeue", os.environ["SLURM_JOB_ID"]], check=False)
        return EXIT_PREEMPTED
    if rc > 0 and code is not None:
        return code  # the workers' own code for the error they named
    return rc if rc >= 0 else 128 - rc


if __name__ == "__main__":
    sys.exit(main())
