"""The shared training loop: one :class:`Trainer` runs any :class:`core.engine.task.Task`.

    task = ClassificationTask(model, criterion)            # or MoBY, SimMIM, ... (core.engine.task)
    results = Trainer(cfg, task, train_loader, val_loader).fit()

The trainer owns the loop and the optimizer step: autocast, gradient accumulation, clipping, the non-finite skip,
the optimizer / scheduler / EMA updates. Around it, each in its own module: how the run spreads over processes
(``strategy``: DDP or FSDP), checkpoints and exact resume (``checkpointer``, which hands back the counters as a
:class:`TrainState`), progress and logging (``progress``), evaluation and the best epoch (``evaluation``), and
callbacks (``callbacks``: curves, preemption checks, anything a user plugs in).
"""
from __future__ import annotations

import os
import signal
import time
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from . import callbacks as cbs
from . import distributed as du
from .callbacks import Callback, Callbacks, Curves, DivergenceGuard, Preemption
from .checkpoint import capture_rng_state, restore_rng_state
from .checkpointer import Checkpointer, Geometry, MidEpoch, TrainState, checkpoint_meta
from .config import Config, dump_config
from .data import per_process_batch, set_epoch
from .device import amp_choice, autocast, to_device
from .distributed import DistInfo
from .evaluation import BestTracker, evaluate, finish_run
from .files import atomic_write_text, read_json, write_json
from .metrics import RunLogger, setup_logging
from .optim import build_optimizer, build_scheduler, scaled_lrs
from .preempt import EXIT_PREEMPTED, Preempted, RunLock, StopSignals, remove_stale_temps
from .progress import EpochProgress, describe_run
from .rundir import RunContext, eval_checkpoint, resolve_run
from .strategy import build_strategy, class_name
from .task import EvalEnv, Task

__all__ = ["Trainer"]


