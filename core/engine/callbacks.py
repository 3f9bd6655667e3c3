"""Callbacks: what plugs into the training loop without changing it (curves, preemption checks, fault injection).

    class Probe(Callback):
        def on_epoch_end(self, trainer, row): row["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    Trainer(cfg, task, train_loader, val_loader, callbacks=[Probe()]).fit()

Hooks run on every rank, in list order, at the same points (so a hook may run a collective):
``on_fit_start``, ``on_train_step`` (the task's outputs of one micro-batch, before the backward, None for a batch
with nothing to learn from; may return a replacement), ``on_step_end`` (after an optimizer update inside an epoch),
``on_epoch_end`` (the epoch's row, before the checkpoint), ``on_save`` (a checkpoint written, rank 0),
``on_fit_end`` (the results).
A hook asks the loop to checkpoint and stop with :meth:`Trainer.request_stop`, keeps an epoch out of the best
checkpoint with :meth:`Trainer.veto_best`, or ends the run by raising (:class:`Diverged`). :data:`EXTRA` holds
callbacks every trainer of this process adds (the fault suite's injectors run an entry point with them).
"""
from __future__ import annotations

import logging
import math
import os
from typing import Any, Mapping, Protocol

import torch

from . import distributed as du

__all__ = ["Loop", "Callback", "Callbacks", "Preemption", "Curves", "DivergenceGuard", "Diverged", "EXIT_DIVERGED", "EXTRA"]

EXIT_DIVERGED = 4  # the divergence guard stopped the run


class Loop(Protocol):
    """What a hook sees of the training loop (the :class:`core.engine.Trainer`)."""
    cfg: Any
    info: Any                # core.engine.distributed.DistInfo
    device: torch.device
    output_dir: str
    log: logging.Logger
    task: Any                # the core.engine.task.Task
    state: Any               # core.engine.checkpointer.TrainState: epoch, updates, skipped, best
    geo: Any                 # core.engine.checkpointer.Geometry: batch, world size, accumulation, iterations
    strategy: Any            # core.engine.strategy.Strategy: kept(), find_last(), describe()
    signals: Any             # core.engine.preempt.StopSignals
    runlog: Any              # core.engine.metrics.RunLogger (None before fit)

    def lr_now(self) -> float: ...

    def veto_best(self, reason: str) -> None: ...

    def request_stop(self, signum: int = ...) -> None: ...


class Callback:
    """No-op hooks; override the ones you need."""

    def on_fit_start(self, trainer: Loop) -> None: ...

    def on_train_step(self, trainer: Loop, out: Mapping[str, Any] | None) -> Mapping[str, Any] | None: ...

    def on_step_end(self, trainer: Loop, epoch: int, iteration: int) -> None: ...

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None: ...  # row: may be added to

    def on_save(self, trainer: Loop, path: str) -> None: ...

    def on_fit_end(self, trainer: Loop, results: dict[str, Any]) -> None: ...


EXTRA: list[Callback] = []


