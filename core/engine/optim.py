"""Optimizer and lr-schedule construction: weight-decay / layer-decay / lr-multiplier parameter groups.

Parameter groups carry ``lr_scale``, which timm schedulers multiply into each group's lr, so layer-wise
lr decay and per-module multipliers survive the schedule.

``optim.lr_mult`` maps parameter-name prefixes to lr multipliers. A prefix matches a name equal to it or
starting with ``prefix + "."``; the longest matching prefix wins. The special key ``backbone`` matches
every parameter outside the classifier head (names not starting with ``head.``), so Video Swin's
``{backbone: 0.1}`` trains the backbone at a tenth of the head's lr. Multipliers multiply the layer-decay
scale. For a :class:`core.engine.task.Task`, the prefixes of its backbone's parameters are the backbone's own
names (``task.lr_name``), so recipes read the same for every method.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import torch
import torch.nn as nn
from timm.optim import create_optimizer_v2
from timm.scheduler import CosineLRScheduler, MultiStepLRScheduler
from timm.scheduler.scheduler import Scheduler

from .config import Config
from .device import unwrap_model

__all__ = ["no_weight_decay_names", "lr_multiplier", "build_param_groups", "scaled_lrs", "build_optimizer",
           "build_scheduler", "HEAD_PREFIX"]

HEAD_PREFIX = "head"


def no_weight_decay_names(model: nn.Module, keywords: Iterable[str] = ()) -> set[str]:
    """Names of parameters without weight decay: 1-d params, biases, model.no_weight_decay(), keyword hits."""
    model = unwrap_model(model)
    skip = set(model.no_weight_decay()) if hasattr(model, "no_weight_decay") else set()
    keywords = tuple(keywords)
    out = set()
    for name, p in model.named_parameters():
        if p.ndim <= 1 or name.endswith(".bias") or name in skip or any(k in name for k in keywords):
            out.add(name)
    return out


def lr_multiplier(name: str, lr_mult: dict[str, float], head_prefix: str = HEAD_PREFIX) -> float:
    """The lr multiplier of parameter ``name``: longest matching prefix in ``lr_mult``, 1.0 if none."""
    best, best_len = 1.0, -1
    for prefix, mult in lr_mult.items():
        if prefix == "backbone":
            hit = not (name == head_prefix or name.startswith(head_prefix + "."))
            length = 0  # weaker than any explicit prefix
        else:
            hit = name == prefix or name.startswith(prefix + ".")
            length = len(prefix)
        if hit and length > best_len:
            best, best_len = float(mult), length
    return best


def build_param_groups(model: nn.Module, weight_decay: float, *, layer_decay: float = 1.0,
                       lr_mult: dict[str, float] | None = None,
                       no_weight_decay_keywords: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Group trainable parameters by (weight decay, lr scale); each group has ``lr_scale`` and ``names``.

    Layer-wise decay uses ``model.group_id(name)`` and ``model.num_layers_for_lr_decay``: group ``i`` gets
    ``layer_decay ** (num_layers - 1 - i)``.
    """
    model = unwrap_model(model)
    lr_mult = lr_mult or {}
    no_wd = no_weight_decay_names(model, no_weight_decay_keywords)
    use_ld = layer_decay < 1.0
    if use_ld and not (hasattr(model, "group_id") and hasattr(model, "num_layers_for_lr_decay")):
        raise ValueError(f"optim.layer_decay={layer_decay} needs a model with group_id(name) and "
                         f"num_layers_for_lr_decay; {type(model).__name__} has neither")
    num_layers = int(model.num_layers_for_lr_decay) if use_ld else 1
    lr_name = getattr(model, "lr_name", lambda n: n)  # a task names its backbone's parameters as the backbone does
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        wd = 0.0 if name in no_wd else weight_decay
        scale = lr_multiplier(lr_name(name), lr_mult)
        if use_ld:
            scale *= layer_decay ** (num_layers - 1 - int(model.group_id(name)))
        g = groups.setdefault((wd, scale), {"params": [], "names": [], "weight_decay": wd, "lr_scale": scale})
        g["params"].append(p)
        g["names"].append(name)
    return list(groups.values())


def scaled_lrs(cfg: Config, global_batch: int) -> tuple[float, float, float]:
    """(lr, warmup_lr, min_lr), scaled linearly by global_batch / optim.lr_base_size when that is set."""
    f = global_batch / cfg.optim.lr_base_size if cfg.optim.lr_base_size else 1.0
    return cfg.optim.lr * f, cfg.sched.warmup_lr * f, cfg.sched.min_lr * f


def build_optimizer(cfg: Config, model: nn.Module, lr: float) -> torch.optim.Optimizer:
    """timm optimizer over :func:`build_param_groups` of ``model`` (a task or a bare model)."""
    o = cfg.optim
    groups = build_param_groups(model, o.weight_decay, layer_decay=o.layer_decay, lr_mult=o.lr_mult,
                                no_weight_decay_keywords=o.no_weight_decay_keywords)
    groups = [{k: v for k, v in g.items() if k != "names"} for g in groups]
    # timm drops eps / betas for optimizers that take none
    return create_optimizer_v2(groups, opt=o.name, lr=lr, weight_decay=o.weight_decay, momentum=o.momentum,
                               eps=o.eps, betas=tuple(o.betas))


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer, updates_per_epoch: int, *,
                    warmup_lr: float, min_lr: float) -> Scheduler:
    """timm scheduler over ``train.epochs * updates_per_epoch`` updates, stepped per update."""
    s = cfg.sched
    total = cfg.train.epochs * updates_per_epoch
    warmup = int(round(s.warmup_epochs * updates_per_epoch))
    if s.name == "cosine":
        return CosineLRScheduler(optimizer, t_initial=max(1, total - warmup), lr_min=min_lr, warmup_t=warmup,
                                 warmup_lr_init=warmup_lr, warmup_prefix=True, cycle_limit=1, t_in_epochs=False)
    if s.name == "multistep":
        milestones = [int(round(e * updates_per_epoch)) for e in s.decay_epochs]
        # decay_epochs count from the start of training, warm-up included
        return MultiStepLRScheduler(optimizer, decay_t=milestones, decay_rate=s.decay_rate, warmup_t=warmup,
                                    warmup_lr_init=warmup_lr, warmup_prefix=False, t_in_epochs=False)
    # constant after warm-up
    return MultiStepLRScheduler(optimizer, decay_t=[math.inf], decay_rate=1.0, warmup_t=warmup,
                                warmup_lr_init=warmup_lr, warmup_prefix=True, t_in_epochs=False)
