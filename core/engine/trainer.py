"""The shared training loop: one :class:`Trainer` runs any :class:`core.engine.task.Task`.

    task = ClassificationTask(model, criterion)            # or MoBY, SimMIM, ... (core.engine.task)
    results = Trainer(cfg, task, train_loader, val_loader).fit()

The trainer owns the loop and the optimizer step: DDP and compile wrappers, autocast, gradient accumulation,
clipping, the non-finite skip, the optimizer / scheduler / EMA updates. Around it, each in its own module:
checkpoint state and exact resume (``resume``), progress and logging (``progress``), evaluation and the best
epoch (``evaluation``), and callbacks (``callbacks``: curves, preemption checks, anything a user plugs in).
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from . import callbacks as cbs
from . import distributed as du
from . import resume as ckpt_state
from . import sharding
from .callbacks import Callback, Callbacks, Curves, DivergenceGuard, Preemption
from .checkpoint import capture_rng_state, load_checkpoint, restore_rng_state
from .config import Config, dump_config
from .device import amp_choice, amp_name, autocast, to_device
from .distributed import DistInfo
from .evaluation import BestTracker, evaluate
from .files import atomic_write_text, write_json
from .metrics import RunLogger, setup_logging
from .optim import build_optimizer, build_scheduler, scaled_lrs
from .preempt import EXIT_PREEMPTED, Preempted, RunLock, StopSignals, remove_stale_temps
from .progress import EpochProgress
from .resume import MidEpoch
from .rundir import RunContext, eval_checkpoint, resolve_run
from .task import EvalEnv, Task

__all__ = ["Trainer"]


def _per_process_batch(cfg: Config, loader: Any) -> int:
    """The loader's batch size, else the config's ``data.batch_size``."""
    bs = getattr(loader, "batch_size", None)
    if bs is None:
        bs = getattr(getattr(cfg, "data", None), "batch_size", None)
    if bs is None:
        raise ValueError("cannot tell the batch size: give a DataLoader or a config with data.batch_size")
    return int(bs)


def _set_epoch(loader: Any, epoch: int) -> None:
    """Reshuffle for the epoch: a DistributedSampler's, or an iterable data set's own ``set_epoch``."""
    for source in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if callable(getattr(source, "set_epoch", None)):
            source.set_epoch(epoch)
            return


class Trainer:
    """Runs ``cfg.train.epochs`` epochs of a task with evaluation, logging, callbacks and exact resume."""

    def __init__(self, cfg: Config, task: Task, train_loader: Iterable | None, val_loader: Any = None, *,
                 info: DistInfo | None = None, run: RunContext | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"Trainer runs a core.engine.task.Task, got {type(task).__name__}")
        self.cfg = cfg
        self.info = info or du.init_distributed(cfg.train.device)
        self.device = self.info.device
        self.train_loader = train_loader
        self.val_loader = val_loader
        t = cfg.train
        self.run = run or resolve_run(cfg)
        self.output_dir = self.run.output_dir
        self.log = setup_logging(self.output_dir, self.info.is_main)
        self.amp_dtype, self.amp_why = amp_choice(t.amp, self.device)
        self.env = EvalEnv(self.device, self.amp_dtype, t.progress)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        # the task, its wrappers
        self.fsdp = t.strategy == "fsdp"
        # sharded: fully_shard moves each block to the device as it shards it (never the whole model on one rank)
        self.task = task if self.fsdp and self.info.distributed else task.to(self.device)
        if t.grad_checkpointing:
            self.task.set_grad_checkpointing(True)
        self.ema = None
        if t.ema:
            from timm.utils import ModelEmaV3
            self.ema = ModelEmaV3(self.task, decay=t.ema_decay)
        if t.compile:
            self.task.backbone.compile()  # in place: the state dict keeps its names
        self.train_model: nn.Module = self.task
        self.ddp: DistributedDataParallel | None = None
        if self.fsdp:  # shards in place: the task is its own wrapper (core.engine.sharding)
            sharding.shard_task(self.task, t, self.info, self.amp_dtype)
        elif self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.task, device_ids=ids,
                                               find_unused_parameters=t.find_unused_parameters,
                                               broadcast_buffers=self.task.broadcast_buffers)
            self.train_model = self.ddp

        # batch geometry, optimisation
        self.accum = cfg.optim.accum_steps
        self.iters_per_epoch = len(train_loader) if train_loader is not None else 0
        if t.max_iters_per_epoch:
            self.iters_per_epoch = min(self.iters_per_epoch, t.max_iters_per_epoch)
        self.updates_per_epoch = max(1, math.ceil(self.iters_per_epoch / self.accum))
        self.total_updates = t.epochs * self.updates_per_epoch
        self.batch_size = _per_process_batch(cfg, train_loader) if train_loader is not None else 0
        self.global_batch = self.batch_size * self.info.world_size * self.accum
        self.lr, warmup_lr, min_lr = scaled_lrs(cfg, self.global_batch)
        self.optimizer = build_optimizer(cfg, self.task, self.lr)
        self.scheduler = build_scheduler(cfg, self.optimizer, self.updates_per_epoch, warmup_lr=warmup_lr,
                                         min_lr=min_lr)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.amp_dtype == torch.float16 else None

        # progress
        self.epoch = 0          # next epoch to run
        self.num_updates = 0    # optimizer updates so far
        self.tracker = BestTracker(task.best_metric)
        self.history: list[dict[str, Any]] = []
        self.runlog: RunLogger | None = None
        self.signals = StopSignals()
        # the guard last: it sees the loss every other callback may have replaced
        self.callbacks = Callbacks([Preemption(), Curves(), *callbacks, *cbs.EXTRA, DivergenceGuard()])
        self.stop_signal = 0    # set through request_stop: checkpoint and stop at the next update
        self._resume: MidEpoch | None = None  # a mid-epoch checkpoint being continued
        self.nonfinite_skipped = 0
        self._bad_group = False
        self._best_veto: str | None = None  # why this epoch may not become best.pth (a callback said so)

    # -------------------------------------------------------------------------------- small pieces
    def train_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """The task's outputs for one micro-batch (under autocast, batch on device, through DDP)."""
        out = self.train_model(batch)
        if not isinstance(out, Mapping) or "loss" not in out:
            raise TypeError(f"{sharding.class_name(self.task)}.forward must return a dict with a 'loss', got "
                            f"{type(out).__name__}")
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
        path = ckpt_state.save(self, is_best, mid)
        if path is not None:
            self.callbacks.on_save(self, path)

    def _eval(self) -> dict[str, float]:
        with sharding.gathered(self.task, self.cfg.train.fsdp_reshard_after_forward):
            return evaluate(self.task, self.ema.module if self.ema is not None else None, self.val_loader, self.env)

    # -------------------------------------------------------------------------------- loop
    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader; returns the mean loss and the task's other scalars.

        Continuing a mid-epoch checkpoint, it replays the epoch's data up to the saved iteration from the epoch's
        starting RNG state (so shuffling, augmentation and worker seeds are those of the interrupted run), then
        restores the RNG of the checkpoint: the result equals an uninterrupted run.
        """
        self.train_model.train()
        _set_epoch(self.train_loader, epoch)
        n = self.iters_per_epoch
        full = (n // self.accum) * self.accum
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
            sync = (i + 1) % self.accum == 0 or i + 1 == n
            with self._no_sync(sync):
                with autocast(self.device, self.amp_dtype):
                    out = self.train_step(batch)
                loss = out["loss"]
                finite = self._all_finite(loss) if skip_mode else True
                scaled = loss / (self.accum if i < full else n - full)  # a shorter last group weighs the same
                if not finite:  # a zero backward that touches every parameter: DDP ranks stay in step
                    scaled = sum(p.sum() for p in self.task.parameters() if p.requires_grad) * 0.0
                    self._bad_group = True
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            if not finite:
                self._count_skip(epoch, i, "loss")
            if sync:
                grad_norm = self._optimizer_step(epoch, i)
            progress.update(i, out if finite else None, grad_norm)
            if sync and i + 1 < n:
                self.callbacks.on_step_end(self, epoch, i)
                every = self.cfg.train.checkpoint_interval
                if self.stop_signal or (every and (self.num_updates % self.updates_per_epoch) % every == 0):
                    self.save(False, MidEpoch(i + 1, epoch_rng, *progress.snapshot(), first=progress.first))
                    if self.stop_signal:
                        raise self._preempted(f"epoch {epoch + 1} iteration {i + 1}/{n}")
        means = progress.close()
        res = {"epoch": epoch + 1, "train_loss": means.pop("train_loss"), "lr": self.lr_now(),
               "epoch_time_s": means.pop("epoch_time_s"), "data_wait": means.pop("data_wait"),
               "data_wait_s": means.pop("data_wait_s"), **means}
        if skip_mode:
            res["nonfinite_skipped"] = self.nonfinite_skipped
        res.update(self.task.end_epoch())
        return res

    def _no_sync(self, sync: bool) -> contextlib.AbstractContextManager:
        """Gradient accumulation: skip DDP's all-reduce, or FSDP's reduce-scatter, when ``sync`` is False."""
        if self.fsdp:
            return sharding.grad_sync(self.task, sync)
        return self.ddp.no_sync() if (self.ddp is not None and not sync) else contextlib.nullcontext()

    def _all_finite(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is finite on every rank (one device sync; a collective under DDP)."""
        bad = (~torch.isfinite(t.detach())).any().float().reshape(1)
        return not bool(du.all_reduce_max(bad).item() if du.is_dist() else bad.item())

    def _count_skip(self, epoch: int, i: int, what: str) -> None:
        self.nonfinite_skipped += 1
        self.log.warning(f"non-finite {what} at epoch {epoch + 1} iteration {i + 1}: step skipped "
                         f"({self.nonfinite_skipped} so far; train.nonfinite=skip)")

    def _preempted(self, where: str) -> Preempted:
        name = signal.Signals(self.stop_signal).name
        last = os.path.join(self.output_dir, sharding.LAST if self.fsdp else "last.pth")
        msg = (f"stopped by {name} at {where}: checkpoint {last} written; "
               f"continue with --output-dir {self.output_dir} (exit code {EXIT_PREEMPTED})")
        du.all_gather_object(None)  # every rank waits for rank 0 to finish writing before it says it is written
        self.log.warning(msg)
        return Preempted(self.stop_signal, msg)

    def _optimizer_step(self, epoch: int = 0, i: int = 0) -> torch.Tensor | None:
        """Unscale, clip, step, zero grads, advance scheduler, EMA and the task; returns the grad norm if clipped.

        With ``train.nonfinite=skip`` a step whose gradients are not finite is dropped (the schedule still advances).
        """
        clip = self.cfg.optim.clip_grad
        norm = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        if clip > 0:
            norm = sharding.full_norm(torch.nn.utils.clip_grad_norm_(params, clip))
        skip, self._bad_group = self._bad_group, False  # a micro-batch of this update had a non-finite loss
        if self.cfg.train.nonfinite == "skip" and self.scaler is None and not skip:
            if norm is None:
                norm = sharding.full_norm(torch.nn.utils.clip_grad_norm_(params, float("inf")))
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
        self.num_updates += 1
        self.scheduler.step_update(num_updates=self.num_updates)
        self.task.after_update(self.num_updates, self.total_updates)
        if self.ema is not None:
            self.ema.update(self.task, step=self.num_updates)
        return norm

    def _describe(self) -> None:
        cfg, info = self.cfg, self.info
        backbone = self.task.backbone
        n_params = sum(p.numel() for p in backbone.parameters())
        n_task = sum(p.numel() for p in self.task.parameters()) - n_params
        extra = f" (+{n_task:,} in the {sharding.class_name(self.task)})" if n_task else ""
        self.log.info(f"model {cfg.model.name}: {n_params:,} parameters{extra}, "
                      f"{sum(p.numel() for p in self.task.parameters() if p.requires_grad):,} trainable")
        t = cfg.train
        shard = (f", train.strategy fsdp (mesh {t.fsdp_mesh or [info.world_size]}, parameters gathered in "
                 f"{amp_name(self.amp_dtype)}, gradients reduced in fp32)" if t.strategy == "fsdp" else "")
        self.log.info(f"world size {info.world_size} on {self.device}{shard}; batch {self.batch_size} per process x "
                      f"{info.world_size} processes x {self.accum} accumulation = global batch {self.global_batch}")
        if cfg.sched.warmup_epochs >= cfg.train.epochs and info.is_main:  # a recipe warning: said once
            self.log.warning(f"sched.warmup_epochs ({cfg.sched.warmup_epochs}) >= train.epochs ({cfg.train.epochs}): "
                             f"the lr never leaves warm-up")
        self.log.info(f"lr {self.lr:.3e} (peak), {self.iters_per_epoch} iterations / {self.updates_per_epoch} "
                      f"updates per epoch, amp {amp_name(self.amp_dtype)} ({self.amp_why}), output {self.output_dir}")

    def fit(self) -> dict[str, Any]:
        """Train (continuing a checkpoint when one applies), evaluate every ``eval_interval`` epochs, save, summarise.

        With ``train.eval_only`` (or no training loader) it evaluates instead: see :meth:`evaluate_only`.
        """
        t = self.cfg.train
        if t.eval_only or self.train_loader is None:
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
        cfg, t = self.cfg, self.cfg.train
        resume = self.run.resume
        if resume:
            self._resume = ckpt_state.restore(self, ckpt_state.load_or_name_alternative(resume), resume)
            where = f"epoch {self.epoch}" + (f" + {self._resume.iteration} iterations" if self._resume else "")
            self.log.info(f"resumed from {resume} at {where}, update {self.num_updates}")
            if self.epoch >= t.epochs:
                self.log.info(f"{self.output_dir} is already complete: {self.epoch} epochs; raise train.epochs to "
                              f"continue (nothing was changed)")
                return ckpt_state.read_json(os.path.join(self.output_dir, "results.json"))
        self.scheduler.step_update(num_updates=self.num_updates)
        if self.info.is_main:
            atomic_write_text(os.path.join(self.output_dir, "config.yaml"), dump_config(cfg))
        self.runlog = RunLogger(self.output_dir, self.info.is_main, t.tensorboard)
        if resume:  # rows a killed run wrote after its last checkpoint would otherwise appear twice
            self.runlog.truncate(self.epoch * self.iters_per_epoch + (self._resume.iteration if self._resume else 0),
                                 self.epoch)
        self._describe()
        self.callbacks.on_fit_start(self)
        start = time.perf_counter()
        try:
            while self.epoch < t.epochs:
                self._run_epoch()
        finally:
            self.runlog.close()
        results = self._finish(time.perf_counter() - start)
        self.callbacks.on_fit_end(self, results)
        return results

    def _run_epoch(self) -> None:
        """Train one epoch, evaluate when due, log its row, let callbacks see it, checkpoint, stop if asked."""
        t = self.cfg.train
        epoch = self.epoch
        row = self.train_one_epoch(epoch)
        self.epoch = epoch + 1
        metrics = self._eval() if self.epoch % t.eval_interval == 0 or self.epoch == t.epochs else {}
        for k, v in metrics.items():  # an eval key that a training key already uses gets a val_ prefix
            row[f"val_{k}" if k in row else k] = v
        self.callbacks.on_epoch_end(self, row)  # may add to the row, stop the run (divergence) or veto the best
        veto, self._best_veto = self._best_veto, None
        if veto and metrics:
            self.log.warning(f"epoch {self.epoch} is not considered for best.pth: {veto}")
        is_best = self.tracker.update(metrics, self.epoch) if not veto else False
        self.history.append({"epoch": self.epoch, **row})
        self.runlog.log("epoch", self.epoch, row)
        self.log.info(f"epoch {self.epoch}/{t.epochs} " + " ".join(
            f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"))
        if self.epoch % t.save_interval == 0 or self.epoch == t.epochs or is_best or self.stop_signal:
            self.save(is_best)
        if self.stop_signal and self.epoch < t.epochs:
            raise self._preempted(f"the end of epoch {self.epoch}")

    def evaluate_only(self) -> dict[str, Any]:
        """Evaluate the run's best.pth (else last.pth, or train.resume; else the initial weights) and write
        ``eval_results.json`` naming the checkpoint and the data; the training records are not touched."""
        ckpt = eval_checkpoint(self.cfg)
        if ckpt:
            ckpt_state.load_weights(self, load_checkpoint(ckpt), ckpt)
        data = {k: v for k, v in vars(getattr(self.cfg, "data", object())).items()
                if k in ("dataset", "root", "root_val", "val_split", "ann_val", "ann_test")}
        self.log.info(f"evaluating {ckpt or 'the initial weights (no checkpoint in ' + self.output_dir + ')'} "
                      f"on {data or 'the validation data'}")
        start = time.perf_counter()
        metrics = self._eval()
        result = {"checkpoint": ckpt, "epoch": self.epoch, "data": data, "metrics": metrics,
                  "time_s": time.perf_counter() - start}
        self.log.info(f"evaluation: {self.task.describe(metrics) if metrics else 'no metrics'}")
        if self.info.is_main:
            write_json(os.path.join(self.output_dir, "eval_results.json"), result)
        return result

    def _finish(self, elapsed: float) -> dict[str, Any]:
        best, best_ema = self.tracker.best, self.tracker.best_ema
        results = {
            "name": self.cfg.name, "model": self.cfg.model.name, "epochs": self.epoch,
            "global_batch": self.global_batch, "world_size": self.info.world_size, "time_s": elapsed,
            "params": sum(p.numel() for p in self.task.backbone.parameters()),
            "best": best, "best_ema": best_ema,
            "final": self.history[-1] if self.history else {},
        }
        if best:
            msg = f"best {self.task.describe(best)} at epoch {best.get('epoch')}"
            if best_ema:
                msg += f"; EMA best {self.task.describe(best_ema)}"
        else:
            msg = "no evaluation metrics"
        self.log.info(f"done in {elapsed:.1f}s: {msg}")
        if self.info.is_main:
            write_json(os.path.join(self.output_dir, "results.json"), results)
        return results
