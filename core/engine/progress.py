"""One epoch's progress: the bar, the scalars of a log interval (read from the device once per interval), the
epoch's running sums, samples/s, the time the step waited for data and the ETA; rows go to metrics.jsonl (and
TensorBoard)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import torch
from tqdm import tqdm

from . import distributed as du
from .callbacks import Loop
from .device import amp_name
from .strategy import class_name

if TYPE_CHECKING:
    from .checkpointer import MidEpoch

__all__ = ["EpochProgress", "describe_run", "hms", "LOADER_BOUND"]

STEPS = "_steps"  # the running sums' count of the micro-batches they hold (empty and skipped ones are not counted)
LOADER_BOUND = 0.3  # an epoch that waited longer than this fraction for data gets a warning ...
LOADER_BOUND_MIN_S = 0.5  # ... if the waiting cost it at least this long (not a cached probe's sub-second epochs)


def hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class EpochProgress:
    """Progress of epoch ``epoch`` from iteration ``start`` (a mid-epoch resume brings its sums and window)."""

    def __init__(self, trainer: Loop, epoch: int, start: int, resume: MidEpoch | None = None) -> None:
        self.tr, self.epoch, self.start = trainer, epoch, start
        self.n = trainer.geo.iters_per_epoch
        self.sums: dict[str, float] = dict(resume.epoch_sums) if resume else {}
        self.first = resume.first if resume else 0  # the first iteration the sums count
        self.window = [{k: torch.tensor(v) for k, v in w.items()} for w in (resume.window if resume else [])]
        cfg = trainer.cfg
        self.iters_after = (cfg.train.epochs - epoch - 1) * self.n  # iterations of later epochs
        self.bar = tqdm(total=self.n, initial=start, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", dynamic_ncols=True,
                        mininterval=1.0, disable=not (trainer.info.is_main and cfg.train.progress))
        self.t0 = self.t_log = time.perf_counter()
        self.wait = self.wait_log = 0.0  # seconds spent waiting for the loader: the epoch's, this interval's

    def fetch(self, batches: Iterator) -> Any:
        """The next batch, timing how long the step waited for it."""
        t = time.perf_counter()
        batch = next(batches)
        waited = time.perf_counter() - t
        self.wait += waited
        self.wait_log += waited
        return batch

    def update(self, i: int, out: Mapping[str, Any] | None, grad_norm: torch.Tensor | None) -> None:
        """After iteration ``i``: keep its scalars (None: a skipped step), log at the interval's end."""
        if out is not None:
            self.window.append({k: (v.detach().float() if isinstance(v, torch.Tensor) else torch.tensor(float(v)))
                                for k, v in out.items()})
        self.bar.update(1)
        if ((i + 1) % self.tr.cfg.train.log_interval and i + 1 != self.n) or not self.window:
            return
        tr = self.tr
        row = self._read_window(i)
        for k, v in row.items():
            self.sums[k] = self.sums.get(k, 0.0) + v * len(self.window)
        self.sums[STEPS] = self.sums.get(STEPS, 0.0) + len(self.window)  # the micro-batches the means are over
        now = time.perf_counter()
        sps = tr.geo.batch_size * tr.info.world_size * len(self.window) / max(now - self.t_log, 1e-9)
        row = {"epoch": self.epoch + 1, "iter": i + 1, "loss": row.pop("loss"), "lr": tr.lr_now(),
               "samples_per_s": sps, "data_wait": self.wait_log / max(now - self.t_log, 1e-9), **row}
        if grad_norm is not None:
            row["grad_norm"] = float(grad_norm)
        if tr.runlog is not None:
            tr.runlog.log("train", self.epoch * self.n + i + 1, row)
        eta = (now - self.t0) / (i + 1 - self.start) * (self.n - i - 1 + self.iters_after)
        self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{tr.lr_now():.2e}", sps=f"{sps:.1f}",
                             wait=f"{row['data_wait']:.0%}", eta=hms(eta), refresh=False)
        self.window, self.t_log, self.wait_log = [], now, 0.0

    def snapshot(self) -> tuple[dict[str, float], list[dict[str, float]]]:
        """The running sums and the unlogged window, as plain numbers (for a mid-epoch checkpoint)."""
        return dict(self.sums), [{k: float(v) for k, v in w.items()} for w in self.window]

    def close(self) -> dict[str, float]:
        """The epoch's mean of every logged scalar over all ranks, and its time."""
        self.bar.close()
        keys = sorted(self.sums)
        if self.tr.info.distributed:  # a rank whose batches were all empty has no keys of its own
            keys = sorted({k for ks in du.all_gather_object(keys) for k in ks})
        stats = torch.tensor([self.sums.get(k, 0.0) for k in keys] + [float(self.n - self.first)], dtype=torch.float64)
        if self.tr.info.distributed:
            stats = du.all_reduce_sum(stats.to(self.tr.device)).cpu()
        steps = float(stats[keys.index(STEPS)]) if STEPS in keys else float(stats[-1])  # (sums of older checkpoints)
        means = {k: float(stats[j] / max(1.0, steps)) for j, k in enumerate(keys) if k != STEPS}
        elapsed = time.perf_counter() - self.t0
        wait = {"data_wait_s": self.wait, "data_wait": self.wait / max(elapsed, 1e-9)}
        if wait["data_wait"] > LOADER_BOUND and self.wait >= LOADER_BOUND_MIN_S and self.n - self.start > 1:
            workers = getattr(getattr(self.tr.cfg, "data", None), "num_workers", "?")
            self.tr.log.warning(f"epoch {self.epoch + 1} waited {wait['data_wait']:.0%} of its time for data "
                                f"(loader-bound): raise data.num_workers (now {workers}), or store the videos "
                                f"smaller and with dense keyframes")
        return {"train_loss": means.pop("loss", float("nan")), "epoch_time_s": elapsed, **wait, **means}

    def _read_window(self, last: int) -> dict[str, float]:
        """Means of the interval's scalars: one device-to-host copy; a non-finite loss stops the run."""
        keys = list(self.window[0])
        values = torch.stack([torch.stack([w[k].reshape(()) for k in keys]) for w in self.window]).cpu().double()
        losses = values[:, keys.index("loss")]
        bad = (~torch.isfinite(losses)).nonzero()
        if len(bad):
            j = int(bad[0])
            kept = self.tr.strategy.kept(self.tr.output_dir)
            raise FloatingPointError(f"loss is {float(losses[j])} at epoch {self.epoch + 1} iteration "
                                     f"{last - len(self.window) + 2 + j}; stopping ({kept})")
        return dict(zip(keys, values.mean(0).tolist()))


