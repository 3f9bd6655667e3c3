"""Per-sample outputs of a whole (sharded) dataset in dataset order on every rank: multi-view testing, kNN banks."""
from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from . import distributed as du
from .device import autocast, to_device

__all__ = ["predict"]


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None = None,
            forward: Callable[[nn.Module, Any], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(outputs, targets) for every dataset item, in dataset order, on every rank (float32, on CPU).

    ``forward(model, batch) -> outputs`` defaults to ``model(batch[0])``; targets are ``batch[1]``. Items a
    sharded sampler assigns to no rank are absent, so use :class:`core.engine.distributed.ShardedSampler`.
    """
    model.eval()
    indices = list(iter(loader.sampler))
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
