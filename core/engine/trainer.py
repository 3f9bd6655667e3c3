"""The shared training loop: one :class:`Trainer` runs any :class:`core.engine.task.Task`.

    task = ClassificationTask(model, criterion)            # or MoBY, SimMIM, ... (core.engine.task)
    results = Trainer(cfg, task, train_loader, val_loader).fit()

The trainer owns what every method shares and nothing method-specific: DDP and compile wrappers, autocast,
gradient accumulation, clipping, the optimizer / scheduler / EMA updates, logging (the loss is read back from
the device only at log intervals), evaluation through ``task.evaluate`` every ``eval_interval`` epochs,
atomic checkpoints (``best.pth`` by ``task.best_metric``) and exact resume.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Iterable, Mapping

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from . import distributed as du
from .checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_state_dict,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
)
from .config import Config, config_to_dict, dump_config
from .device import autocast, resolve_amp, seed_everything, to_device
from .distributed import DistInfo
from .files import atomic_copy, atomic_save, atomic_write_text, write_json
from .metrics import RunLogger, setup_logging
from .optim import build_optimizer, build_scheduler, scaled_lrs
from .preempt import EXIT_PREEMPTED, Preempted, RunLock, StopSignals, remove_stale_temps
from .rundir import eval_checkpoint, mark_latest, resume_path, run_output_dir
from .task import EvalEnv, Task

__all__ = ["Trainer"]


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _flat_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")] if a != b else []


_IGNORED_CHANGES = ("name", "train.output_dir", "train.resume", "train.progress", "train.tensorboard",
                    "train.eval_only", "train.device")


def _changes(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for the settings that differ between a checkpoint's config and this run's."""
    out = []
    for k in _flat_diff(old, new):
        if k.startswith(_IGNORED_CHANGES):
            continue
        get = lambda d: _lookup(d, k)
        out.append(f"{k}: {get(old)!r} -> {get(new)!r}")
    return out


def _lookup(d: Any, key: str) -> Any:
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def _per_process_batch(cfg: Config, loader: Any) -> int:
    """The loader's batch size, else the config's ``data.batch_size``."""
    bs = getattr(loader, "batch_size", None)
    if bs is None:
        bs = getattr(getattr(cfg, "data", None), "batch_size", None)
    if bs is None:
        raise ValueError("cannot tell the batch size: give a DataLoader or a config with data.batch_size")
    return int(bs)


