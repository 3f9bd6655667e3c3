"""The shared training engine: one :class:`Trainer` for every method (classification, video, pretraining).

A method supplies a model, loaders and either a loss (``loss_fn(outputs, targets)``) or a whole step::

    trainer = Trainer(cfg, model, train_loader, val_loader, loss_fn=loss)            # classification
    trainer = Trainer(cfg, model, train_loader, None, train_step=my_step)             # pretraining, no eval
    results = trainer.fit()

``train_step(trainer, batch) -> loss`` or ``(loss, {"name": scalar, ...})`` runs under autocast with the batch
already on the device and calls ``trainer.train_model`` (the DDP / compiled wrapper); the engine does backward,
accumulation, clipping, the optimizer / scheduler / EMA updates, logging and checkpoints. ``evaluate_fn(trainer, model) -> {"top1": ...}`` replaces evaluation
(the key ``best_metric``, default ``top1``, picks best.pth; an eval key equal to a training-row key is logged
as ``val_<key>``). Subclassing and overriding ``train_step`` /
``evaluate`` works the same way. :func:`predict` returns per-sample outputs of a whole (sharded) dataset in
dataset order on every rank, for multi-view aggregation.
"""
from __future__ import annotations

import contextlib
import math
import os
import random
import time
from typing import Any, Callable, Iterable, Mapping

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from . import distributed as du
from .checkpoint import (CheckpointError, atomic_copy, atomic_save, capture_rng_state, check_state_dict,
                         load_checkpoint, load_model_state, restore_rng_state)
from .config import Config, ConfigError, config_to_dict, dump_config
from .distributed import DistInfo
from .metrics import AverageMeter, RunLogger, setup_logging, topk_correct, write_json
from .optim import build_optimizer, build_scheduler, scaled_lrs

__all__ = ["Trainer", "fit", "run_output_dir", "resume_path",
           "seed_everything", "resolve_amp", "autocast", "to_device", "evaluate_classification",
           "predict", "build_mixup", "classification_loss"]

StepFn = Callable[["Trainer", Any], "torch.Tensor | tuple[torch.Tensor, Mapping[str, float]]"]
EvalFn = Callable[["Trainer", nn.Module], Mapping[str, float]]


# ----------------------------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """autocast dtype for ``train.amp``: auto = bf16 on CUDA, none on CPU."""
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """torch.autocast for ``dtype``, or a null context when None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors in a (nested) batch to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        out = [to_device(v, device) for v in batch]
        return type(batch)(out) if not hasattr(batch, "_fields") else type(batch)(*out)
    return batch


def _sampler_indices(loader: DataLoader) -> list[int]:
    """The dataset indices this rank's loader visits, in order."""
    return list(iter(loader.sampler))