def describe_run(tr: Loop) -> None:
    """The run's opening lines: the model's size, the processes and batch geometry, the lr and precision."""
    cfg, info, geo = tr.cfg, tr.info, tr.geo
    n_params = sum(p.numel() for p in tr.task.backbone.parameters())
    n_task = sum(p.numel() for p in tr.task.parameters()) - n_params
    extra = f" (+{n_task:,} in the {class_name(tr.task)})" if n_task else ""
    tr.log.info(f"model {cfg.model.name}: {n_params:,} parameters{extra}, "
                f"{sum(p.numel() for p in tr.task.parameters() if p.requires_grad):,} trainable")
    strategy = tr.strategy.describe()
    tr.log.info(f"world size {info.world_size} on {tr.device}{', ' + strategy if strategy else ''}; batch "
                f"{geo.batch_size} per process x {info.world_size} processes x {geo.accum} accumulation = "
                f"global batch {geo.global_batch}")
    if cfg.sched.warmup_epochs >= cfg.train.epochs and info.is_main:  # a recipe warning: said once
        tr.log.warning(f"sched.warmup_epochs ({cfg.sched.warmup_epochs}) >= train.epochs ({cfg.train.epochs}): "
                       f"the lr never leaves warm-up")
    tr.log.info(f"lr {tr.lr:.3e} (peak), {geo.iters_per_epoch} iterations / {geo.updates_per_epoch} "
                f"updates per epoch, amp {amp_name(tr.amp_dtype)} ({tr.amp_why}), output {tr.output_dir}")