class Trainer:
    """Runs ``cfg.train.epochs`` epochs of a task with evaluation, logging and exact resume."""

    def __init__(self, cfg: Config, task: Task, train_loader: Iterable | None, val_loader: Any = None, *,
                 info: DistInfo | None = None) -> None:
        if not isinstance(task, Task):
            raise TypeError(f"Trainer runs a core.engine.task.Task, got {type(task).__name__}")
        self.cfg = cfg
        self.info = info or du.init_distributed(cfg.train.device)
        self.device = self.info.device
        self.train_loader = train_loader
        self.val_loader = val_loader
        t = cfg.train
        self.output_dir = run_output_dir(cfg)
        self.log = setup_logging(self.output_dir, self.info.is_main)
        self.amp_dtype = resolve_amp(t.amp, self.device)
        self.env = EvalEnv(self.device, self.amp_dtype, t.progress)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        # the task, its wrappers
        self.task = task.to(self.device)
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
        if self.info.distributed:
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
        self.best: dict[str, Any] = {}
        self.best_ema: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self.runlog: RunLogger | None = None
        self.signals = StopSignals()
        self._mid_epoch: dict[str, Any] = {}  # saved with a checkpoint written inside an epoch
        self._resume: dict[str, Any] = {}     # a mid-epoch checkpoint being continued
        self.nonfinite_skipped = 0
        self._bad_group = False

    # -------------------------------------------------------------------------------- one step, one eval
    def train_step(self, batch: Any) -> Mapping[str, torch.Tensor]:
        """The task's outputs for one micro-batch (under autocast, batch on device, through DDP)."""
        out = self.train_model(batch)
        if not isinstance(out, Mapping) or "loss" not in out:
            raise TypeError(f"{type(self.task).__name__}.forward must return a dict with a 'loss', got "
                            f"{type(out).__name__}")
        return out

    def evaluate(self, task: Task) -> dict[str, float]:
        """``task.evaluate`` on the validation loader."""
        return dict(task.evaluate(self.val_loader, self.env))

    # -------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (RNG states of all ranks included)."""
        rng = du.all_gather_object(capture_rng_state())
        ema = self.ema.module if self.ema is not None else None
        return {
            "model": self.task.backbone_state(),
            "task": self.task.task_state(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": ema.backbone_state() if ema is not None else None,
            "ema_task": ema.task_state() if ema is not None else None,
            "epoch": self.epoch,
            "iteration": self.num_updates,
            "best": dict(self.best),
            "best_ema": dict(self.best_ema),
            "rng": rng,
            "world_size": self.info.world_size,
            "config": config_to_dict(self.cfg),
            **self._mid_epoch,  # iter_in_epoch, epoch_rng, epoch_sums, window: only inside an epoch
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str) -> None:
        """Restore a :meth:`state_dict`; a model mismatch raises CheckpointError before anything changes."""
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iteration") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{source} is not a training checkpoint (missing {missing}); "
                                  f"use model.pretrained to load weights only")
        try:
            check_state_dict(self.task.backbone, ckpt["model"], f"resume file {source}")
            _check_task_state(self.task, ckpt.get("task") or {}, f"resume file {source}")
        except CheckpointError as e:
            raise CheckpointError(f"{e}\n  (that checkpoint is another model's run: give this run another "
                                  f"--output-dir, or continue it with the model settings it was started with)") from None
        if self.ema is not None and ckpt.get("ema") is not None:
            check_state_dict(self.ema.module.backbone, ckpt["ema"], f"EMA weights in {source}")
        saved_groups = ckpt["optimizer"].get("param_groups", [])
        if len(saved_groups) != len(self.optimizer.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(saved_groups, self.optimizer.param_groups)):
            raise CheckpointError(
                f"optimizer state in {source} has parameter groups of sizes "
                f"{[len(g['params']) for g in saved_groups]}, this run has "
                f"{[len(g['params']) for g in self.optimizer.param_groups]} (optim.* settings changed?)")
        if "config" in ckpt:
            changed = _changes(ckpt["config"], config_to_dict(self.cfg))
            if changed:
                self.log.warning(f"resuming {source} with changed settings: {'; '.join(changed)}; the lr schedule "
                                 f"is rebuilt from this config at the resumed position")
        self.task.load_split_state(ckpt["model"], ckpt.get("task") or {})
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict(ckpt["optimizer"])
        for group, hyper in zip(self.optimizer.param_groups, fresh):  # this config's lr, wd, betas, scales
            group.update(hyper)
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt.get("ema") is not None:
                self.ema.module.load_split_state(ckpt["ema"], ckpt.get("ema_task") or self.task.task_state())
            else:
                self.log.warning(f"{source} has no EMA weights; EMA restarts from the model")
                self.ema.module.load_state_dict(self.task.state_dict())
        self.epoch = int(ckpt["epoch"])
        inside = int(ckpt.get("iter_in_epoch", 0))
        # the schedule's position from epochs done (the saved update count assumed the saved batch geometry)
        self.num_updates = self.epoch * self.updates_per_epoch + math.ceil(inside / self.accum)
        if self.num_updates != int(ckpt["iteration"]):
            self.log.warning(f"{source}: {ckpt['iteration']} updates were made with another batch geometry; the "
                             f"schedule continues at update {self.num_updates} of {self.total_updates}")
        self.best = dict(ckpt.get("best", {}))
        self.best_ema = dict(ckpt.get("best_ema", {}))
        rng = ckpt.get("rng")
        same_world = isinstance(rng, list) and len(rng) == self.info.world_size
        if inside and same_world and inside < self.iters_per_epoch:
            # mid-epoch: replay this epoch's data from its start, then continue with the saved RNG (train_one_epoch)
            self._resume = {"iter": inside, "epoch_rng": ckpt["epoch_rng"][self.info.rank],
                            "rng": rng[self.info.rank], "epoch_sums": dict(ckpt.get("epoch_sums", {})),
                            "window": list(ckpt.get("window", []))}
        elif inside:
            self.log.warning(f"{source} was saved inside epoch {self.epoch + 1} with another world size or epoch "
                             f"length; that epoch restarts from its beginning")
        if same_world and not self._resume:
            restore_rng_state(rng[self.info.rank])
        elif not same_world:
            self.log.warning(f"{source} was saved with another world size; RNG streams reseeded, the run "
                             f"continues but is not bit-identical to an uninterrupted one")
            seed_everything(self.cfg.train.seed + 1000 * self.epoch + self.info.rank)

    def load_weights(self, ckpt: Mapping[str, Any], source: str) -> None:
        """Load only the backbone (and EMA) weights from a training checkpoint or a bare state dict."""
        sd = ckpt["model"] if "model" in ckpt and isinstance(ckpt["model"], Mapping) else ckpt
        load_model_state(self.task.backbone, sd, f"weights in {source}")
        if self.ema is not None:
            ema = ckpt.get("ema") if isinstance(ckpt.get("ema"), Mapping) else None
            load_model_state(self.ema.module.backbone, ema if ema is not None else sd, f"EMA weights in {source}")
        epoch = ckpt.get("epoch", 0)
        self.epoch = epoch if isinstance(epoch, int) else 0

    def save(self, is_best: bool) -> None:
        """Write best.pth (when best) and then last.pth, atomically, on rank 0; all ranks must call (RNG gather).

        best.pth is complete before last.pth records it, and weights that are not finite are never written.
        """
        bad = [n for n, p in self.task.named_parameters() if not torch.isfinite(p).all()]
        if bad:
            raise FloatingPointError(f"the weights are not finite at epoch {self.epoch + 1} ({bad[:3]}...); no "
                                     f"checkpoint was written (the last good one stays in {self.output_dir})")
        state = self.state_dict()
        if not self.info.is_main:
            return
        last, best = os.path.join(self.output_dir, "last.pth"), os.path.join(self.output_dir, "best.pth")
        try:
            if is_best:
                atomic_save(state, best)
                atomic_copy(best, last)
            else:
                atomic_save(state, last)
            mark_latest(self.output_dir)
        except OSError as e:
            raise CheckpointError(f"cannot write a checkpoint into {self.output_dir}: {e.strerror or e} (the "
                                  f"previous checkpoint there is intact)") from None

    # -------------------------------------------------------------------------------- loop
    def _lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader; returns the mean loss and the task's other scalars.

        Continuing a mid-epoch checkpoint, it replays the epoch's data up to the saved iteration from the epoch's
        starting RNG state (so shuffling, augmentation and worker seeds are those of the interrupted run), then
        restores the RNG of the checkpoint: the result equals an uninterrupted run.
        """
        cfg = self.cfg
        self.train_model.train()
        loader = self.train_loader
        for source in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):  # reshuffle the epoch:
            if callable(getattr(source, "set_epoch", None)):  # a DistributedSampler, or an iterable set's own
                source.set_epoch(epoch)
                break
        n = self.iters_per_epoch
        full = (n // self.accum) * self.accum
        resume, self._resume = self._resume, {}
        if resume:
            restore_rng_state(resume["epoch_rng"])
        epoch_rng = du.all_gather_object(capture_rng_state())  # before the loader draws its worker seeds
        batches = iter(loader)
        start = resume.get("iter", 0)
        for _ in range(start):
            next(batches)
        if resume:
            restore_rng_state(resume["rng"])
            self.log.info(f"continuing epoch {epoch + 1} at iteration {start + 1} (replayed {start} batches)")
        epoch_sums: dict[str, float] = dict(resume.get("epoch_sums", {}))
        window = [{k: torch.tensor(v) for k, v in w.items()} for w in resume.get("window", [])]
        bar = tqdm(total=n, initial=start, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", dynamic_ncols=True,
                   mininterval=1.0, disable=not (self.info.is_main and cfg.train.progress))
        self.optimizer.zero_grad(set_to_none=True)
        t0 = t_log = time.perf_counter()
        iters_left_after = (cfg.train.epochs - epoch - 1) * n  # iterations of later epochs
        grad_norm = None
        skip_mode = cfg.train.nonfinite == "skip"
        for i in range(start, n):
            batch = to_device(next(batches), self.device)
            sync = (i + 1) % self.accum == 0 or i + 1 == n
            with self.ddp.no_sync() if (self.ddp is not None and not sync) else contextlib.nullcontext():
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
            if finite:
                window.append({k: (v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v)))
                               for k, v in out.items()})
            bar.update(1)
            if ((i + 1) % cfg.train.log_interval == 0 or i + 1 == n) and window:
                row = self._read_window(window, epoch, i)
                for k, v in row.items():
                    epoch_sums[k] = epoch_sums.get(k, 0.0) + v * len(window)
                now = time.perf_counter()
                sps = self.batch_size * self.info.world_size * len(window) / max(now - t_log, 1e-9)
                row = {"epoch": epoch + 1, "iter": i + 1, "loss": row.pop("loss"), "lr": self._lr(),
                       "samples_per_s": sps, **row}
                if grad_norm is not None:
                    row["grad_norm"] = float(grad_norm)
                if self.runlog is not None:
                    self.runlog.log("train", epoch * n + i + 1, row)
                eta = (now - t0) / (i + 1 - start) * (n - i - 1 + iters_left_after)
                bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{self._lr():.2e}", sps=f"{sps:.1f}", eta=_hms(eta),
                                refresh=False)
                window, t_log = [], now
            if sync and i + 1 < n:
                every = cfg.train.checkpoint_interval
                signum = self.signals.requested(self.device)
                if signum or (every and (self.num_updates % self.updates_per_epoch) % every == 0):
                    self._mid_epoch = {"iter_in_epoch": i + 1, "epoch_rng": epoch_rng, "epoch_sums": epoch_sums,
                                       "window": [{k: float(v) for k, v in w.items()} for w in window]}
                    try:
                        self.save(False)
                    finally:
                        self._mid_epoch = {}
                    if signum:
                        raise self._preempted(signum, f"epoch {epoch + 1} iteration {i + 1}/{n}")
        bar.close()
        keys = sorted(epoch_sums)
        stats = torch.tensor([epoch_sums[k] for k in keys] + [float(n)], dtype=torch.float64)
        if self.info.distributed:
            stats = du.all_reduce_sum(stats.to(self.device)).cpu()
        means = {k: float(stats[j] / max(1.0, float(stats[-1]))) for j, k in enumerate(keys)}
        res = {"epoch": epoch + 1, "train_loss": means.pop("loss", float("nan")), "lr": self._lr(),
               "epoch_time_s": time.perf_counter() - t0}
        res.update(means)
        if skip_mode:
            res["nonfinite_skipped"] = self.nonfinite_skipped
        res.update(self.task.end_epoch())
        return res

    def _all_finite(self, t: torch.Tensor) -> bool:
        """Whether ``t`` is finite on every rank (one device sync; a collective under DDP)."""
        bad = (~torch.isfinite(t.detach())).any().float().reshape(1)
        return not bool(du.all_reduce_max(bad).item() if du.is_dist() else bad.item())

    def _count_skip(self, epoch: int, i: int, what: str) -> None:
        self.nonfinite_skipped += 1
        self.log.warning(f"non-finite {what} at epoch {epoch + 1} iteration {i + 1}: step skipped "
                         f"({self.nonfinite_skipped} so far; train.nonfinite=skip)")

    def _preempted(self, signum: int, where: str) -> Preempted:
        import signal as _signal
        name = _signal.Signals(signum).name
        msg = (f"stopped by {name} at {where}: checkpoint {os.path.join(self.output_dir, 'last.pth')} written; "
               f"continue with --output-dir {self.output_dir} (exit code {EXIT_PREEMPTED})")
        self.log.warning(msg)
        return Preempted(signum, msg)

    def _read_window(self, window: list[dict[str, torch.Tensor]], epoch: int, last: int) -> dict[str, float]:
        """Means of a log interval's scalars: one device-to-host copy; a non-finite loss stops the run."""
        keys = list(window[0])
        values = torch.stack([torch.stack([w[k].reshape(()) for k in keys]) for w in window]).cpu().double()
        losses = values[:, keys.index("loss")]
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            j = int(bad[0])
            last_ckpt = os.path.join(self.output_dir, "last.pth")
            kept = (f"the last checkpoint {last_ckpt} is kept" if os.path.isfile(last_ckpt)
                    else "no checkpoint was written")
            raise FloatingPointError(f"loss is {float(losses[j])} at epoch {epoch + 1} iteration "
                                     f"{last - len(window) + 2 + j}; stopping ({kept})")
        means = values.mean(0).tolist()
        return dict(zip(keys, means))

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
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        skip, self._bad_group = self._bad_group, False  # a micro-batch of this update had a non-finite loss
        if self.cfg.train.nonfinite == "skip" and self.scaler is None and not skip:
            if norm is None:
                norm = torch.nn.utils.clip_grad_norm_(params, float("inf"))
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

    def _run_eval(self) -> dict[str, float]:
        metrics = self.evaluate(self.task)
        if self.ema is not None:
            metrics.update({f"ema_{k}": v for k, v in self.evaluate(self.ema.module).items()})
        return metrics

    def _update_best(self, metrics: Mapping[str, float], epoch: int) -> bool:
        key = self.task.best_metric
        improved = False
        if key in metrics and (not self.best or metrics[key] > self.best[key]):
            self.best = {k: v for k, v in metrics.items() if not k.startswith("ema_")}
            self.best["epoch"] = epoch
            improved = True
        ek = f"ema_{key}"
        if ek in metrics and (not self.best_ema or metrics[ek] > self.best_ema[key]):
            self.best_ema = {k[4:]: v for k, v in metrics.items() if k.startswith("ema_")}
            self.best_ema["epoch"] = epoch
        return improved

    def _describe(self) -> None:
        cfg, info = self.cfg, self.info
        backbone = self.task.backbone
        n_params = sum(p.numel() for p in backbone.parameters())
        n_task = sum(p.numel() for p in self.task.parameters()) - n_params
        extra = f" (+{n_task:,} in the {type(self.task).__name__})" if n_task else ""
        self.log.info(f"model {cfg.model.name}: {n_params:,} parameters{extra}, "
                      f"{sum(p.numel() for p in self.task.parameters() if p.requires_grad):,} trainable")
        self.log.info(f"world size {info.world_size} on {self.device}; batch {self.batch_size} per process x "
                      f"{info.world_size} processes x {self.accum} accumulation = global batch {self.global_batch}")
        if cfg.sched.warmup_epochs >= cfg.train.epochs:
            self.log.warning(f"sched.warmup_epochs ({cfg.sched.warmup_epochs}) >= train.epochs ({cfg.train.epochs}): "
                             f"the lr never leaves warm-up")
        self.log.info(f"lr {self.lr:.3e} (peak), {self.iters_per_epoch} iterations / {self.updates_per_epoch} "
                      f"updates per epoch, amp {self.amp_dtype or 'none'}, output {self.output_dir}")

    def fit(self) -> dict[str, Any]:
        """Train (continuing a checkpoint when one applies), evaluate every ``eval_interval`` epochs, save, summarise.

        With ``train.eval_only`` (or no training loader) it evaluates instead: see :meth:`evaluate_only`.
        """
        t = self.cfg.train
        if t.eval_only or self.train_loader is None:
            return self.evaluate_only()
        lock = RunLock(self.output_dir)
        if self.info.is_main:
            lock.acquire()  # before anything is read or written: a second run into the folder fails here
            for path in remove_stale_temps(self.output_dir):
                self.log.warning(f"removed {path}, left by an interrupted write")
        try:
            with self.signals:
                return self._fit()
        finally:
            lock.release()

    def _fit(self) -> dict[str, Any]:
        cfg, t = self.cfg, self.cfg.train
        resume = resume_path(cfg)
        if resume:
            self.load_state_dict(_load_or_name_alternative(resume), resume)
            where = f"epoch {self.epoch}" + (f" + {self._resume['iter']} iterations" if self._resume else "")
            self.log.info(f"resumed from {resume} at {where}, update {self.num_updates}")
            if self.epoch >= t.epochs:
                self.log.info(f"{self.output_dir} is already complete: {self.epoch} epochs; raise train.epochs to "
                              f"continue (nothing was changed)")
                return _read_json(os.path.join(self.output_dir, "results.json"))
        self.scheduler.step_update(num_updates=self.num_updates)
        if self.info.is_main:
            atomic_write_text(os.path.join(self.output_dir, "config.yaml"), dump_config(cfg))
        self.runlog = RunLogger(self.output_dir, self.info.is_main, t.tensorboard)
        self._describe()
        start = time.perf_counter()
        try:
            while self.epoch < t.epochs:
                epoch = self.epoch
                row = self.train_one_epoch(epoch)
                self.epoch = epoch + 1
                metrics: dict[str, float] = {}
                if self.epoch % t.eval_interval == 0 or self.epoch == t.epochs:
                    metrics = self._run_eval()
                is_best = self._update_best(metrics, self.epoch)
                for k, v in metrics.items():  # an eval key that a training key already uses gets a val_ prefix
                    row[f"val_{k}" if k in row else k] = v
                self.history.append({"epoch": self.epoch, **row})
                self.runlog.log("epoch", self.epoch, row)
                self.log.info(f"epoch {self.epoch}/{t.epochs} " + " ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items() if k != "epoch"))
                signum = self.signals.requested(self.device)
                if self.epoch % t.save_interval == 0 or self.epoch == t.epochs or is_best or signum:
                    self.save(is_best)
                if signum and self.epoch < t.epochs:
                    raise self._preempted(signum, f"the end of epoch {self.epoch}")
        finally:
            self.runlog.close()
        return self._finish(time.perf_counter() - start)

    def evaluate_only(self) -> dict[str, Any]:
        """Evaluate the run's best.pth (else last.pth, or train.resume; else the initial weights) and write
        ``eval_results.json`` naming the checkpoint and the data; the training records are not touched."""
        ckpt = eval_checkpoint(self.cfg)
        if ckpt:
            self.load_weights(load_checkpoint(ckpt), ckpt)
        data = {k: v for k, v in vars(getattr(self.cfg, "data", object())).items()
                if k in ("dataset", "root", "root_val", "val_split", "ann_val", "ann_test")}
        self.log.info(f"evaluating {ckpt or 'the initial weights (no checkpoint in ' + self.output_dir + ')'} "
                      f"on {data or 'the validation data'}")
        start = time.perf_counter()
        metrics = self._run_eval()
        result = {"checkpoint": ckpt, "epoch": self.epoch, "data": data, "metrics": metrics,
                  "time_s": time.perf_counter() - start}
        self.log.info(f"evaluation: {self.task.describe(metrics) if metrics else 'no metrics'}")
        if self.info.is_main:
            write_json(os.path.join(self.output_dir, "eval_results.json"), result)
        return result

    def _finish(self, elapsed: float) -> dict[str, Any]:
        results = {
            "name": self.cfg.name, "model": self.cfg.model.name, "epochs": self.epoch,
            "global_batch": self.global_batch, "world_size": self.info.world_size, "time_s": elapsed,
            "params": sum(p.numel() for p in self.task.backbone.parameters()),
            "best": self.best, "best_ema": self.best_ema,
            "final": self.history[-1] if self.history else {},
        }
        if self.best:
            msg = f"best {self.task.describe(self.best)} at epoch {self.best.get('epoch')}"
            if self.best_ema:
                msg += f"; EMA best {self.task.describe(self.best_ema)}"
        else:
            msg = "no evaluation metrics"
        self.log.info(f"done in {elapsed:.1f}s: {msg}")
        if self.info.is_main:
            write_json(os.path.join(self.output_dir, "results.json"), results)
            if self.cfg.train.curves and os.environ.get("SWIN_SUITE_CURVES", "1") != "0":
                self._draw_curves()
        return results

    def _draw_curves(self) -> None:
        """curves.png next to the run (loss, lr, the task's best metric per epoch); a failed picture is a warning."""
        from core.tools.plot import plot_runs
        try:
            out = plot_runs([self.output_dir], os.path.join(self.output_dir, "curves.png"), self.task.best_metric)
            self.log.info(f"curves: {out}")
        except Exception as e:  # noqa: BLE001 - a picture must not fail a finished run
            self.log.warning(f"curves.png not drawn: {type(e).__name__}: {e}")


def _check_task_state(task: Task, saved: Mapping[str, torch.Tensor], source: str) -> None:
    """The task's own state (outside the backbone) must match key for key and shape for shape."""
    own = task.task_state()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = [f"{k}: checkpoint {tuple(saved[k].shape)} vs task {tuple(own[k].shape)}"
              for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{source}: the {type(task).__name__} state does not match (missing {missing[:10]}, "
                              f"unexpected {unexpected[:10]}, shapes {shapes[:10]})")


def _load_or_name_alternative(path: str) -> dict:
    """load_checkpoint, or a CheckpointError that names the readable checkpoints beside an unreadable one."""
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        folder = os.path.dirname(path)
        good = []
        for name in ("last.pth", "best.pth"):
            other = os.path.join(folder, name)
            if other != path and os.path.isfile(other):
                try:
                    good.append(f"{other} (epoch {load_checkpoint(other).get('epoch')})")
                except CheckpointError:
                    pass
        hint = f"; readable: {', '.join(good)}: continue from it with --resume" if good else ""
        raise CheckpointError(f"{e}{hint}") from None


def _read_json(path: str) -> dict[str, Any]:
    import json
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
