"""How a run spreads over processes: one :class:`Strategy` object wraps the task, syncs gradients, gathers for
evaluation and writes, finds and reads the training checkpoint; the loop never names one.

    strategy = build_strategy(cfg.train, info, amp_dtype)   # DDP (also one process) or FSDP (core.engine.sharding)
    train_model = strategy.wrap(task)                        # what the loop calls
    with strategy.no_sync(sync): loss.backward()
    path = strategy.save(task, optimizer, state, output_dir, is_best)

``train.strategy`` names one of :data:`STRATEGIES`; a strategy refuses the settings it cannot run (with the reason)
before anything is built.
"""
from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import CheckpointError, load_checkpoint, load_model_state
from .config import ConfigError, TrainConfig
from .distributed import DistInfo
from .files import atomic_copy, atomic_save

__all__ = ["Strategy", "DDPStrategy", "STRATEGIES", "strategy_class", "build_strategy", "find_last", "read_training",
           "class_name"]


def class_name(module: nn.Module) -> str:
    """The module's own class name (fully_shard swaps in a subclass named ``FSDP<name>``)."""
    cls = type(module)
    return cls.__bases__[-1].__name__ if cls.__name__.startswith("FSDP") and cls.__bases__ else cls.__name__


class Strategy:
    """Single process or data parallel: the base every strategy refines."""

    name = "ddp"
    LAST = "last.pth"        # the training checkpoint a run of this strategy continues from
    MARKER = LAST            # the file whose presence (and time) says that checkpoint is complete
    unsupported: Mapping[str, str] = {}  # train.<flag> -> why this strategy cannot run with it

    def __init__(self, t: TrainConfig, info: DistInfo, amp_dtype: torch.dtype | None = None) -> None:
        self.t, self.info, self.amp_dtype = t, info, amp_dtype
        self.check(t)

    # -------------------------------------------------------------------------------- settings
    @classmethod
    def check(cls, t: TrainConfig) -> None:
        """ConfigError naming a setting this strategy cannot run and why."""
        for flag, why in cls.unsupported.items():
            if getattr(t, flag):
                raise ConfigError(f"train.strategy={cls.name} does not support train.{flag}=true ({why}); set "
                                  f"train.{flag}=false or train.strategy=ddp")

    def describe(self) -> str:
        """What the log says of the strategy beside the world size ('' for plain data parallel)."""
        return ""

    # -------------------------------------------------------------------------------- the loop
    def to_device(self, task: nn.Module) -> nn.Module:
        return task.to(self.info.device)

    def wrap(self, task: nn.Module) -> nn.Module:
        """The module the loop calls: DDP around the task when distributed, else the task."""
        if not self.info.distributed:
            return task
        ids = [self.info.device.index] if self.info.device.type == "cuda" else None
        return DistributedDataParallel(task, device_ids=ids, find_unused_parameters=self.t.find_unused_parameters,
                                       broadcast_buffers=getattr(task, "broadcast_buffers", True))

    def no_sync(self, model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        """Gradient accumulation: skip the gradient all-reduce of this backward when ``sync`` is False."""
        return model.no_sync() if isinstance(model, DistributedDataParallel) and not sync else contextlib.nullcontext()

    @contextlib.contextmanager
    def gathered(self, task: nn.Module) -> Iterator[None]:
        """Whole parameters on every rank for the block (evaluation)."""
        yield

    def full(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """A whole plain tensor (a gradient norm) of what this strategy computes."""
        return t

    def nonfinite_params(self, task: nn.Module) -> list[str]:
        """Names of the parameters holding a non-finite value."""
        return [n for n, p in task.named_parameters() if not torch.isfinite(p.detach()).all()]

    # -------------------------------------------------------------------------------- checkpoints
    @classmethod
    def find_last(cls, output_dir: str) -> str | None:
        """The training checkpoint of ``output_dir`` that this strategy continues, if there is one."""
        path = os.path.join(output_dir, cls.LAST)
        return path if os.path.isfile(path) else None

    @classmethod
    def kept(cls, output_dir: str) -> str:
        """What survives a stop: 'the last checkpoint X is kept' or 'no checkpoint was written'."""
        last = cls.find_last(output_dir)
        return f"the last checkpoint {last} is kept" if last else "no checkpoint was written"

    @classmethod
    def resume_point(cls, output_dir: str, auto_resume: bool) -> str | None:
        """The checkpoint a run into ``output_dir`` continues (None: a fresh start); another strategy's checkpoint
        there is a CheckpointError naming the strategy to continue it with."""
        for other in STRATEGIES:
            theirs = strategy_class(other).find_last(output_dir) if other != cls.name else None
            if theirs and not cls.find_last(output_dir):
                raise CheckpointError(f"{theirs} was written by a train.strategy={other} run; continue it with "
                                      f"train.strategy={other} (or --resume {theirs} to continue it under "
                                      f"{cls.name}), or choose another train.output_dir")
        last = cls.find_last(output_dir)
        if last and not auto_resume:
            raise CheckpointError(f"{last} exists and train.auto_resume=false: resume it, or choose another "
                                  f"train.output_dir (the engine never overwrites an earlier run's checkpoint)")
        return last

    def save(self, task: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any], output_dir: str,
             is_best: bool) -> str | None:
        """best.pth (when best) and then last.pth, atomically on rank 0 (all ranks call); returns last's path."""
        if not self.info.is_main:
            return None
        full = {"model": task.backbone_state(), "task": task.task_state(), "optimizer": optimizer.state_dict(),
                **state, "strategy": self.name}
        last, best = os.path.join(output_dir, self.LAST), os.path.join(output_dir, "best.pth")
        if is_best:
            atomic_save(full, best)
            atomic_copy(best, last)
        else:
            atomic_save(full, last)
        return last

    def load(self, task: Any, optimizer: torch.optim.Optimizer, ckpt: Mapping[str, Any], source: str) -> None:
        """Weights and optimizer state of a training checkpoint of any strategy (a sharded one at any world size)."""
        if "sharded" in ckpt:
            from .sharding import load_sharded
            load_sharded(task, optimizer, ckpt["sharded"], source)
        else:
            task.load_split_state(ckpt["model"], ckpt.get("task") or {})
            optimizer.load_state_dict(ckpt["optimizer"])

    def load_backbone(self, task: Any, state: Mapping[str, torch.Tensor], source: str) -> None:
        """Load a whole backbone state dict (a best.pth) into the task, strictly."""
        load_model_state(task.backbone, state, source)


class DDPStrategy(Strategy):
    """Replicate the model on every rank (DistributedDataParallel); one process needs no wrapper."""


STRATEGIES = ("ddp", "fsdp")


def strategy_class(name: str) -> type[Strategy]:
    if name == "ddp":
        return DDPStrategy
    if name == "fsdp":
        from .sharding import FSDPStrategy  # torch.distributed.fsdp only when asked for
        return FSDPStrategy
    raise ConfigError(f"train.strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def build_strategy(t: TrainConfig, info: DistInfo, amp_dtype: torch.dtype | None = None) -> Strategy:
    """The strategy ``train.strategy`` names (ConfigError for a setting it cannot run)."""
    return strategy_class(t.strategy)(t, info, amp_dtype)


def find_last(output_dir: str) -> str | None:
    """The training checkpoint in ``output_dir`` of any strategy (last.pth, else last.dcp / prev.dcp)."""
    for name in STRATEGIES:
        last = strategy_class(name).find_last(output_dir)
        if last:
            return last
    return None


def read_training(path: str) -> dict:
    """A training checkpoint's state: a file through ``load_checkpoint``, a sharded folder's trainer state (its
    weights are read by :meth:`Strategy.load`); an unreadable file names the readable checkpoints beside it."""
    if os.path.isdir(path):
        from .sharding import read_sharded
        return read_sharded(path)
    try:
        return load_checkpoint(path)
    except CheckpointError as e:
        good = []
        for name in ("last.pth", "best.pth"):
            other = os.path.join(os.path.dirname(path), name)
            if other != path and os.path.isfile(other):
                try:
                    good.append(f"{other} (epoch {load_checkpoint(other).get('epoch')})")
                except CheckpointError:
                    pass
        hint = f"; readable: {', '.join(good)}: continue from it with --resume" if good else ""
        raise CheckpointError(f"{e}{hint}") from None
