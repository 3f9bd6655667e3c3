"""Sharded training (``train.strategy=fsdp``): the FSDP strategy (FSDP2 wrapping, gathering for evaluation,
sharded checkpoints) behind :class:`core.engine.strategy.Strategy`.

    strategy = FSDPStrategy(cfg.train, info, amp_dtype)    # through core.engine.strategy.build_strategy
    strategy.wrap(task)                                     # every Swin block, then the task, with fully_shard
    strategy.save(task, optimizer, state, output_dir, ...)  # <output_dir>/last.dcp: torch.distributed.checkpoint

Each element of a ``blocks`` ModuleList (a Swin, Swin V2, Swin-MLP or Video Swin block; MoBY's momentum encoder's
too) is its own FSDP unit and the task is the root unit (patch embedding, mergings, norms, heads, decoders). Buffers
(MoBY's queues) stay replicated. At world size 1 nothing is sharded but checkpoints keep the sharded format.

A sharded checkpoint is a folder: the DCP shards and ``.metadata``, ``trainer.pt`` (schedule, progress, RNG of
every rank: what ``core.engine.checkpointer`` restores) and ``complete.json`` (every file and its size), written
last. It is written as ``last.dcp.<id>.tmp`` and renamed into place; the one it replaces becomes ``prev.dcp``, so a
crash at any point leaves a complete checkpoint and a folder without ``complete.json`` is never taken. best.pth
holds the whole backbone, consolidated on rank 0.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import warnings
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn

from . import distributed as du
from .checkpoint import CheckpointError, load_checkpoint
from .config import ConfigError, TrainConfig
from .distributed import DistInfo
from .files import atomic_save, atomic_write_text
from .strategy import Strategy

__all__ = ["FSDPStrategy", "LAST", "PREV", "MARKER", "mesh_shape", "shard_units", "shard_task", "is_sharded",
           "grad_sync", "gathered", "full_norm", "nonfinite_params", "find_sharded", "check_complete", "save_sharded",
           "read_sharded", "load_sharded", "read_full_state", "full_backbone_state", "load_full_backbone"]

LAST, PREV, MARKER, EXTRA = "last.dcp", "prev.dcp", "complete.json", "trainer.pt"


# ----------------------------------------------------------------------------------------------- wrapping
def mesh_shape(t: TrainConfig, world: int) -> tuple[int, ...]:
    """The device mesh of ``train.fsdp_mesh`` at ``world`` ranks: (world,) or (replicate, shard)."""
    shape = tuple(t.fsdp_mesh) or (world,)
    n = math.prod(shape)
    if n != world:
        raise ConfigError(f"train.fsdp_mesh = {list(shape)} has {n} ranks but the run has world size {world}: "
                          f"use [] (shard over all ranks) or sizes whose product is {world}")
    return shape


def shard_units(task: nn.Module) -> list[nn.Module]:
    """The modules wrapped one by one: every element of a ``blocks`` ModuleList (blocks do not nest)."""
    return [block for name, m in task.named_modules() if name.split(".")[-1] == "blocks"
            and isinstance(m, nn.ModuleList) for block in m]


def _check_shardable(task: nn.Module) -> list[nn.Module]:
    backbone = getattr(task, "backbone", task)
    units = shard_units(task)
    if not any(u is m for u in units for m in backbone.modules()):
        raise ConfigError(f"train.strategy=fsdp cannot shard {type(backbone).__name__}: it has no 'blocks' list of "
                          f"transformer blocks to wrap one by one (use train.strategy=ddp)")
    dtypes = {p.dtype for p in task.parameters()}
    if len(dtypes) > 1:
        raise ConfigError(f"train.strategy=fsdp needs one parameter dtype per model, {type(task).__name__} has "
                          f"{sorted(map(str, dtypes))}")
    return units


def shard_task(task: nn.Module, t: TrainConfig, info: DistInfo, amp_dtype: torch.dtype | None) -> nn.Module:
    """``fully_shard`` every block and then the task (in place; returns the task). World size 1: unchanged."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    shape = mesh_shape(t, info.world_size)
    units = _check_shardable(task)
    if info.world_size == 1:
        return task
    names = ("replicate", "shard") if len(shape) == 2 else ("shard",)
    mesh = init_device_mesh(info.device.type, shape, mesh_dim_names=names)
    kw: dict[str, Any] = {"mesh": mesh, "reshard_after_forward": t.fsdp_reshard_after_forward}
    if amp_dtype is not None:
        kw["mp_policy"] = MixedPrecisionPolicy(param_dtype=amp_dtype, reduce_dtype=torch.float32)
    if t.fsdp_cpu_offload and info.device.type == "cuda":
        kw["offload_policy"] = CPUOffloadPolicy()
    for unit in units:
        fully_shard(unit, **kw)
    fully_shard(task, **{**kw, "reshard_after_forward": False})  # the root's backward follows its forward at once
    return task


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule
    return isinstance(module, FSDPModule)


