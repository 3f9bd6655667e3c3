"""Where and how a run computes: seeding, mixed precision, moving batches, unwrapping DDP / compiled modules."""
from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, Mapping

import numpy as np
import torch
import torch.nn as nn

from .config import ConfigError

__all__ = ["seed_everything", "rank_seeds", "amp_choice", "amp_name", "cpu_has_native_bf16", "resolve_amp", "autocast",
           "to_device", "unwrap_model"]


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextlib.contextmanager
def rank_seeds(seed: int, rank: int) -> Iterator[None]:
    """Inside: the stream shared by every rank (identical initial weights); after it: one stream per rank (distinct
    augmentation and masks)."""
    seed_everything(seed)
    yield
    seed_everything(seed + rank)


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _cpu_capabilities() -> dict:
    return torch.cpu.get_capabilities() if hasattr(torch.cpu, "get_capabilities") else {}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (avx512_bf16 or AMX), so bf16 autocast beats fp32."""
    caps = _cpu_capabilities()
    return bool(caps.get("avx512_bf16") or caps.get("amx_bf16"))


def cpu_name() -> str:
    """The CPU's model name, for messages."""
    return str(_cpu_capabilities().get("cpu_name") or "this CPU")


def amp_choice(amp: str, device: torch.device) -> tuple[torch.dtype | None, str]:
    """(autocast dtype, why) for ``train.amp`` on ``device``: auto = bf16 where the device computes bf16 natively
    (CUDA with bf16, a CPU with avx512_bf16 / AMX), fp32 elsewhere; ConfigError naming the device when the asked
    precision cannot run well there."""
    if amp not in ("auto", "none", "bf16", "fp16"):
        raise ConfigError(f"train.amp must be one of auto, none, bf16, fp16, got {amp!r}")
    if amp == "none":
        return None, "asked"
    if device.type == "cuda":
        bf16 = torch.cuda.is_bf16_supported(including_emulation=False)
        if amp == "auto":
            return (torch.bfloat16, "auto: GPU has bf16") if bf16 else (None, "auto: GPU has no bf16")
        if amp == "bf16" and not bf16:
            raise ConfigError(f"train.amp=bf16: {torch.cuda.get_device_name(device)} ({device}) has no native bf16; "
                             f"use train.amp=fp16 or none")
        return _AMP_DTYPES[amp], "asked"
    if device.type == "cpu":
        bf16 = cpu_has_native_bf16()
        if amp == "auto":
            return (torch.bfloat16, "auto: CPU has native bf16") if bf16 else (None, "auto: CPU has no native bf16")
        if amp == "fp16":
            raise ConfigError("train.amp=fp16 on CPU: fp16 is for GPUs; on a CPU it is no faster than bf16 (and "
                              "slower than fp32 without AVX512-FP16 / AMX-FP16) while its narrow range needs loss "
                              "scaling: use train.amp=auto (bf16 where the CPU has it, else fp32)")
        if not bf16:
            raise ConfigError(f"train.amp=bf16: the CPU ({cpu_name()}) has no native bf16 (avx512_bf16 or AMX); "
                             f"bf16 would be emulated and slower than fp32: use train.amp=none (or auto)")
        return torch.bfloat16, "asked"
    if amp == "auto":
        return None, f"auto: fp32 on {device.type}"
    return _AMP_DTYPES[amp], "asked"


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """autocast dtype for ``train.amp`` (see :func:`amp_choice`)."""
    return amp_choice(amp, device)[0]


def amp_name(dtype: torch.dtype | None) -> str:
    """'bf16', 'fp16' or 'fp32' for logs."""
    return {v: k for k, v in _AMP_DTYPES.items()}.get(dtype, "fp32")


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


def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip DistributedDataParallel / DataParallel and torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model
