"""A run's checkpoint state: what a training checkpoint holds, writing it (best.pth, last.pth) and continuing it
exactly, inside an epoch too (:class:`MidEpoch`: the epoch's data is replayed from its starting RNG)."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import torch

from . import distributed as du
from . import sharding
from .checkpoint import (
    CheckpointError,
    capture_rng_state,
    check_state_dict,
    load_checkpoint,
    load_model_state,
    restore_rng_state,
)
from .config import config_to_dict
from .device import seed_everything
from .files import atomic_copy, atomic_save, free_space
from .rundir import mark_latest
from .task import Task

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["MidEpoch", "state_dict", "save", "restore", "load_weights", "load_or_name_alternative", "read_json"]


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


def state_dict(tr: Trainer, mid: MidEpoch | None = None, sharded: bool = False) -> dict[str, Any]:
    """Everything needed to continue the run exactly (RNG states of all ranks included); ``sharded``: without
    the weights and optimizer state (:func:`core.engine.sharding.save_sharded` writes those)."""
    rng = du.all_gather_object(capture_rng_state())
    ema = tr.ema.module if tr.ema is not None else None
    weights = {} if sharded else {
        "model": tr.task.backbone_state(),
        "task": tr.task.task_state(),
        "optimizer": tr.optimizer.state_dict(),
    }
    return {
        **weights,
        "strategy": "fsdp" if sharded else "ddp",
        "scheduler": tr.scheduler.state_dict(),
        "scaler": tr.scaler.state_dict() if tr.scaler is not None else None,
        "ema": ema.backbone_state() if ema is not None else None,
        "ema_task": ema.task_state() if ema is not None else None,
        "epoch": tr.epoch,
        "iteration": tr.num_updates,
        **tr.tracker.state_dict(),
        "rng": rng,
        "world_size": tr.info.world_size,
        "config": config_to_dict(tr.cfg),
        **(mid.state() if mid is not None else {}),
    }


def save(tr: Trainer, is_best: bool, mid: MidEpoch | None = None) -> str | None:
    """Write best.pth (when best) and then last.pth, atomically, on rank 0; all ranks must call (RNG gather).

    best.pth is complete before last.pth records it, and weights that are not finite are never written. Under
    ``train.strategy=fsdp`` the training state is the sharded folder last.dcp and best.pth holds the whole backbone.
    """
    bad = sharding.nonfinite_params(tr.task)
    if bad:
        raise FloatingPointError(f"the weights are not finite at epoch {tr.epoch + 1} ({bad[:3]}...); no "
                                 f"checkpoint was written (the last good one stays in {tr.output_dir})")
    if tr.fsdp:
        return _save_sharded(tr, is_best, mid)
    state = state_dict(tr, mid)
    if not tr.info.is_main:
        return None
    last, best = os.path.join(tr.output_dir, "last.pth"), os.path.join(tr.output_dir, "best.pth")
    try:
        if is_best:
            atomic_save(state, best)
            atomic_copy(best, last)
        else:
            atomic_save(state, last)
        mark_latest(tr.output_dir)
    except OSError as e:  # a WriteError names the reason and the free space
        reason = getattr(e, "reason", None) or e.strerror or str(e)
        raise CheckpointError(f"cannot write a checkpoint into {tr.output_dir}: {reason}; "
                              f"{free_space(tr.output_dir)} free there (the previous checkpoint there is "
                              f"intact)") from None
    return last


def _save_sharded(tr: Trainer, is_best: bool, mid: MidEpoch | None) -> str | None:
    """best.pth (the whole backbone, consolidated on rank 0), then the sharded last.dcp (all ranks)."""
    try:
        if is_best:
            model = sharding.full_backbone_state(tr.task, tr.task.backbone_attr + ".")
            if tr.info.is_main:
                atomic_save({"model": model, "epoch": tr.epoch, "iteration": tr.num_updates, "strategy": "fsdp",
                             "world_size": tr.info.world_size, "config": config_to_dict(tr.cfg),
                             **tr.tracker.state_dict()}, os.path.join(tr.output_dir, "best.pth"))
        state = state_dict(tr, mid, sharded=True)
        path = sharding.save_sharded(tr.task, tr.optimizer, state, tr.output_dir)
        if tr.info.is_main:
            mark_latest(tr.output_dir)
    except OSError as e:
        reason = getattr(e, "reason", None) or e.strerror or str(e)
        raise CheckpointError(f"cannot write a checkpoint into {tr.output_dir}: {reason}; "
                              f"{free_space(tr.output_dir)} free there (the previous checkpoint there is "
                              f"intact)") from None
    return path if tr.info.is_main else None


def restore(tr: Trainer, ckpt: Mapping[str, Any], source: str) -> MidEpoch | None:
    """Restore a :func:`state_dict` into the trainer; a mismatch raises CheckpointError before anything changes.
    Returns where to continue inside the interrupted epoch, if the checkpoint was written inside one."""
    _validate(tr, ckpt, source)
    if "config" in ckpt:
        changed = _changes(ckpt["config"], config_to_dict(tr.cfg))
        if changed:
            tr.log.warning(f"resuming {source} with changed settings: {'; '.join(changed)}; the lr schedule "
                           f"is rebuilt from this config at the resumed position")
    _restore_weights(tr, ckpt, source)
    tr.epoch = int(ckpt["epoch"])
    inside = int(ckpt.get("iter_in_epoch", 0))
    rng = ckpt.get("rng")
    same_world = isinstance(rng, list) and len(rng) == tr.info.world_size
    old_world = len(rng) if isinstance(rng, list) else int(ckpt.get("world_size", tr.info.world_size))
    old_batch = int(((ckpt.get("config") or {}).get("data") or {}).get("batch_size") or tr.batch_size)
    exact = same_world and old_batch == tr.batch_size
    mid = None
    if inside and exact and inside < tr.iters_per_epoch:
        mid = MidEpoch.from_checkpoint(ckpt, tr.info.rank)  # replayed by the epoch loop, which restores the RNG
    elif inside:
        mid = _map_position(tr, inside, old_world, old_batch, source)
    # the schedule's position from epochs done and the position inside the epoch, at this run's batch geometry
    tr.num_updates = tr.epoch * tr.updates_per_epoch + math.ceil((mid.iteration if mid else 0) / tr.accum)
    mapped = mid is not None and mid.rng is None
    if mapped:  # one line says it all
        tr.log.warning(f"{mid.note}; the schedule continues at update {tr.num_updates} of {tr.total_updates}"
                       + ("" if same_world else "; RNG streams reseeded (not bit-identical to an uninterrupted run)")
                       + f" ({source})")
    elif tr.num_updates != int(ckpt["iteration"]):
        tr.log.warning(f"{source}: {ckpt['iteration']} updates were made with another batch geometry; the "
                       f"schedule continues at update {tr.num_updates} of {tr.total_updates}")
    tr.tracker.load_state_dict(ckpt)
    _carry_best(tr, source)
    if same_world and (mid is None or mid.rng is None):  # else the epoch loop restores it after its replay
        restore_rng_state(rng[tr.info.rank])
    elif not same_world:
        if not mapped:
            tr.log.warning(f"{source} was saved with another world size; RNG streams reseeded, the run "
                           f"continues but is not bit-identical to an uninterrupted one")
        seed_everything(tr.cfg.train.seed + 1000 * tr.epoch + tr.info.rank)
    return mid


def _carry_best(tr: Trainer, source: str) -> None:
    """Continuing another folder's checkpoint: bring its best.pth along, so that the best figure the run carries
    has its weights in this folder too."""
    src = os.path.join(os.path.dirname(os.path.abspath(source.rstrip("/"))), "best.pth")
    dst = os.path.join(tr.output_dir, "best.pth")
    if not tr.info.is_main or os.path.exists(dst) or os.path.abspath(src) == os.path.abspath(dst):
        return
    if os.path.isfile(src):
        atomic_copy(src, dst)
        tr.log.info(f"copied {src} (the best so far) to {dst}")


def _map_position(tr: Trainer, inside: int, old_world: int, old_batch: int, source: str) -> MidEpoch:
    """Continue an epoch interrupted at another world size or batch size by samples seen.

    A DistributedSampler deals the epoch's one permutation round-robin, so after ``k`` iterations of ``B`` per
    process on ``W`` processes exactly its first ``k * B * W`` positions are done, at any ``W``. This run skips
    ``ceil(k * B * W / (B' * W'))`` iterations: no sample of the epoch is trained twice, at most ``B' * W' - 1``
    are left out of it. The global batch (and with it the lr, as ``optim`` scales it) is this run's config's.
    """
    seen = inside * old_batch * old_world
    per_iter = tr.batch_size * tr.info.world_size
    start = min(math.ceil(seen / per_iter), tr.iters_per_epoch)
    mid = MidEpoch(start, None, {}, [], None, first=start)
    mid.note = (f"world size {old_world} -> {tr.info.world_size}, global batch {old_batch * old_world * tr.accum} -> "
                f"{tr.global_batch}: epoch {tr.epoch + 1} was interrupted after {seen} samples ({inside} iterations "
                f"of {old_batch} x {old_world}) and continues at iteration {start + 1} of {tr.iters_per_epoch} "
                f"({start * per_iter - seen} samples of it left out, none trained twice)")
    return mid


def _validate(tr: Trainer, ckpt: Mapping[str, Any], source: str) -> None:
    if "sharded" in ckpt:  # the keys and shapes are checked against the shards' metadata when they load
        return
    missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "iteration") if k not in ckpt]
    if missing:
        raise CheckpointError(f"{source} is not a training checkpoint (missing {missing}); "
                              f"use model.pretrained to load weights only")
    try:
        check_state_dict(tr.task.backbone, ckpt["model"], f"resume file {source}")
        check_task_state(tr.task, ckpt.get("task") or {}, f"resume file {source}")
    except CheckpointError as e:
        raise CheckpointError(f"{e}\n  (that checkpoint is another model's run: give this run another "
                              f"--output-dir, or continue it with the model settings it was started with)") from None
    if tr.ema is not None and ckpt.get("ema") is not None:
        check_state_dict(tr.ema.module.backbone, ckpt["ema"], f"EMA weights in {source}")
    saved_groups = ckpt["optimizer"].get("param_groups", [])
    if len(saved_groups) != len(tr.optimizer.param_groups) or any(
            len(a["params"]) != len(b["params"]) for a, b in zip(saved_groups, tr.optimizer.param_groups)):
        raise CheckpointError(
            f"optimizer state in {source} has parameter groups of sizes "
            f"{[len(g['params']) for g in saved_groups]}, this run has "
            f"{[len(g['params']) for g in tr.optimizer.param_groups]} (optim.* settings changed?)")


def _restore_weights(tr: Trainer, ckpt: Mapping[str, Any], source: str) -> None:
    """Task, optimizer (with this config's hyper-parameters), scaler and EMA."""
    fresh = [{k: v for k, v in g.items() if k != "params"} for g in tr.optimizer.param_groups]
    if "sharded" in ckpt:
        sharding.load_sharded(tr.task, tr.optimizer, ckpt["sharded"], source)
    else:
        tr.task.load_split_state(ckpt["model"], ckpt.get("task") or {})
        tr.optimizer.load_state_dict(ckpt["optimizer"])
    for group, hyper in zip(tr.optimizer.param_groups, fresh):  # this config's lr, wd, betas, scales
        group.update(hyper)
    if tr.scaler is not None and ckpt.get("scaler"):
        tr.scaler.load_state_dict(ckpt["scaler"])
    if tr.ema is not None:
        if ckpt.get("ema") is not None:
            tr.ema.module.load_split_state(ckpt["ema"], ckpt.get("ema_task") or tr.task.task_state())
        else:
            tr.log.warning(f"{source} has no EMA weights; EMA restarts from the model")
            tr.ema.module.load_state_dict(tr.task.state_dict())


def load_weights(tr: Trainer, ckpt: Mapping[str, Any], source: str) -> None:
    """Load only the backbone (and EMA) weights from a training checkpoint or a bare state dict."""
    sd = ckpt["model"] if "model" in ckpt and isinstance(ckpt["model"], Mapping) else ckpt
    check_state_dict(tr.task.backbone, sd, f"weights in {source}")
    if sharding.is_sharded(tr.task):
        sharding.load_full_backbone(tr.task, tr.task.backbone_attr + ".", sd)
    else:
        load_model_state(tr.task.backbone, sd, f"weights in {source}")
    if tr.ema is not None:
        ema = ckpt.get("ema") if isinstance(ckpt.get("ema"), Mapping) else None
        load_model_state(tr.ema.module.backbone, ema if ema is not None else sd, f"EMA weights in {source}")
    epoch = ckpt.get("epoch", 0)
    tr.epoch = epoch if isinstance(epoch, int) else 0


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


def load_or_name_alternative(path: str) -> dict:
    """load_checkpoint (or a sharded checkpoint's trainer state), or a CheckpointError that names the readable
    checkpoints beside an unreadable one."""
    if sharding.is_sharded_checkpoint(path):
        return sharding.read_sharded(path)
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


def read_json(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


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
