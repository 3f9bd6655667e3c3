"""Where a run writes: a fresh folder per run unless one is named, and which checkpoint a run continues from.

Without ``train.output_dir`` (or ``--output-dir``) each run gets ``$SWIN_OUTPUT_ROOT/<recipe name>/<timestamp>``
(``outputs/`` by default), so two recipes, or a rerun, never mix; ``<recipe name>/latest`` links to the newest.
A run continues from a checkpoint only when asked: a named output folder holding ``last.pth`` (a requeued cluster
job passes its folder), ``--resume PATH``, or ``--resume auto`` (the newest run of the recipe that holds a ``last.pth``).
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from . import distributed as du
from .config import Config
from .distributed import DistInfo
from .strategy import strategy_class

__all__ = ["RunContext", "resolve_run", "runs_root", "new_run_dir", "mark_latest", "latest_run_dir", "resume_path",
           "eval_checkpoint"]


@dataclass(frozen=True)
class RunContext:
    """Where a run writes, what it continues and which processes run it, decided once (by ``launch``) before
    anything is built and handed to the method's ``setup``; building a model never looks for a run folder."""
    output_dir: str
    resume: str | None       # the checkpoint training continues from (None: a fresh start)
    eval_only: bool = False
    info: DistInfo | None = None

    @property
    def continuing(self) -> bool:
        """A checkpoint replaces the initial weights (a resume or an evaluation): skip loading model.pretrained."""
        return self.resume is not None or self.eval_only


def resolve_run(cfg: Config, info: DistInfo | None = None) -> RunContext:
    """The run's folder (``train.output_dir``, else a fresh one, recorded in the config so the saved recipe names it)
    and the checkpoint it continues from; every later step reads this instead of deciding again."""
    cfg.train.output_dir = cfg.train.output_dir or new_run_dir(cfg)
    eval_only = bool(cfg.train.eval_only)
    return RunContext(cfg.train.output_dir, None if eval_only else resume_path(cfg), eval_only, info)
def runs_root(cfg: Config) -> str:
    """$SWIN_OUTPUT_ROOT (default ``outputs``)/<recipe name>: the parent of the recipe's run folders."""
    return os.path.join(os.environ.get("SWIN_OUTPUT_ROOT", "outputs"), cfg.name or "run")


def new_run_dir(cfg: Config) -> str:
    """A fresh ``<runs_root>/<YYYYmmdd-HHMMSS>[-N]`` folder, the same on every rank, created by rank 0 (its first
    checkpoint points ``<runs_root>/latest`` at it: recipes can name ``outputs/<name>/latest/best.pth``)."""
    path = None
    if du.is_main():
        base = os.path.join(runs_root(cfg), time.strftime("%Y%m%d-%H%M%S"))
        path, n = base, 1
        while os.path.exists(path):
            n += 1
            path = f"{base}-{n}"
        os.makedirs(path)
    return du.broadcast_object(path)


def mark_latest(output_dir: str) -> None:
    """Point ``<runs root>/latest`` at a generated run folder (called once it holds a checkpoint, so a run that
    failed at start never becomes ``latest``); folders named by the user are left alone."""
    parent, name = os.path.split(os.path.abspath(output_dir))
    if not re.fullmatch(r"\d{8}-\d{6}(-\d+)?", name):
        return
    link = os.path.join(parent, "latest")
    tmp = f"{link}.{os.getpid()}.tmp"
    try:
        os.symlink(name, tmp)
        os.replace(tmp, link)
    except OSError:  # a file system without symlinks: latest_run_dir still finds the newest run
        if os.path.lexists(tmp):
            os.remove(tmp)


def latest_run_dir(cfg: Config, marker: str = "last.pth") -> str | None:
    """The run folder of the recipe whose ``marker`` file was written last, or None."""
    root = runs_root(cfg)
    if not os.path.isdir(root):
        return None
    found = [os.path.join(e.path, marker) for e in os.scandir(root) if e.is_dir() and e.name != "latest"]
    found = [p for p in found if os.path.isfile(p)]
    return os.path.dirname(max(found, key=os.path.getmtime)) if found else None


def resume_path(cfg: Config) -> str | None:
    """The checkpoint a training run continues from: train.resume, else the strategy's last checkpoint in
    ``train.output_dir`` (last.pth; last.dcp under fsdp) when auto_resume is on."""
    t = cfg.train
    if t.resume:
        return t.resume
    return strategy_class(t.strategy).resume_point(t.output_dir, t.auto_resume) if t.output_dir else None


def eval_checkpoint(cfg: Config) -> str | None:
    """The checkpoint an evaluation reads: train.resume, else the run folder's best.pth, else its last.pth."""
    if cfg.train.resume:
        return cfg.train.resume
    for name in ("best.pth", "last.pth"):
        path = os.path.join(cfg.train.output_dir, name)
        if os.path.isfile(path):
            return path
    return None
