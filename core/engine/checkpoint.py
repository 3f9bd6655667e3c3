"""Checkpoints: atomic writes, RNG capture/restore, weights_only loading and strict key checking.

A training checkpoint is a plain dict that ``torch.load(weights_only=True)`` can read::

    {"model", "task", "optimizer", "scheduler", "scaler", "ema", "ema_task", "epoch", "iteration", "rng",
     "config", "best", "best_ema"}

``model`` holds the task's deliverable (its backbone, in the format ``core.load_pretrained`` reads) and
``task`` the rest of the task's state (heads, momentum encoders, queues, counters). Files are written with
:func:`core.engine.files.atomic_save`, so a crash mid-write leaves the previous checkpoint intact.
"""
from __future__ import annotations

import os
import random
from typing import Mapping

import numpy as np
import torch
import torch.nn as nn

from .device import unwrap_model

__all__ = ["CheckpointError", "load_checkpoint", "load_error", "capture_rng_state", "restore_rng_state", "check_state_dict",
           "load_model_state", "clean_state_dict"]

_PREFIXES = ("module.", "_orig_mod.")


class CheckpointError(RuntimeError):
    """A checkpoint is unreadable or does not fit the model."""


def load_checkpoint(path: str, map_location: str | torch.device = "cpu") -> dict:
    """``torch.load(path, weights_only=True)`` with clear errors for missing or corrupt files."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means an unusable file
        raise CheckpointError(f"cannot read checkpoint {path}: {load_error(e)}") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(obj).__name__}, expected a dict")
    return obj


def load_error(e: BaseException) -> str:
    """torch.load's error in one line, without its advice to turn the weights_only safety off."""
    from ..convert.formats import unpickle_error
    return unpickle_error(e)


# ----------------------------------------------------------------------------------------------- rng
def capture_rng_state() -> dict:
    """RNG states of python, numpy, torch and CUDA as tensors / plain types (weights_only-safe)."""
    py = random.getstate()
    np_state = np.random.get_state()
    state = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        cuda = state["cuda"]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)


# ----------------------------------------------------------------------------------------------- model state
def clean_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip DDP ``module.`` and torch.compile ``_orig_mod.`` prefixes."""
    out = {}
    for k, v in state_dict.items():
        changed = True
        while changed:
            changed = False
            for p in _PREFIXES:
                if k.startswith(p):
                    k, changed = k[len(p):], True
        out[k] = v
    return out


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint",
                     max_list: int = 20) -> None:
    """Raise CheckpointError listing missing, unexpected and shape-mismatched keys, if any."""
    own = clean_state_dict(model.state_dict())
    other = clean_state_dict(state_dict)
    missing = [k for k in own if k not in other]
    unexpected = [k for k in other if k not in own]
    shapes = [f"{k}: checkpoint {tuple(other[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in other and tuple(own[k].shape) != tuple(other[k].shape)]
    if not (missing or unexpected or shapes):
        return

    def block(title: str, items: list[str]) -> str:
        more = f"\n    ... and {len(items) - max_list} more" if len(items) > max_list else ""
        return f"\n  {title} ({len(items)}):\n    " + "\n    ".join(items[:max_list]) + more

    msg = f"{source} does not match the model ({type(model).__name__})"
    if missing:
        msg += block("missing in checkpoint", missing)
    if unexpected:
        msg += block("unexpected in checkpoint", unexpected)
    if shapes:
        msg += block("shape mismatch", shapes)
    raise CheckpointError(msg)


def load_model_state(model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Strictly load ``state_dict`` into ``model`` after :func:`check_state_dict`."""
    check_state_dict(model, state_dict, source)
    unwrap_model(model).load_state_dict(clean_state_dict(state_dict), strict=True)