def _fsdp_modules(module: nn.Module) -> list[nn.Module]:
    from torch.distributed.fsdp import FSDPModule
    return [m for m in module.modules() if isinstance(m, FSDPModule)]


@contextlib.contextmanager
def grad_sync(module: nn.Module, sync: bool) -> Iterator[None]:
    """Reduce-scatter the gradients in this backward (True) or accumulate them unsharded (False)."""
    if is_sharded(module):
        module.set_requires_gradient_sync(sync)
    yield


@contextlib.contextmanager
def gathered(module: nn.Module, reshard_after_forward: bool = True) -> Iterator[None]:
    """Whole parameters on every rank for the block (evaluation: ranks may run different numbers of batches);
    afterwards the blocks reshard after each forward as ``reshard_after_forward`` says (the root never does)."""
    mods = _fsdp_modules(module)
    for m in mods:
        m.unshard()
        m.set_reshard_after_forward(False, recurse=False)
    try:
        yield
    finally:
        for m in mods:
            m.reshard()
            m.set_reshard_after_forward(reshard_after_forward and m is not module, recurse=False)


@contextlib.contextmanager
def _single_process_ok() -> Iterator[None]:
    """Without a process group DCP warns that it assumes a single process: it is one (world size 1)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*assuming the intent is to", category=UserWarning)
        yield


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def full_norm(norm: torch.Tensor | None) -> torch.Tensor | None:
    """A whole plain tensor of a DTensor (a gradient norm of sharded gradients, a sharded parameter), else as is."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def nonfinite_params(module: nn.Module) -> list[str]:
    """Names of parameters with a non-finite value on any rank (each rank checks its own shards)."""
    bad = [n for n, p in module.named_parameters() if not torch.isfinite(_local(p.detach())).all()]
    return sorted({n for names in du.all_gather_object(bad) for n in names}) if is_sharded(module) else bad


# ----------------------------------------------------------------------------------------------- checkpoints
def _complete_problem(path: str) -> str:
    """'' when ``path`` is a complete sharded checkpoint, else what is wrong with it."""
    marker = os.path.join(path, MARKER)
    if not os.path.isfile(marker):
        return f"{path} is incomplete (no {MARKER}: its writing was interrupted)"
    try:
        with open(marker) as f:
            files = json.load(f)["files"]
    except (OSError, ValueError, KeyError) as e:
        return f"{path}/{MARKER} is unreadable ({e})"
    missing = [n for n in files if not os.path.isfile(os.path.join(path, n))]
    if missing:
        return f"{path} is missing shard file(s) {', '.join(sorted(missing))}"
    short = [n for n, size in files.items() if os.path.getsize(os.path.join(path, n)) != size]
    if short:
        return f"{path} has truncated file(s) {', '.join(sorted(short))}"
    return ""


def find_sharded(output_dir: str) -> str | None:
    """The checkpoint a sharded run continues: last.dcp (or prev.dcp when a crash came between the renames)."""
    for name in (LAST, PREV):
        path = os.path.join(output_dir, name)
        if os.path.isdir(path):
            return path
    return None