@torch.no_grad()
def evaluate_classification(model: nn.Module, loader: DataLoader, device: torch.device,
                            amp_dtype: torch.dtype | None = None, topk: tuple[int, ...] = (1, 5),
                            progress: bool = False) -> dict[str, float]:
    """Top-k accuracy (%) and mean cross-entropy over the whole dataset, summed exactly across ranks.

    Targets < 0 (unreadable images) are left out. The loader's sampler must shard without padding
    (:class:`core.distributed.ShardedSampler`) for the result to equal a single-process run.
    """
    model.eval()
    stats = torch.zeros(len(topk) + 2, dtype=torch.float64)  # correct@k..., loss_sum, count
    for x, y in tqdm(loader, desc="eval", leave=False, disable=not (progress and du.is_main()), mininterval=1.0):
        x, y = to_device(x, device), to_device(y, device)
        keep = y >= 0
        if not bool(keep.all()):
            x, y = x[keep], y[keep]
        if y.numel() == 0:
            continue
        with autocast(device, amp_dtype):
            out = model(x)
        out = out.float()
        for i, c in enumerate(topk_correct(out, y, topk)):
            stats[i] += c
        stats[-2] += float(F.cross_entropy(out, y, reduction="sum"))
        stats[-1] += y.numel()
    stats = du.all_reduce_sum(stats.to(device)).cpu() if du.is_dist() else stats
    n = max(1.0, float(stats[-1]))
    res = {f"top{k}": 100.0 * float(stats[i]) / n for i, k in enumerate(topk)}
    res.update(loss=float(stats[-2]) / n, count=int(stats[-1]))
    return res


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None = None,
            forward: Callable[[nn.Module, Any], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, targets) for every dataset item, in dataset order, on every rank (float32, on CPU).

    ``forward(model, batch) -> outputs`` defaults to ``model(batch[0])``; targets are ``batch[1]``. Items a
    sharded sampler assigns to no rank are absent, so use :class:`core.distributed.ShardedSampler`.
    """
    model.eval()
    indices = _sampler_indices(loader)
    outs, tgts = [], []
    for batch in loader:
        batch = to_device(batch, device)
        with autocast(device, amp_dtype):
            out = forward(model, batch) if forward is not None else model(batch[0])
        outs.append(out.float().cpu())
        tgts.append(torch.as_tensor(batch[1]).cpu())
    out = torch.cat(outs) if outs else torch.empty(0)
    tgt = torch.cat(tgts) if tgts else torch.empty(0, dtype=torch.long)
    if len(indices) != len(out):
        raise RuntimeError(f"predict: sampler yielded {len(indices)} indices but the loader gave {len(out)} outputs")
    _, full_out, full_tgt = du.gather_by_index(torch.tensor(indices, dtype=torch.long), out, tgt)
    return full_out, full_tgt


def build_mixup(cfg: Config, num_classes: int) -> Callable | None:
    """timm Mixup/CutMix (with label smoothing folded in) when aug.mixup or aug.cutmix > 0, else None."""
    a = cfg.aug
    if not (a.mixup > 0 or a.cutmix > 0 or a.cutmix_minmax is not None) or a.mixup_prob == 0:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=a.mixup, cutmix_alpha=a.cutmix, cutmix_minmax=a.cutmix_minmax, prob=a.mixup_prob,
                 switch_prob=a.mixup_switch_prob, mode=a.mixup_mode, label_smoothing=a.label_smoothing,
                 num_classes=num_classes)


def classification_loss(cfg: Config, mixup_active: bool) -> nn.Module:
    """SoftTargetCrossEntropy with mixup, else label-smoothed (or plain) cross-entropy."""
    from timm.loss import SoftTargetCrossEntropy
    if mixup_active:
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=cfg.aug.label_smoothing)


def _unwrap(model: nn.Module) -> nn.Module:
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _flat_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")] if a != b else []


def run_output_dir(cfg: Config) -> str:
    """train.output_dir, or $SWIN_OUTPUT_ROOT (default outputs)/<config name>."""
    return cfg.train.output_dir or os.path.join(os.environ.get("SWIN_OUTPUT_ROOT", "outputs"), cfg.name or "run")


def resume_path(cfg: Config) -> str | None:
    """The checkpoint a run continues from: train.resume, else <output_dir>/last.pth when auto_resume is on."""
    t = cfg.train
    if t.resume:
        return t.resume
    last = os.path.join(run_output_dir(cfg), "last.pth")
    if os.path.isfile(last):
        if t.auto_resume:
            return last
        raise CheckpointError(f"{last} exists and train.auto_resume=false: resume it, or choose another "
                              f"train.output_dir (the engine never overwrites an earlier run's checkpoint)")
    return None


# ----------------------------------------------------------------------------------------------- trainer
class Trainer:
    """Runs ``cfg.train.epochs`` epochs of ``train_step`` with evaluation, logging and exact resume."""

    best_metric: str = "top1"

    def __init__(self, cfg: Config, model: nn.Module, train_loader: Iterable | None,
                 val_loader: DataLoader | None = None, *, info: DistInfo | None = None,
                 loss_fn: Callable[[Any, Any], torch.Tensor] | None = None, train_step: StepFn | None = None,
                 evaluate_fn: EvalFn | None = None, mixup_fn: Callable | None = None,
                 param_groups_fn: Callable[[nn.Module], list[dict]] | None = None,
                 extra_state: Mapping[str, Any] | None = None, best_metric: str | None = None) -> None:
        self.cfg = cfg
        self.info = info or du.init_distributed(cfg.train.device)
        self.device = self.info.device
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.loss_fn = loss_fn
        self._step_fn = train_step
        self._eval_fn = evaluate_fn
        self.mixup_fn = mixup_fn
        self.extra_state = dict(extra_state or {})
        if best_metric is not None:
            self.best_metric = best_metric
        t = cfg.train
        self.output_dir = run_output_dir(cfg)
        self.log = setup_logging(self.output_dir, self.info.is_main)
        self.amp_dtype = resolve_amp(t.amp, self.device)
        if t.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)

        # model, wrappers
        self.model = model.to(self.device)
        if t.grad_checkpointing:
            if not hasattr(self.model, "set_grad_checkpointing"):
                raise ConfigError(f"train.grad_checkpointing=true but {type(model).__name__} has no "
                                  f"set_grad_checkpointing()")
            self.model.set_grad_checkpointing(True)
        self.train_model: nn.Module = self.model
        self.ddp: DistributedDataParallel | None = None
        if self.info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DistributedDataParallel(self.model, device_ids=ids,
                                               find_unused_parameters=t.find_unused_parameters)
            self.train_model = self.ddp
        self.eval_model: nn.Module = self.model
        if t.compile:
            self.train_model = torch.compile(self.train_model)
            self.eval_model = torch.compile(self.model)
        self.ema = None
        if t.ema:
            from timm.utils import ModelEmaV3
            self.ema = ModelEmaV3(self.model, decay=t.ema_decay)

        # batch geometry, optimisation
        self.accum = cfg.optim.accum_steps
        self.iters_per_epoch = len(train_loader) if train_loader is not None else 0
        if t.max_iters_per_epoch:
            self.iters_per_epoch = min(self.iters_per_epoch, t.max_iters_per_epoch)
        self.updates_per_epoch = max(1, math.ceil(self.iters_per_epoch / self.accum))
        self.global_batch = cfg.data.batch_size * self.info.world_size * self.accum
        self.lr, warmup_lr, min_lr = scaled_lrs(cfg, self.global_batch)
        self.optimizer = build_optimizer(cfg, self.model, self.lr, param_groups_fn)
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

    # -------------------------------------------------------------------------------- overridable
    def train_step(self, batch: Any) -> torch.Tensor | tuple[torch.Tensor, Mapping[str, float]]:
        """Loss of one micro-batch (runs under autocast, batch on device)."""
        if self._step_fn is not None:
            return self._step_fn(self, batch)
        if self.loss_fn is None:
            raise ValueError("Trainer needs loss_fn or train_step")
        x, y = batch[0], batch[1]
        if self.mixup_fn is not None:
            x, y = self.mixup_fn(x, y)
        return self.loss_fn(self.train_model(x), y)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics of ``model`` on the validation set ({} when there is none)."""
        if self._eval_fn is not None:
            return dict(self._eval_fn(self, model))
        if self.val_loader is None:
            return {}
        return evaluate_classification(model, self.val_loader, self.device, self.amp_dtype,
                                       progress=self.cfg.train.progress)

    # -------------------------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly (RNG states of all ranks included)."""
        rng = du.all_gather_object(capture_rng_state())
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": self.ema.module.state_dict() if self.ema is not None else None,
            "epoch": self.epoch,
            "iteration": self.num_updates,
            "best": dict(self.best),
            "best_ema": dict(self.best_ema),
            "rng": rng,
            "world_size": self.info.world_size,
            "config": config_to_dict(self.cfg),
            "extra": {k: v.state_dict() for k, v in self.extra_state.items()},
        }

    def load_state_dict(self, ckpt: Mapping[str, Any], source: str) -> None:
        """Restore a :meth:`state_dict`; a model mismatch raises CheckpointError before anything changes."""
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iteration") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{source} is not a training checkpoint (missing {missing}); "
                                  f"use model.pretrained to load weights only")
        check_state_dict(self.model, ckpt["model"], f"resume file {source}")
        if self.ema is not None and ckpt.get("ema") is not None:
            check_state_dict(self.ema.module, ckpt["ema"], f"EMA weights in {source}")
        saved_groups = ckpt["optimizer"].get("param_groups", [])
        if len(saved_groups) != len(self.optimizer.param_groups) or any(
                len(a["params"]) != len(b["params"]) for a, b in zip(saved_groups, self.optimizer.param_groups)):
            raise CheckpointError(
                f"optimizer state in {source} has parameter groups of sizes "
                f"{[len(g['params']) for g in saved_groups]}, this run has "
                f"{[len(g['params']) for g in self.optimizer.param_groups]} (optim.* settings changed?)")
        if "config" in ckpt:
            changed = [k for k in _flat_diff(ckpt["config"], config_to_dict(self.cfg))
                       if not k.startswith(("train.", "name"))]
            if changed:
                self.log.warning(f"resuming {source} with changed settings: {', '.join(changed)}")
        load_model_state(self.model, ckpt["model"], f"resume file {source}")
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        if self.ema is not None:
            if ckpt.get("ema") is not None:
                self.ema.module.load_state_dict(ckpt["ema"])
            else:
                self.log.warning(f"{source} has no EMA weights; EMA restarts from the model")
                self.ema.module.load_state_dict(self.model.state_dict())
        for k, obj in self.extra_state.items():
            if k in ckpt.get("extra", {}):
                obj.load_state_dict(ckpt["extra"][k])
        self.epoch = int(ckpt["epoch"])
        self.num_updates = int(ckpt["iteration"])
        self.best = dict(ckpt.get("best", {}))
        self.best_ema = dict(ckpt.get("best_ema", {}))
        rng = ckpt.get("rng")
        if isinstance(rng, list) and len(rng) == self.info.world_size:
            restore_rng_state(rng[self.info.rank])
        else:
            self.log.warning(f"{source} was saved with another world size; RNG streams reseeded, the run "
                             f"continues but is not bit-identical to an uninterrupted one")
            seed_everything(self.cfg.train.seed + 1000 * self.epoch + self.info.rank)

    def load_weights(self, ckpt: Mapping[str, Any], source: str) -> None:
        """Load only model (and EMA) weights from a training checkpoint or a bare state dict."""
        sd = ckpt["model"] if "model" in ckpt and isinstance(ckpt["model"], Mapping) else ckpt
        load_model_state(self.model, sd, f"weights in {source}")
        if self.ema is not None:
            ema = ckpt.get("ema") if isinstance(ckpt.get("ema"), Mapping) else None
            load_model_state(self.ema.module, ema if ema is not None else sd, f"EMA weights in {source}")
        epoch = ckpt.get("epoch", 0)
        self.epoch = epoch if isinstance(epoch, int) else 0

    def _resume_path(self) -> str | None:
        return resume_path(self.cfg)

    def save(self, is_best: bool) -> None:
        """Write last.pth (and best.pth) atomically on rank 0; all ranks must call (RNG gather)."""
        state = self.state_dict()
        if not self.info.is_main:
            return
        last = os.path.join(self.output_dir, "last.pth")
        atomic_save(state, last)
        if is_best:
            atomic_copy(last, os.path.join(self.output_dir, "best.pth"))

    # -------------------------------------------------------------------------------- loop
    def _lr(self) -> float:
        return max(g["lr"] for g in self.optimizer.param_groups)

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the training loader; returns mean loss and logged scalars."""
        cfg, model = self.cfg, self.train_model
        model.train()
        loader = self.train_loader
        if isinstance(getattr(loader, "sampler", None), DistributedSampler):
            loader.sampler.set_epoch(epoch)
        n = self.iters_per_epoch
        loss_m, extra_m = AverageMeter(), {}
        interval_loss, interval_n = 0.0, 0
        bs_global = cfg.data.batch_size * self.info.world_size
        bar = tqdm(total=n, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", dynamic_ncols=True, mininterval=1.0,
                   disable=not (self.info.is_main and cfg.train.progress))
        self.optimizer.zero_grad(set_to_none=True)
        t0 = t_log = time.perf_counter()
        iters_left_after = (cfg.train.epochs - epoch - 1) * n  # iterations of later epochs
        grad_norm = None
        for i, batch in enumerate(loader):
            if i >= n:
                break
            batch = to_device(batch, self.device)
            sync = (i + 1) % self.accum == 0 or i + 1 == n
            with self.ddp.no_sync() if (self.ddp is not None and not sync) else contextlib.nullcontext():
                with autocast(self.device, self.amp_dtype):
                    out = self.train_step(batch)
                loss, scalars = (out if isinstance(out, tuple) else (out, {}))
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):
                    raise FloatingPointError(f"loss is {loss_value} at epoch {epoch + 1} iteration {i + 1}; "
                                             f"stopping (the last checkpoint in {self.output_dir} is kept)")
                full = (n // self.accum) * self.accum
                scaled = loss / (self.accum if i < full else n - full)  # a shorter last group weighs the same
                if self.scaler is not None:
                    self.scaler.scale(scaled).backward()
                else:
                    scaled.backward()
            if sync:
                grad_norm = self._optimizer_step()
            loss_m.update(loss_value)
            interval_loss += loss_value
            interval_n += 1
            for k, v in scalars.items():
                extra_m.setdefault(k, AverageMeter()).update(float(v))
            bar.update(1)
            if (i + 1) % cfg.train.log_interval == 0 or i + 1 == n:
                now = time.perf_counter()
                sps = bs_global * interval_n / max(now - t_log, 1e-9)
                row = {"epoch": epoch + 1, "iter": i + 1, "loss": interval_loss / interval_n, "lr": self._lr(),
                       "samples_per_s": sps, **{k: m.val for k, m in extra_m.items()}}
                if grad_norm is not None:
                    row["grad_norm"] = grad_norm
                if self.runlog is not None:
                    self.runlog.log("train", epoch * n + i + 1, row)
                eta = (now - t0) / (i + 1) * (n - i - 1 + iters_left_after)
                bar.set_postfix(loss=f"{interval_loss / interval_n:.4f}", lr=f"{self._lr():.2e}",
                                sps=f"{sps:.1f}", eta=_hms(eta), refresh=False)
                interval_loss, interval_n, t_log = 0.0, 0, now
        bar.close()
        stats = torch.tensor([loss_m.sum, loss_m.count], dtype=torch.float64)
        if self.info.distributed:
            stats = du.all_reduce_sum(stats.to(self.device)).cpu()
        res = {"epoch": epoch + 1, "train_loss": float(stats[0] / max(1.0, float(stats[1]))), "lr": self._lr(),
               "epoch_time_s": time.perf_counter() - t0}
        res.update({k: m.avg for k, m in extra_m.items()})
        return res

    def _optimizer_step(self) -> float | None:
        """Unscale, clip, step, zero grads, advance scheduler and EMA; returns the grad norm if clipped."""
        clip = self.cfg.optim.clip_grad
        norm = None
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if clip > 0:
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.num_updates += 1
        self.scheduler.step_update(num_updates=self.num_updates)
        if self.ema is not None:
            self.ema.update(self.model, step=self.num_updates)
        return norm

    def _run_eval(self) -> dict[str, float]:
        metrics = self.evaluate(self.eval_model)
        if self.ema is not None:
            metrics.update({f"ema_{k}": v for k, v in self.evaluate(self.ema.module).items()})
        return metrics

    def _update_best(self, metrics: Mapping[str, float], epoch: int) -> bool:
        key = self.best_metric
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
        n_params = sum(p.numel() for p in self.model.parameters())
        n_train = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        self.log.info(f"model {cfg.model.name}: {n_params:,} parameters ({n_train:,} trainable)")
        self.log.info(f"world size {info.world_size} on {self.device}; batch {cfg.data.batch_size} per process x "
                      f"{info.world_size} processes x {self.accum} accumulation = global batch {self.global_batch}")
        if cfg.sched.warmup_epochs >= cfg.train.epochs:
            self.log.warning(f"sched.warmup_epochs ({cfg.sched.warmup_epochs}) >= train.epochs ({cfg.train.epochs}): "
                             f"the lr never leaves warm-up")
        self.log.info(f"lr {self.lr:.3e} (peak), {self.iters_per_epoch} iterations / {self.updates_per_epoch} "
                      f"updates per epoch, amp {self.amp_dtype or 'none'}, output {self.output_dir}")

    def fit(self) -> dict[str, Any]:
        """Train (resuming if a checkpoint applies), evaluate every ``eval_interval`` epochs, save, summarise."""
        cfg, t = self.cfg, self.cfg.train
        resume = self._resume_path()
        if resume and (t.eval_only or self.train_loader is None):
            self.load_weights(load_checkpoint(resume), resume)
            self.log.info(f"evaluating weights from {resume}")
        elif resume:
            self.load_state_dict(load_checkpoint(resume), resume)
            self.log.info(f"resumed from {resume} at epoch {self.epoch}, update {self.num_updates}")
        self.scheduler.step_update(num_updates=self.num_updates)
        if self.info.is_main:
            os.makedirs(self.output_dir, exist_ok=True)
            _write_text(os.path.join(self.output_dir, "config.yaml"), dump_config(cfg))
        self.runlog = RunLogger(self.output_dir, self.info.is_main, t.tensorboard)
        self._describe()
        start = time.perf_counter()
        try:
            if t.eval_only or self.train_loader is None:
                metrics = self._run_eval()
                self._update_best(metrics, self.epoch)
                self.runlog.log("eval", self.epoch, metrics)
                self.history.append({"epoch": self.epoch, **metrics})
            while self.epoch < t.epochs and not t.eval_only and self.train_loader is not None:
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
                skipped = getattr(getattr(self.train_loader, "dataset", None), "num_skipped", 0)
                if skipped:
                    self.log.warning(f"{skipped} unreadable training image(s) skipped so far (see warnings)")
                if self.epoch % t.save_interval == 0 or self.epoch == t.epochs or is_best:
                    self.save(is_best)
        finally:
            self.runlog.close()
        return self._finish(time.perf_counter() - start)

    def _finish(self, elapsed: float) -> dict[str, Any]:
        results = {
            "name": self.cfg.name, "model": self.cfg.model.name, "epochs": self.epoch,
            "global_batch": self.global_batch, "world_size": self.info.world_size, "time_s": elapsed,
            "params": sum(p.numel() for p in self.model.parameters()),
            "best": self.best, "best_ema": self.best_ema,
            "final": self.history[-1] if self.history else {},
        }
        if self.best:
            msg = (f"best top-1 {self.best.get('top1', float('nan')):.2f}% top-5 "
                   f"{self.best.get('top5', float('nan')):.2f}% at epoch {self.best.get('epoch')}")
            if self.best_ema:
                msg += f"; EMA best top-1 {self.best_ema.get('top1', float('nan')):.2f}%"
        else:
            msg = "no evaluation metrics"
        self.log.info(f"done in {elapsed:.1f}s: {msg}")
        if self.info.is_main:
            write_json(os.path.join(self.output_dir, "results.json"), results)
        return results


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def fit(cfg: Config, model: nn.Module, train_loader: Iterable | None, val_loader: DataLoader | None = None,
        **kwargs: Any) -> dict[str, Any]:
    """``Trainer(cfg, model, train_loader, val_loader, **kwargs).fit()``."""
    return Trainer(cfg, model, train_loader, val_loader, **kwargs).fit()