class Trainer:
    """Runs ``cfg.train.epochs`` epochs of a task with evaluation, logging, callbacks and exact resume."""

    def __init__(self, cfg: Config, task: Task, train_loader: Iterable | None, val_loader: Any = None, *,
                 info: DistInfo | None = None, run: RunContext | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"Trainer runs a core.engine.task.Task, got {type(task).__name__}")
        t = cfg.train
        self.cfg, self.train_loader, self.val_loader = cfg, train_loader, val_loader
        self.info = info or (run.info if run is not None and run.info else None) or du.init_distributed(t.device)
        self.device = self.info.device
        self.run = run or resolve_run(cfg, self.info)
        self.output_dir = self.run.output_dir
        self.log = setup_logging(self.output_dir, self.info.is_main)
        self.amp_dtype, self.amp_why = amp_choice(t.amp, self.device)
        self.env = EvalEnv(self.device, self.amp_dtype, t.progress)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        # the task and how it spreads over processes
        self.strategy = build_strategy(t, self.info, self.amp_dtype)
        self.task = self.strategy.to_device(task)
        if t.grad_checkpointing:
            self.task.set_grad_checkpointing(True)
        self.ema = None
        if t.ema:
            from timm.utils import ModelEmaV3
            self.ema = ModelEmaV3(self.task, decay=t.ema_decay)
        if t.compile:
            self.task.backbone.compile()  # in place: the state dict keeps its names
        self.train_model: nn.Module = self.strategy.wrap(self.task)

        # batch geometry, optimisation, checkpoints
        n = len(train_loader) if train_loader is not None else 0
        self.geo = Geometry(per_process_batch(cfg, train_loader) if train_loader is not None else 0,
                            self.info.world_size, cfg.optim.accum_steps,
                            min(n, t.max_iters_per_epoch) if t.max_iters_per_epoch else n, t.epochs)
        self.lr, warmup_lr, min_lr = scaled_lrs(cfg, self.geo.global_batch)
        self.optimizer = build_optimizer(cfg, self.task, self.lr)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.geo.updates_per_epoch, warmup_lr=warmup_lr,
                                         min_lr=min_lr)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None
        self.checkpointer = Checkpointer(cfg, self.task, self.optimizer, self.scheduler, self.scaler, self.ema,
                                         self.strategy, self.output_dir, self.geo, checkpoint_meta(cfg, task))
        self.state = TrainState(BestTracker(task.best_metric))
        self.history: list[dict[str, Any]] = []
        self.runlog: RunLogger | None = None
        self.signals = StopSignals()
        # the guard last: it sees the loss every other callback may have replaced
        self.callbacks = Callbacks([Preemption(), Curves(), *callbacks, *cbs.EXTRA, DivergenceGuard()])
        self.stop_signal = 0    # set through request_stop: checkpoint and stop at the next update
        self._resume: MidEpoch | None = None  # a mid-epoch checkpoint being continued
        self._bad_group = False
        self._best_veto: str | None = None  # why this epoch may not become best.pth (a callback said so)

    # -------------------------------------------------------------------------------- small pieces
    def train_step(self, batch: Any) -> Mapping[str, torch.Tensor] | None:
        """The task's outputs for one micro-batch (under autocast, batch on device, through the strategy's wrapper);
        None: the task found nothing to learn from (an unreadable batch)."""
        out = self.train_model(batch)
        if out is not None and (not isinstance(out, Mapping) or "loss" not in out):
            raise TypeError(f"{class_name(self.task)}.forward must return a dict with a 'loss' (or None for an "
                            f"empty batch), got {type(out).__name__}")
        return self.callbacks.on_train_step(self, out)

    def lr_now(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def veto_best(self, reason: str) -> None:
        """Keep the current epoch from being recorded as best (call from ``on_epoch_end``); logged with ``reason``."""
        self._best_veto = reason

    def request_stop(self, signum: int = int(signal.SIGTERM)) -> None:
        """Checkpoint at the next optimizer update (or the epoch's end) and stop with :class:`Preempted`."""
        self.stop_signal = signum

    def save(self, is_best: bool, mid: MidEpoch | None = None) -> None:
        """Write the checkpoint (all ranks call it); callbacks hear of it on rank 0."""
        path = self.checkpointer.save(self.state, is_best, mid)
        if path is not None:
            self.callbacks.on_save(self, path)

    def _eval(self) -> dict[str, float]:
        with self.strategy.gathered(self.task):
            return evaluate(self.task, self.ema.module if self.ema is not None else None, self.val_loader, self.env)

    # -------------------------------------------------------------------------------- loop
    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader; returns the mean loss and the task's other scalars.

        Continuing a mid-epoch checkpoint, it replays the epoch's data up to the saved iteration from the epoch's
        starting RNG state (so shuffling, augmentation and worker seeds are those of the interrupted run), then
        restores the RNG of the checkpoint: the result equals an uninterrupted run.
        """
        self.train_model.train()
        set_epoch(self.train_loader, epoch)
        n, accum = self.geo.iters_per_epoch, self.geo.accum
        full = (n // accum) * accum
        resume, self._resume = self._resume, None
        if resume and resume.epoch_rng is not None:  # None: a position mapped from another world size
            restore_rng_state(resume.epoch_rng)
        epoch_rng = du.all_gather_object(capture_rng_state())  # before the loader draws its worker seeds
        batches = iter(self.train_loader)
        start = resume.iteration if resume else 0
        for _ in range(start):
            next(batches)
        if resume and resume.rng is not None:
            restore_rng_state(resume.rng)
            self.log.info(f"continuing epoch {epoch + 1} at iteration {start + 1} (replayed {start} batches)")
        progress = EpochProgress(self, epoch, start, resume)
        self.optimizer.zero_grad(set_to_none=True)
        grad_norm = None
        skip_mode = self.cfg.train.nonfinite == "skip"
        for i in range(start, n):
            batch = to_device(progress.fetch(batches), self.device)
            sync = (i + 1) % accum == 0 or i + 1 == n
            with self.strategy.no_sync(self.train_model, sync):
                with autocast(self.device, self.amp_dtype):
                    out = self.train_step(batch)
                loss = out["loss"] if out is not None else torch.zeros((), device=self.device)
                ok = self._all_finite(loss) if skip_mode else True  # on every rank: a collective under DDP
                finite = ok and out is not None
                if finite:
                    scaled = loss / (accum if i < full else n - full)  # a shorter last group weighs the same
                else:  # an empty batch or a skipped loss: a zero backward that touches every parameter (DDP in step)
                    scaled = sum(p.sum() for p in self.task.parameters() if p.requires_grad) * 0.0
                self._bad_group |= not ok
                (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
            if not ok:
                self._count_skip(epoch, i, "loss")
            if sync:
                grad_norm = self._optimizer_step(epoch, i)
            progress.update(i, out if finite else None, grad_norm)
            if sync and i + 1 < n:
                self.callbacks.on_step_end(self, epoch, i)
                every = self.cfg.train.checkpoint_interval
                if self.stop_signal or (every and (self.state.updates % self.geo.updates_per_epoch) % every == 0):
                    self.save(False, MidEpoch(i + 1, epoch_rng, *progress.snapshot(), first=progress.first))
                    if self.stop_signal:
                        raise self._preempted(f"epoch {epoch + 1} iteration {i + 1}/{n}")
        means = progress.close()
        res = {"epoch": epoch + 1, "train_loss": means.pop("train_loss"), "lr": self.lr_now(),
               "epoch_time_s": means.pop("epoch_time_s"), "data_wait": means.pop("data_wait"),
               "data_wait_s": means.pop("data_wait_s"), **means}
        if skip_mode:
            res["nonfinite_skipped"] = self.state.skipped
        res.update(self.task.end_epoch())
        return res

    def _all_finite(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is finite on every rank (one device sync; a collective under DDP)."""
        bad = (~torch.isfinite(t.detach())).any().float().reshape(1)
        return not bool(du.all_reduce_max(bad).item() if du.is_dist() else bad.item())

    def _count_skip(self, epoch: int, i: int, what: str) -> None:
        self.state.skipped += 1
        self.log.warning(f"non-finite {what} at epoch {epoch + 1} iteration {i + 1}: step skipped "
                         f"({self.state.skipped} so far; train.nonfinite=skip)")

    def _preempted(self, where: str) -> Preempted:
        name = signal.Signals(self.stop_signal).name
        last = self.strategy.find_last(self.output_dir) or os.path.join(self.output_dir, self.strategy.LAST)
        msg = (f"stopped by {name} at {where}: checkpoint {last} written; "
               f"continue with --output-dir {self.output_dir} (exit code {EXIT_PREEMPTED})")
        du.all_gather_object(None)  # every rank waits for rank 0 to finish writing before it says it is written
        self.log.warning(msg)
        return Preempted(self.stop_signal, msg)

    def _optimizer_step(self, epoch: int = 0, i: int = 0) -> torch.Tensor | None:
        """Unscale, clip, step, zero grads, advance scheduler, EMA and the task; returns the grad norm if clipped.

        With ``train.nonfinite=skip`` a step whose gradients are not finite is dropped (the schedule still advances).
        """
        clip, full = self.cfg.optim.clip_grad, self.strategy.full
        norm = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if clip > 0:
            norm = full(torch.nn.utils.clip_grad_norm_(params, clip))
        skip, self._bad_group = self._bad_group, False  # a micro-batch of this update had a non-finite loss
        if self.cfg.train.nonfinite == "skip" and self.scaler is None and not skip:
            if norm is None:
                norm = full(torch.nn.utils.clip_grad_norm_(params, float("inf")))
            skip = not self._all_finite(norm)
            if skip:
                self._count_skip(epoch, i, "gradient")
        if skip:
            pass
        elif self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.updates += 1
        self.scheduler.step_update(num_updates=self.state.updates)
        self.task.after_update(self.state.updates, self.geo.total_updates)
        if self.ema is not None:
            self.ema.update(self.task, step=self.state.updates)
        return norm

    def fit(self) -> dict[str, Any]:
        """Train (continuing a checkpoint when one applies), evaluate every ``eval_interval`` epochs, save, summarise.

        With ``train.eval_only`` (or no training loader) it evaluates instead: see :meth:`evaluate_only`.
        """
        if self.cfg.train.eval_only or self.train_loader is None:
            return self.evaluate_only()
        lock = RunLock(self.output_dir)
        if self.info.is_main:
            taken = lock.acquire()  # (launch took it already; a Trainer built directly takes it here)
            if taken:
                self.log.warning(taken)
            for path in remove_stale_temps(self.output_dir):
                self.log.warning(f"removed {path}, left by an interrupted write")
        try:
            with self.signals:
                return self._fit()
        finally:
            lock.release()

    def _fit(self) -> dict[str, Any]:
        t, resume = self.cfg.train, self.run.resume
        if resume:
            self.state, self._resume = self.checkpointer.restore(resume, self.state)
            where = f"epoch {self.state.epoch}" + (f" + {self._resume.iteration} iterations" if self._resume else "")
            self.log.info(f"resumed from {resume} at {where}, update {self.state.updates}")
            if self.state.epoch >= t.epochs:
                self.log.info(f"{self.output_dir} is already complete: {self.state.epoch} epochs; raise train.epochs "
                              f"to continue (nothing was changed)")
                return read_json(os.path.join(self.output_dir, "results.json"))
        self.scheduler.step_update(num_updates=self.state.updates)
        if self.info.is_main:
            atomic_write_text(os.path.join(self.output_dir, "config.yaml"), dump_config(self.cfg))
        self.runlog = RunLogger(self.output_dir, self.info.is_main, t.tensorboard)
        if resume:  # rows a killed run wrote after its last checkpoint would otherwise appear twice
            self.runlog.truncate(self.state.epoch * self.geo.iters_per_epoch
                                 + (self._resume.iteration if self._resume else 0), self.state.epoch)
        describe_run(self)
        self.callbacks.on_fit_start(self)
        start = time.perf_counter()
        try:
            while self.state.epoch < t.epochs:
                self._run_epoch()
        finally:
            self.runlog.close()
        results = finish_run(self, self.history, time.perf_counter() - start)
        self.callbacks.on_fit_end(self, results)
        return results

    def _run_epoch(self) -> None:
        """Train one epoch, evaluate when due, log its row, let callbacks see it, checkpoint, stop if asked."""
        t = self.cfg.train
        row = self.train_one_epoch(self.state.epoch)
        self.state.epoch += 1
        epoch = self.state.epoch
        metrics = self._eval() if epoch % t.eval_interval == 0 or epoch == t.epochs else {}
        for k, v in metrics.items():  # an eval key that a training key already uses gets a val_ prefix
            row[f"val_{k}" if k in row else k] = v
        self.callbacks.on_epoch_end(self, row)  # may add to the row, stop the run (divergence) or veto the best
        veto, self._best_veto = self._best_veto, None
        if veto and metrics:
            self.log.warning(f"epoch {epoch} is not considered for best.pth: {veto}")
        is_best = self.state.best.update(metrics, epoch) if not veto else False
        self.history.append({"epoch": epoch, **row})
        self.runlog.log("epoch", epoch, row)
        self.log.info(f"epoch {epoch}/{t.epochs} " + " ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"))
        if epoch % t.save_interval == 0 or epoch == t.epochs or is_best or self.stop_signal:
            self.save(is_best)
        if self.stop_signal and epoch < t.epochs:
            raise self._preempted(f"the end of epoch {epoch}")

    def evaluate_only(self) -> dict[str, Any]:
        """Evaluate the run's best.pth (else last.pth, or train.resume; else the initial weights) and write
        ``eval_results.json`` naming the checkpoint and the data; the training records are not touched."""
        ckpt = eval_checkpoint(self.cfg)
        if ckpt:
            self.state.epoch = self.checkpointer.load_weights(ckpt)
        data = {k: v for k, v in vars(getattr(self.cfg, "data", object())).items()
                if k in ("dataset", "root", "root_val", "val_split", "ann_val", "ann_test")}
        self.log.info(f"evaluating {ckpt or 'the initial weights (no checkpoint in ' + self.output_dir + ')'} "
                      f"on {data or 'the validation data'}")
        start = time.perf_counter()
        metrics = self._eval()
        result = {"checkpoint": ckpt, "epoch": self.state.epoch, "data": data, "metrics": metrics,
                  "time_s": time.perf_counter() - start}
        self.log.info(f"evaluation: {self.task.describe(metrics) if metrics else 'no metrics'}")
        if self.info.is_main:
            write_json(os.path.join(self.output_dir, "eval_results.json"), result)
        return result