def check_complete(path: str) -> None:
    """Raise CheckpointError naming what is missing, and the last complete checkpoint beside it, if any."""
    problem = _complete_problem(path)
    if not problem:
        return
    folder = os.path.dirname(os.path.abspath(path))
    good = [p for p in (os.path.join(folder, n) for n in (LAST, PREV))
            if os.path.abspath(p) != os.path.abspath(path) and os.path.isdir(p) and not _complete_problem(p)]
    hint = (f"; the last complete checkpoint is {good[0]} (epoch {_read_extra(good[0]).get('epoch')}): continue "
            f"from it with --resume {good[0]}" if good else "; no complete sharded checkpoint is left beside it")
    best = os.path.join(folder, "best.pth")
    if os.path.isfile(best):
        hint += f" ({best} holds the best weights)"
    raise CheckpointError(problem + hint)


def _read_extra(path: str) -> dict:
    return load_checkpoint(os.path.join(path, EXTRA))


def _fsync_tree(path: str) -> None:
    for name in os.listdir(path):
        with open(os.path.join(path, name), "rb+") as f:
            os.fsync(f.fileno())


def save_sharded(module: nn.Module, optimizer: torch.optim.Optimizer, extra: Mapping[str, Any],
                 output_dir: str) -> str:
    """Write ``<output_dir>/last.dcp`` atomically (all ranks call; ``extra`` is rank 0's); returns its path."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    last = os.path.join(output_dir, LAST)
    tmp = du.broadcast_object(f"{last}.{os.getpid()}-{int(extra.get('iteration', 0))}.tmp")
    if du.is_main():
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
    du.all_gather_object(None)  # the folder exists for every rank
    model_sd, optim_sd = get_state_dict(module, optimizer)
    with _single_process_ok():
        dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp)
    if du.is_main():
        atomic_save(dict(extra), os.path.join(tmp, EXTRA))
        _fsync_tree(tmp)
        files = {n: os.path.getsize(os.path.join(tmp, n)) for n in sorted(os.listdir(tmp)) if not n.endswith(".tmp")}
        atomic_write_text(os.path.join(tmp, MARKER), json.dumps({"files": files, "world_size": du.world_size(),
                                                                 "epoch": extra.get("epoch"),
                                                                 "iteration": extra.get("iteration")}, indent=1))
        prev = os.path.join(output_dir, PREV)
        if os.path.isdir(last):
            shutil.rmtree(prev, ignore_errors=True)
            os.replace(last, prev)
        os.replace(tmp, last)
    du.all_gather_object(None)  # nobody reads it before it is in place
    return last


def read_sharded(path: str) -> dict[str, Any]:
    """The trainer state of a complete sharded checkpoint (a CheckpointError names what is missing), with
    ``sharded`` set to its path: :func:`load_sharded` reads the weights."""
    check_complete(path)
    extra = _read_extra(path)
    extra["sharded"] = path
    return extra


def load_sharded(module: nn.Module, optimizer: torch.optim.Optimizer, path: str, source: str) -> None:
    """Load the model and optimizer shards of ``path`` at this run's world size (sharded or not)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_sd, optim_sd = get_state_dict(module, optimizer)
    _check_keys(path, model_sd, source)
    state = {"model": model_sd, "optim": optim_sd}
    with _single_process_ok():
        dcp.load(state, checkpoint_id=path)
    set_state_dict(module, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])


def _check_keys(path: str, model_sd: Mapping[str, Any], source: str, max_list: int = 10) -> None:
    """The model's keys and shapes must be the checkpoint's (before DCP's own less readable error)."""
    from torch.distributed.checkpoint import FileSystemReader

    meta = FileSystemReader(path).read_metadata().state_dict_metadata
    saved = {k[len("model."):]: v for k, v in meta.items() if k.startswith("model.")}
    missing = sorted(set(model_sd) - set(saved))
    unexpected = sorted(set(saved) - set(model_sd))
    shapes = [f"{k}: checkpoint {tuple(saved[k].size)} vs model {tuple(v.shape)}" for k, v in model_sd.items()
              if k in saved and hasattr(saved[k], "size") and tuple(saved[k].size) != tuple(v.shape)]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{source} does not match the model: missing {missing[:max_list]}, unexpected "
                              f"{unexpected[:max_list]}, shapes {shapes[:max_list]} (another model's run: give this "
                              f"run another --output-dir)")


