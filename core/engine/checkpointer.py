"""A run's training checkpoints: what they hold, writing them (best.pth, last.*) through the strategy, and
continuing them exactly, inside an epoch too (:class:`MidEpoch`: the epoch's data is replayed from its starting RNG).

    ckpt = Checkpointer(cfg, task, optimizer, scheduler, scaler, ema, strategy, output_dir, geometry, meta)
    ckpt.save(state, is_best)                  # state: the trainer's counters (:class:`TrainState`)
    state, mid = ckpt.restore(path, state)     # a new state; the trainer is never written from here

Every checkpoint carries what a tool needs without its run folder: the resolved ``config``, and ``meta`` (the
model name, the class names or label set, the input size).
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import torch

from . import distributed as du
from .checkpoint import CheckpointError, capture_rng_state, check_state_dict, load_checkpoint, restore_rng_state
from .config import Config, config_to_dict
from .device import seed_everything
from .evaluation import BestTracker
from .files import atomic_copy, free_space
from .rundir import mark_latest
from .strategy import Strategy, read_training
from .task import Task

__all__ = ["MidEpoch", "TrainState", "Geometry", "Checkpointer", "check_task_state", "checkpoint_meta"]


@dataclass
class MidEpoch:
    """A checkpoint written inside an epoch: the iteration, every rank's RNG at the epoch's start, the running
    sums and the unlogged window; ``rng`` is this rank's RNG at the checkpoint (when continuing it)."""
    iteration: int
    epoch_rng: Any
    epoch_sums: dict[str, float] = field(default_factory=dict)
    window: list[dict[str, float]] = field(default_factory=list)
    rng: Any = None
    first: int = 0  # the epoch's first iteration the sums count (> 0 after a resume at another world size)
    note: str = ""  # how a position mapped from another world size or batch size was found

    def state(self) -> dict[str, Any]:
        return {"iter_in_epoch": self.iteration, "epoch_rng": self.epoch_rng, "epoch_sums": self.epoch_sums,
                "window": self.window, "epoch_first": self.first}

    @classmethod
    def from_checkpoint(cls, ckpt: Mapping[str, Any], rank: int) -> MidEpoch:
        return cls(int(ckpt["iter_in_epoch"]), ckpt["epoch_rng"][rank], dict(ckpt.get("epoch_sums", {})),
                   list(ckpt.get("window", [])), ckpt["rng"][rank], int(ckpt.get("epoch_first", 0)))


@dataclass
class TrainState:
    """The trainer's counters: epochs done, optimizer updates, steps skipped as non-finite, the best epoch."""
    best: BestTracker
    epoch: int = 0
    updates: int = 0
    skipped: int = 0


@dataclass(frozen=True)
class Geometry:
    """The batch geometry of a run: per-process batch, processes, accumulation, iterations per epoch, epochs."""
    batch_size: int
    world_size: int
    accum: int
    iters_per_epoch: int
    epochs: int

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size * self.accum

    @property
    def updates_per_epoch(self) -> int:
        return max(1, math.ceil(self.iters_per_epoch / self.accum))

    @property
    def total_updates(self) -> int:
        return self.epochs * self.updates_per_epoch


def checkpoint_meta(cfg: Config, task: Task) -> dict[str, Any]:
    """What a tool needs of a lone checkpoint: the model name, class names (or a label set's name), input size."""
    d = getattr(cfg, "data", None)
    side = getattr(d, "crop_size", None) or getattr(d, "img_size", None)
    video = cfg.model.name.startswith("video_")
    size = [] if side is None else ([int(getattr(d, "clip_len", 1)), side, side] if video else [side, side])
    classes = getattr(task, "classes", None)
    return {"model": cfg.model.name, "classes": list(classes) if classes else None, "input_size": size}


