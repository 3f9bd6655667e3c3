"""Process-group setup and collectives that also work single-process (torchrun or plain python)."""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.distributed.constants import default_pg_timeout
from torch.utils.data import Sampler

__all__ = ["DistInfo", "init_distributed", "cleanup", "is_dist", "rank", "world_size", "is_main", "all_reduce_sum",
           "all_reduce_max",
           "all_gather_object", "all_gather_cat", "gather_by_index", "broadcast_object", "ShardedSampler",
           "GlobalBatchNorm", "convert_sync_batchnorm"]


@dataclass
class DistInfo:
    """Where this process runs."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _pick_device(pref: str, local_rank: int) -> torch.device:
    if pref == "cpu" or (pref == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError(f"train.device={pref!r} but CUDA is not available")
    if pref.startswith("cuda:"):
        return torch.device(pref)
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (nccl on CUDA, gloo on CPU)."""
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    r = int(os.environ.get("RANK", "0"))
    lr = int(os.environ.get("LOCAL_RANK", "0"))
    dev = _pick_device(device, lr)
    if ws > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {"backend": backend}
        if dev.type == "cuda":
            kwargs["device_id"] = dev
        store = _restart_store(ws, r)
        if store is not None:
            kwargs.update(store=store, rank=r, world_size=ws)
        dist.init_process_group(**kwargs)
    return DistInfo(rank=r, world_size=ws, local_rank=lr, device=dev)


def _restart_store(world: int, rank: int) -> dist.Store | None:
    """The agent's store under a prefix of its own for this restart, or None to let ``env://`` build the store.

    Since torch 2.5 torchrun's workers share the agent's TCPStore across restarts without a per-attempt prefix
    (pytorch/pytorch#135712), so a restarted rank can read the gloo / NCCL address of a rank killed in the previous
    attempt and fail with "Connection refused". One agent (single node) numbers its restarts consistently, so its
    workers meet under ``attempt_<TORCHELASTIC_RESTART_COUNT>``; several agents do not (pytorch/pytorch#108158), so
    there the agents must opt out of the shared store (``TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1``), as a warning says.
    """
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    if int(os.environ.get("LOCAL_WORLD_SIZE", world)) != world:
        if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and rank == 0:
            warnings.warn("torchrun --max-restarts over several nodes shares one store across restarts "
                          "(pytorch/pytorch#135712): a restarted job can fail to connect; start the agents with "
                          "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1",
                          stacklevel=3)
        return None
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world, is_master=False,
                          timeout=default_pg_timeout)
    return dist.PrefixStore(f"attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", agent)


def cleanup() -> None:
    """Destroy the process group if one exists."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_dist() else 0


def world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def is_main() -> bool:
    return rank() == 0


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place; returned for chaining)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def all_reduce_max(t: torch.Tensor) -> torch.Tensor:
    """Maximum of a tensor over ranks (in place; returned for chaining)."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def all_gather_object(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (a one-element list when single-process)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate equally shaped tensors of every rank along dim 0, in rank order (no gradient)."""
    if not is_dist():
        return t
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts)


def gather_by_index(indices: torch.Tensor, *values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Gather per-item ``values`` with their dataset ``indices`` from every rank; returns all of them sorted by index."""
    parts = all_gather_object((indices, *values))
    index = torch.cat([p[0] for p in parts])
    order = torch.argsort(index)
    out = [index[order]]
    for i in range(1, len(parts[0])):
        held = [p[i] for p in parts if len(p[0])]  # ranks with no items may send shapeless empties
        out.append(torch.cat(held)[order] if held else parts[0][i])
    return tuple(out)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank."""
    if not is_dist():
        return obj
    buf = [obj]
    dist.broadcast_object_list(buf, src=src)
    return buf[0]


class ShardedSampler(Sampler[int]):
    """Evaluation sampler: rank r gets indices r, r+W, r+2W, ... -- no padding, no duplicates."""

    def __init__(self, dataset_len: int, num_replicas: int | None = None, rank_: int | None = None) -> None:
        self.n = dataset_len
        self.num_replicas = world_size() if num_replicas is None else num_replicas
        self.rank = rank() if rank_ is None else rank_

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


class GlobalBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the batch of every rank, on any device and backend (torch's SyncBatchNorm needs a GPU).

    The per-channel sums are all-reduced differentiably, so the backward pass is that of one large batch.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_dist()):
            return super().forward(x)
        from torch.distributed.nn.functional import (
            all_reduce,  # differentiable (its backward sums the gradients)
        )
        c = x.shape[1]
        xf = x.float()
        local = torch.cat([xf.sum(0), (xf * xf).sum(0), xf.new_full((1,), float(len(x)))])
        with warnings.catch_warnings():  # deprecated in favour of a private module; still the public autograd one
            warnings.simplefilter("ignore", FutureWarning)
            total = all_reduce(local)
        n = total[-1]
        mean = total[:c] / n
        var = (total[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp_min(1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = (xf - mean) * torch.rsqrt(var + self.eps)
        if self.affine:
            y = y * self.weight + self.bias
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Batch statistics over all ranks: torch's SyncBatchNorm on CUDA, :class:`GlobalBatchNorm` for BatchNorm1d
    elsewhere (CPU / gloo). Returns the converted module (the input itself when it is a plain container)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.BatchNorm1d) and not isinstance(module, GlobalBatchNorm):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                              module.track_running_stats)
        new.load_state_dict(module.state_dict())
        if module.affine:  # the same parameters (and requires_grad), as torch's convert_sync_batchnorm keeps them
            new.weight, new.bias = module.weight, module.bias
        new.train(module.training)
        return new
    for name, child in module.named_children():
        setattr(module, name, convert_sync_batchnorm(child, device))
    return module