def read_full_state(path: str, prefix: str = "model.") -> dict[str, torch.Tensor]:
    """The whole tensors under ``prefix`` of a sharded checkpoint, read in one process (e.g. to compare or convert)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    check_complete(path)
    meta = FileSystemReader(path).read_metadata().state_dict_metadata
    state = {k: torch.empty(tuple(m.size), dtype=m.properties.dtype) for k, m in meta.items()
             if k.startswith(prefix) and isinstance(m, TensorStorageMetadata)}
    with _single_process_ok():
        dcp.load(state, checkpoint_id=path, no_dist=True)
    return {k[len(prefix):]: v for k, v in state.items()}


def full_backbone_state(task: nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    """The backbone's whole state dict on rank 0 (on CPU; {} on the other ranks): all ranks call it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not is_sharded(task):
        return {k[len(prefix):]: v.detach().cpu() for k, v in task.state_dict().items() if k.startswith(prefix)}
    full = get_model_state_dict(task, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return {k[len(prefix):]: v for k, v in full.items() if k.startswith(prefix)}


def load_full_backbone(task: nn.Module, prefix: str, state: Mapping[str, torch.Tensor]) -> None:
    """Load a whole backbone state dict (e.g. a consolidated best.pth) into a sharded task, strictly."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    full = {k: v for k, v in task.state_dict().items() if not k.startswith(prefix)}
    full = {k: full_norm(v) for k, v in full.items()}
    full.update({prefix + k: v for k, v in state.items()})
    set_model_state_dict(task, full, options=StateDictOptions(full_state_dict=True, strict=True))




# ----------------------------------------------------------------------------------------------- the strategy
class FSDPStrategy(Strategy):
    """Shard parameters, gradients and optimizer state (FSDP2); the training checkpoint is the folder last.dcp."""

    name = "fsdp"
    LAST = LAST
    MARKER = f"{LAST}/{MARKER}"
    unsupported = {"ema": "the EMA copy would be a whole replica on every rank, which sharding exists to avoid",
                   "compile": "torch.compile of a sharded model is not wired up yet"}

    def describe(self) -> str:
        from .device import amp_name
        return (f"train.strategy fsdp (mesh {list(mesh_shape(self.t, self.info.world_size))}, parameters gathered in "
                f"{amp_name(self.amp_dtype)}, gradients reduced in fp32)")

    def to_device(self, task: nn.Module) -> nn.Module:
        # fully_shard moves each block to the device as it shards it (never the whole model on one rank)
        return task if self.info.distributed else task.to(self.info.device)

    def wrap(self, task: nn.Module) -> nn.Module:
        """Shards in place: the task is its own wrapper."""
        return shard_task(task, self.t, self.info, self.amp_dtype)

    def no_sync(self, model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
        return grad_sync(model, sync)

    def gathered(self, task: nn.Module) -> contextlib.AbstractContextManager:
        return gathered(task, self.t.fsdp_reshard_after_forward)

    def full(self, t: torch.Tensor | None) -> torch.Tensor | None:
        return full_norm(t)

    def nonfinite_params(self, task: nn.Module) -> list[str]:
        return nonfinite_params(task)

    @classmethod
    def find_last(cls, output_dir: str) -> str | None:
        return find_sharded(output_dir)

    def save(self, task: Any, optimizer: torch.optim.Optimizer, state: dict[str, Any], output_dir: str,
             is_best: bool) -> str | None:
        """best.pth (the whole backbone, consolidated on rank 0), then the sharded last.dcp (all ranks)."""
        if is_best:
            model = full_backbone_state(task, task.backbone_attr + ".")
            if self.info.is_main:
                keep = ("epoch", "iteration", "world_size", "config", "meta", "best", "best_ema")
                atomic_save({"model": model, "strategy": self.name, **{k: state[k] for k in keep if k in state}},
                            os.path.join(output_dir, "best.pth"))
        path = save_sharded(task, optimizer, {**state, "strategy": self.name}, output_dir)
        return path if self.info.is_main else None

    def load_backbone(self, task: Any, state: Mapping[str, torch.Tensor], source: str) -> None:
        from .checkpoint import check_state_dict
        check_state_dict(task.backbone, state, source)
        load_full_backbone(task, task.backbone_attr + ".", state)