class Checkpointer:
    """Writes and restores the training state of the objects it is given; the counters go in and out as
    :class:`TrainState`."""

    def __init__(self, cfg: Config, task: Task, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
                 ema: Any, strategy: Strategy, output_dir: str, geometry: Geometry,
                 meta: Mapping[str, Any] | None = None) -> None:
        self.cfg, self.task, self.optimizer, self.scheduler, self.scaler, self.ema = (cfg, task, optimizer, scheduler,
                                                                                      scaler, ema)
        self.strategy, self.output_dir, self.geo = strategy, output_dir, geometry
        self.meta = dict(meta or {})
        self.info = strategy.info
        self.log = logging.getLogger("swin")

    # -------------------------------------------------------------------------------- writing
    def _state(self, state: TrainState, mid: MidEpoch | None) -> dict[str, Any]:
        """Everything but the weights and optimizer state (the strategy adds those): all ranks call (RNG gather)."""
        ema = self.ema.module if self.ema is not None else None
        return {
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "ema": ema.backbone_state() if ema is not None else None,
            "ema_task": ema.task_state() if ema is not None else None,
            "epoch": state.epoch,
            "iteration": state.updates,
            "nonfinite_skipped": state.skipped,
            **state.best.state_dict(),
            "rng": du.all_gather_object(capture_rng_state()),
            "world_size": self.info.world_size,
            "config": config_to_dict(self.cfg),
            "meta": self.meta,
            **(mid.state() if mid is not None else {}),
        }

    def save(self, state: TrainState, is_best: bool, mid: MidEpoch | None = None) -> str | None:
        """Write best.pth (when best) and then the last checkpoint, atomically (all ranks call); its path on rank 0.

        best.pth is complete before the last checkpoint records it; weights that are not finite are never written.
        """
        bad = self.strategy.nonfinite_params(self.task)
        if bad:
            raise FloatingPointError(f"the weights are not finite at epoch {state.epoch + 1} ({bad[:3]}...); no "
                                     f"checkpoint was written ({self.strategy.kept(self.output_dir)})")
        before = self.strategy.kept(self.output_dir)
        try:
            path = self.strategy.save(self.task, self.optimizer, self._state(state, mid), self.output_dir, is_best)
            if self.info.is_main:
                mark_latest(self.output_dir)
        except OSError as e:  # a WriteError names the reason and the free space
            reason = getattr(e, "reason", None) or e.strerror or str(e)
            raise CheckpointError(f"cannot write a checkpoint into {self.output_dir}: {reason}; "
                                  f"{free_space(self.output_dir)} free there ({before})") from None
        return path

    # -------------------------------------------------------------------------------- continuing
    def restore(self, source: str, state: TrainState) -> tuple[TrainState, MidEpoch | None]:
        """The counters of ``source`` with its weights, optimizer, scheduler, scaler, EMA and RNG restored (a
        mismatch raises CheckpointError before anything changes), and where to continue inside its epoch."""
        ckpt = read_training(source)
        self._validate(ckpt, source)
        if "config" in ckpt:
            changed = _changes(ckpt["config"], config_to_dict(self.cfg))
            if changed:
                self.log.warning(f"resuming {source} with changed settings: {'; '.join(changed)}; the lr schedule "
                                 f"is rebuilt from this config at the resumed position")
        self._restore_weights(ckpt, source)
        geo = self.geo
        epoch = int(ckpt["epoch"])
        inside = int(ckpt.get("iter_in_epoch", 0))
        rng = ckpt.get("rng")
        same_world = isinstance(rng, list) and len(rng) == self.info.world_size
        old_world = len(rng) if isinstance(rng, list) else int(ckpt.get("world_size", self.info.world_size))
        old_batch = int(((ckpt.get("config") or {}).get("data") or {}).get("batch_size") or geo.batch_size)
        mid = None
        if inside and same_world and old_batch == geo.batch_size and inside < geo.iters_per_epoch:
            mid = MidEpoch.from_checkpoint(ckpt, self.info.rank)  # replayed by the epoch loop, which restores the RNG
        elif inside:
            mid = self._map_position(epoch, inside, old_world, old_batch)
        # the schedule's position from epochs done and the position inside the epoch, at this run's batch geometry
        updates = epoch * geo.updates_per_epoch + math.ceil((mid.iteration if mid else 0) / geo.accum)
        mapped = mid is not None and mid.rng is None
        if mapped:  # one line says it all
            self.log.warning(f"{mid.note}; the schedule continues at update {updates} of {geo.total_updates}"
                             + ("" if same_world else "; RNG streams reseeded (not bit-identical to an "
                                                      "uninterrupted run)") + f" ({source})")
        elif updates != int(ckpt["iteration"]):
            self.log.warning(f"{source}: {ckpt['iteration']} updates were made with another batch geometry; the "
                             f"schedule continues at update {updates} of {geo.total_updates}")
        best = BestTracker(state.best.key)
        best.load_state_dict(ckpt)
        self._carry_best(source)
        if same_world and (mid is None or mid.rng is None):  # else the epoch loop restores it after its replay
            restore_rng_state(rng[self.info.rank])
        elif not same_world:
            if not mapped:
                self.log.warning(f"{source} was saved with another world size; RNG streams reseeded, the run "
                                 f"continues but is not bit-identical to an uninterrupted one")
            seed_everything(self.cfg.train.seed + 1000 * epoch + self.info.rank)
        return replace(state, best=best, epoch=epoch, updates=updates,
                       skipped=int(ckpt.get("nonfinite_skipped", state.skipped))), mid

    def load_weights(self, source: str) -> int:
        """Load only the backbone (and EMA) weights of a training checkpoint or a bare state dict; its epoch."""
        ckpt = load_checkpoint(source)
        sd = ckpt["model"] if "model" in ckpt and isinstance(ckpt["model"], Mapping) else ckpt
        self.strategy.load_backbone(self.task, sd, f"weights in {source}")
        if self.ema is not None:
            ema = ckpt.get("ema") if isinstance(ckpt.get("ema"), Mapping) else None
            from .checkpoint import load_model_state
            load_model_state(self.ema.module.backbone, ema if ema is not None else sd, f"EMA weights in {source}")
        epoch = ckpt.get("epoch", 0)
        return epoch if isinstance(epoch, int) else 0

    def _carry_best(self, source: str) -> None:
        """Continuing another folder's checkpoint: bring its best.pth along, so that the best figure the run carries
        has its weights in this folder too."""
        src = os.path.join(os.path.dirname(os.path.abspath(source.rstrip("/"))), "best.pth")
        dst = os.path.join(self.output_dir, "best.pth")
        if not self.info.is_main or os.path.exists(dst) or os.path.abspath(src) == os.path.abspath(dst):
            return
        if os.path.isfile(src):
            atomic_copy(src, dst)
            self.log.info(f"copied {src} (the best so far) to {dst}")

    def _map_position(self, epoch: int, inside: int, old_world: int, old_batch: int) -> MidEpoch:
        """Continue an epoch interrupted at another world size or batch size by samples seen.

        A DistributedSampler deals the epoch's one permutation round-robin, so after ``k`` iterations of ``B`` per
        process on ``W`` processes exactly its first ``k * B * W`` positions are done, at any ``W``. This run skips
        ``ceil(k * B * W / (B' * W'))`` iterations: no sample of the epoch is trained twice, at most ``B' * W' - 1``
        are left out of it. The global batch (and with it the lr, as ``optim`` scales it) is this run's config's.
        """
        geo = self.geo
        seen = inside * old_batch * old_world
        per_iter = geo.batch_size * geo.world_size
        start = min(math.ceil(seen / per_iter), geo.iters_per_epoch)
        mid = MidEpoch(start, None, {}, [], None, first=start)
        mid.note = (f"world size {old_world} -> {geo.world_size}, global batch {old_batch * old_world * geo.accum} -> "
                    f"{geo.global_batch}: epoch {epoch + 1} was interrupted after {seen} samples ({inside} "
                    f"iterations of {old_batch} x {old_world}) and continues at iteration {start + 1} of "
                    f"{geo.iters_per_epoch} ({start * per_iter - seen} samples of it left out, none trained twice)")
        return mid

    def _validate(self, ckpt: Mapping[str, Any], source: str) -> None:
        if "sharded" in ckpt:  # the keys and shapes are checked against the shards' metadata when they load
            return
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iteration") if k not in ckpt]
        if missing:
            raise CheckpointError(f"{source} is not a training checkpoint (missing {missing}); "
                                  f"use model.pretrained to load weights only")
        try:
            check_state_dict(self.task.backbone, ckpt["model"], f"resume file {source}")
            check_task_state(self.task, ckpt.get("task") or {}, f"resume file {source}")
        except CheckpointError as e:
            raise CheckpointError(f"{e}\n  (that checkpoint is another model's run: give this run another "
                                  f"--output-dir, or continue it with the model settings it was started with)") from None
        if self.ema is not None and ckpt.get("ema") is not None:
            check_state_dict(self.ema.module.backbone, ckpt["ema"], f"EMA weights in {source}")
        saved_groups = ckpt["optimizer"].get("param_groups", [])
        groups = self.optimizer.param_groups
        if len(saved_groups) != len(groups) or any(len(a["params"]) != len(b["params"])
                                                   for a, b in zip(saved_groups, groups)):
            raise CheckpointError(
                f"optimizer state in {source} has parameter groups of sizes "
                f"{[len(g['params']) for g in saved_groups]}, this run has "
                f"{[len(g['params']) for g in groups]} (optim.* settings changed?)")

    def _restore_weights(self, ckpt: Mapping[str, Any], source: str) -> None:
        """Task, optimizer (with this config's hyper-parameters), scaler and EMA."""
        fresh = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        self.strategy.load(self.task, self.optimizer, ckpt, source)
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


def check_task_state(task: Task, saved: Mapping[str, torch.Tensor], source: str) -> None:
    """The task's own state (outside the backbone) must match key for key and shape for shape."""
    own = task.task_state()
    missing = sorted(set(own) - set(saved))
    unexpected = sorted(set(saved) - set(own))
    shapes = [f"{k}: checkpoint {tuple(saved[k].shape)} vs task {tuple(own[k].shape)}"
              for k in own if k in saved and tuple(saved[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{source}: the {type(task).__name__} state does not match (missing {missing[:10]}, "
                              f"unexpected {unexpected[:10]}, shapes {shapes[:10]})")


_IGNORED_CHANGES = ("name", "train.output_dir", "train.resume", "train.progress", "train.tensorboard",
                    "train.eval_only", "train.device")


def _changes(old: dict, new: dict) -> list[str]:
    """``key: old -> new`` for the settings that differ between a checkpoint's config and this run's."""
    return [f"{k}: {_lookup(old, k)!r} -> {_lookup(new, k)!r}" for k in _flat_diff(old, new)
            if not k.startswith(_IGNORED_CHANGES)]


def _flat_diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            out += _flat_diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [prefix.rstrip(".")] if a != b else []


def _lookup(d: Any, key: str) -> Any:
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d
