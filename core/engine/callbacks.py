"""Callbacks: what plugs into the training loop without changing it (curves, preemption checks, fault injection).

    class Probe(Callback):
        def on_epoch_end(self, trainer, row): row["gpu_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    Trainer(cfg, task, train_loader, val_loader, callbacks=[Probe()]).fit()

Hooks run on every rank, in list order, at the same points (so a hook may run a collective):
``on_fit_start``, ``on_train_step`` (the task's outputs of one micro-batch, before the backward; may return a
replacement), ``on_step_end`` (after an optimizer update inside an epoch), ``on_epoch_end`` (the epoch's row,
before the checkpoint), ``on_save`` (a checkpoint written, rank 0), ``on_fit_end`` (the results).
A hook asks the loop to checkpoint and stop with :meth:`Trainer.request_stop`. :data:`EXTRA` holds callbacks
every trainer of this process adds (the fault suite's injectors run an entry point with them).
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["Callback", "Callbacks", "Preemption", "Curves", "EXTRA"]


class Callback:
    """No-op hooks; override the ones you need."""

    def on_fit_start(self, trainer: Trainer) -> None: ...

    def on_train_step(self, trainer: Trainer, out: Mapping[str, Any]) -> Mapping[str, Any] | None: ...

    def on_step_end(self, trainer: Trainer, epoch: int, iteration: int) -> None: ...

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None: ...  # row: may be added to

    def on_save(self, trainer: Trainer, path: str) -> None: ...

    def on_fit_end(self, trainer: Trainer, results: dict[str, Any]) -> None: ...


EXTRA: list[Callback] = []


class Callbacks(Callback):
    """Runs a list of callbacks in order."""

    def __init__(self, callbacks: list[Callback]) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, trainer: Trainer) -> None:
        for c in self.callbacks:
            c.on_fit_start(trainer)

    def on_train_step(self, trainer: Trainer, out: Mapping[str, Any]) -> Mapping[str, Any]:
        for c in self.callbacks:
            out = c.on_train_step(trainer, out) or out
        return out

    def on_step_end(self, trainer: Trainer, epoch: int, iteration: int) -> None:
        for c in self.callbacks:
            c.on_step_end(trainer, epoch, iteration)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_epoch_end(trainer, row)

    def on_save(self, trainer: Trainer, path: str) -> None:
        for c in self.callbacks:
            c.on_save(trainer, path)

    def on_fit_end(self, trainer: Trainer, results: dict[str, Any]) -> None:
        for c in self.callbacks:
            c.on_fit_end(trainer, results)


class Preemption(Callback):
    """A SIGTERM / SIGINT / SIGUSR1 (agreed across ranks) becomes a checkpoint and a clean stop."""

    def on_step_end(self, trainer: Trainer, epoch: int, iteration: int) -> None:
        self._check(trainer)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        self._check(trainer)

    @staticmethod
    def _check(trainer: Trainer) -> None:
        signum = trainer.signals.requested(trainer.device)
        if signum:
            trainer.request_stop(signum)


class Curves(Callback):
    """curves.png next to a finished run (loss, lr, the task's best metric per epoch); a failure is a warning."""

    def on_fit_end(self, trainer: Trainer, results: dict[str, Any]) -> None:
        if not (trainer.info.is_main and trainer.cfg.train.curves and os.environ.get("SWIN_SUITE_CURVES", "1") != "0"):
            return
        from .curves import plot_runs
        try:
            out = plot_runs([trainer.output_dir], os.path.join(trainer.output_dir, "curves.png"),
                            trainer.task.best_metric)
            trainer.log.info(f"curves: {out}")
        except Exception as e:  # noqa: BLE001 - a picture must not fail a finished run
            trainer.log.warning(f"curves.png not drawn: {type(e).__name__}: {e}")