class Callbacks(Callback):
    """Runs a list of callbacks in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, trainer: Loop) -> None:
        for c in self.callbacks:
            c.on_fit_start(trainer)

    def on_train_step(self, trainer: Loop, out: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
        for c in self.callbacks:
            out = c.on_train_step(trainer, out) or out
        return out

    def on_step_end(self, trainer: Loop, epoch: int, iteration: int) -> None:
        for c in self.callbacks:
            c.on_step_end(trainer, epoch, iteration)

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_epoch_end(trainer, row)

    def on_save(self, trainer: Loop, path: str) -> None:
        for c in self.callbacks:
            c.on_save(trainer, path)

    def on_fit_end(self, trainer: Loop, results: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_fit_end(trainer, results)


class Preemption(Callback):
    """A SIGTERM / SIGINT / SIGUSR1 (agreed across ranks) becomes a checkpoint and a clean stop."""

    def on_step_end(self, trainer: Loop, epoch: int, iteration: int) -> None:
        self._check(trainer)

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        self._check(trainer)

    @staticmethod
    def _check(trainer: Loop) -> None:
        signum = trainer.signals.requested(trainer.device)
        if signum:
            trainer.request_stop(signum)


class Curves(Callback):
    """curves.png next to a finished run (loss, lr, the task's best metric per epoch); a failure is a warning."""

    def on_fit_end(self, trainer: Loop, results: dict[str, Any]) -> None:
        if not (trainer.info.is_main and trainer.cfg.train.curves and os.environ.get("SWIN_SUITE_CURVES", "1") != "0"):
            return
        from .curves import plot_runs
        try:
            out = plot_runs([trainer.output_dir], os.path.join(trainer.output_dir, "curves.png"),
                            trainer.task.best_metric)
            trainer.log.info(f"curves: {out}")
        except Exception as e:  # noqa: BLE001 - a picture must not fail a finished run
            trainer.log.warning(f"curves.png not drawn: {type(e).__name__}: {e}")


class Diverged(Exception):
    """The divergence guard stopped the run; the last checkpoint written before it is kept."""


class DivergenceGuard(Callback):
    """Stops a run whose loss runs away, or whose steps are mostly skipped, with :class:`Diverged` (exit 4).

    Every ``train.log_interval`` micro-batches it reads the interval's mean finite loss (one device sync, agreed
    across ranks): above ``train.divergence_factor`` times the running minimum of those means (at least 0.1) for
    ``train.divergence_intervals`` intervals in a row, the run stops. With ``train.nonfinite=skip``, more than
    ``train.divergence_max_skipped`` of an epoch's steps skipped stops it too (from 10 steps on, and at the epoch's
    end). An epoch with an interval above the bound is never recorded as best. Off with ``divergence_factor=0``
    (the skipped-steps check stays; ``divergence_max_skipped=1`` turns it off). The running minimum restarts on
    resume.
    """

    FLOOR = 0.1  # the running minimum is taken as at least this: a loss near zero does not make noise look divergent
    MIN_STEPS = 10  # steps of an epoch before the skipped fraction is judged inside it

    def __init__(self) -> None:
        self.window: list[torch.Tensor] = []
        self.best = math.inf
        self.above = 0            # intervals in a row above the bound
        self.epoch_above = False  # an interval of this epoch was above the bound
        self.steps = 0            # micro-batches of this epoch
        self.skipped_at_start = 0

    def on_fit_start(self, trainer: Loop) -> None:
        self.skipped_at_start = trainer.state.skipped

    def on_train_step(self, trainer: Loop, out: Mapping[str, Any] | None) -> None:
        self.steps += 1  # an empty batch (None) counts as a step with no loss, so every rank checks at the same steps
        if trainer.cfg.train.divergence_factor > 0:
            loss = out["loss"].detach().float().reshape(()) if out is not None else torch.tensor(float("nan"))
            self.window.append(loss.to(trainer.device))

    def on_step_end(self, trainer: Loop, epoch: int, iteration: int) -> None:
        if len(self.window) >= trainer.cfg.train.log_interval:
            self._check_loss(trainer, epoch, iteration)
        if self.steps >= self.MIN_STEPS:
            self._check_skipped(trainer, epoch, iteration)

    def on_epoch_end(self, trainer: Loop, row: dict[str, Any]) -> None:
        epoch, last = trainer.state.epoch - 1, trainer.geo.iters_per_epoch - 1
        if self.window:
            self._check_loss(trainer, epoch, last)
        if self.steps:
            self._check_skipped(trainer, epoch, last)
        if self.epoch_above:
            trainer.veto_best(f"its loss rose above {trainer.cfg.train.divergence_factor:g} x the running minimum "
                              f"{max(self.best, self.FLOOR):.4g}")
        self.steps, self.epoch_above = 0, False
        self.skipped_at_start = trainer.state.skipped

    def _check_loss(self, trainer: Loop, epoch: int, iteration: int) -> None:
        t = trainer.cfg.train
        losses, self.window = torch.stack(self.window), []
        finite = torch.isfinite(losses)
        stats = torch.stack([torch.where(finite, losses, 0.0).sum(), finite.sum().float()]).double()
        if du.is_dist():
            stats = du.all_reduce_sum(stats.to(trainer.device))
        total, count = stats.tolist()
        if not count:
            return  # every step of the interval was non-finite: the nonfinite setting and the skip check decide
        mean = total / count
        bound = t.divergence_factor * max(self.best, self.FLOOR)
        if math.isfinite(self.best) and mean > bound:
            self.above += 1
            self.epoch_above = True
            if self.above >= t.divergence_intervals:
                raise Diverged(
                    f"diverged at epoch {epoch + 1} iteration {iteration + 1}: mean loss {mean:.4g} above "
                    f"{t.divergence_factor:g} x its running minimum {max(self.best, self.FLOOR):.4g} for "
                    f"{self.above} log intervals in a row; {trainer.strategy.kept(trainer.output_dir)} "
                    f"(train.divergence_factor=0 turns the guard off)")
        else:
            self.above = 0
        self.best = min(self.best, mean)

    def _check_skipped(self, trainer: Loop, epoch: int, iteration: int) -> None:
        t = trainer.cfg.train
        skipped = trainer.state.skipped - self.skipped_at_start
        if skipped / self.steps > t.divergence_max_skipped:
            raise Diverged(f"diverged at epoch {epoch + 1} iteration {iteration + 1}: {skipped} of {self.steps} "
                           f"steps of the epoch skipped as non-finite (more than train.divergence_max_skipped="
                           f"{t.divergence_max_skipped:g}); {trainer.strategy.kept(trainer.output_dir)}")
