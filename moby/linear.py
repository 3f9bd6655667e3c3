"""Linear probe of a pretrained backbone: ``python -m moby.linear --config configs/moby/<probe>.yaml
--opt model.pretrained=RUN/best.pth`` (or ``probe.random_init=true`` for the random-initialisation baseline).

The backbone is frozen in eval mode; the pooled features of the training split and of ``data.probe_split``
(fixed centre view) are computed once and cached in the run folder (``features_<split>.pt``), then a linear
classifier is trained on them by the engine (any optimizer; the official recipe is SGD with Nesterov momentum,
lr 1.0 x batch / 512, 100 epochs, no weight decay). Resume, --eval-only and torchrun DDP work as everywhere.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Sequence

import torch.nn as nn
from torch.utils.data import TensorDataset

from core import load_pretrained
from core.engine import ConfigError, EvalEnv, RunContext, build_model, launch
from core.engine.checkpoint import CheckpointError
from core.engine.data import build_loaders
from core.engine.device import resolve_amp, seed_everything
from core.engine.launch import describe_load, pretrained_source

from .config import MoBYConfig
from .data import build_eval_loader, build_labelled_set
from .probe import LinearProbe, cached_features, standardize

__all__ = ["load_backbone", "setup_linear", "main"]


def load_backbone(cfg: MoBYConfig) -> nn.Module:
    """The headless backbone of ``model.name`` with the weights of ``model.pretrained`` (checked to fit)."""
    m, p = cfg.model, cfg.probe
    if p.random_init and m.pretrained:
        raise ConfigError(f"probe.random_init=true and model.pretrained = {m.pretrained!r}: choose one (drop "
                          f"model.pretrained to probe the random-init baseline)")
    if not p.random_init and not m.pretrained:
        raise ConfigError("model.pretrained is empty: the linear probe needs a pretrained checkpoint, e.g. "
                          "--opt model.pretrained=outputs/moby_tiny_shapes/latest/best.pth (or probe.random_init=true "
                          "for the random-initialisation baseline)")
    seed_everything(cfg.train.seed)  # the same random backbone for every probe of a seed
    backbone = build_model(cfg, num_classes=0, initial_weights=False, drop_path_rate=0.0)
    if m.pretrained:
        source, kwargs = pretrained_source(m.pretrained, backbone, dict(m.pretrained_kwargs))  # a file or a name
        try:
            report = load_pretrained(backbone, source, **kwargs)
        except (ValueError, KeyError) as e:
            raise CheckpointError(f"model.pretrained = {m.pretrained!r} is not a checkpoint of model.name = "
                                  f"{m.name!r} with model.kwargs = {m.kwargs}: {e}") from None
        logging.getLogger("swin").info(f"probing {describe_load(m.pretrained, report)}")
    else:
        logging.getLogger("swin").info(f"probing {m.name} at random initialisation (seed {cfg.train.seed})")
    return backbone


def setup_linear(cfg: MoBYConfig, run: RunContext) -> tuple[LinearProbe, Any, Any]:
    """Frozen backbone -> cached features of the training and probe splits -> loaders of features, the probe."""
    d, info = cfg.data, run.info
    backbone = load_backbone(cfg).to(info.device).eval()
    env = EvalEnv(info.device, resolve_amp(cfg.train.amp, info.device), cfg.train.progress)
    out = run.output_dir
    feats = {}
    for split in (d.train_split, d.probe_split):
        loader = build_eval_loader(cfg, build_labelled_set(cfg, split), info)
        feats[split] = cached_features(backbone, loader, env, os.path.join(out, f"features_{split}.pt"),
                                       cfg.model.pretrained, cfg.model.name, cfg.train.seed)
    (f_train, y_train), (f_eval, y_eval) = feats[d.train_split], feats[d.probe_split]
    if cfg.probe.standardize:
        f_train, f_eval = standardize(f_train, f_eval)
    del backbone
    num_classes = int(max(y_train.max(), y_eval.max())) + 1
    if cfg.model.num_classes not in (0, 1000, num_classes):  # 1000 is the schema's default
        raise ConfigError(f"model.num_classes = {cfg.model.num_classes} but the data has {num_classes} classes")
    train_loader, val_loader = build_loaders(cfg, TensorDataset(f_train, y_train), TensorDataset(f_eval, y_eval),
                                             info)
    seed_everything(cfg.train.seed)
    return LinearProbe(f_train.shape[1], num_classes), train_loader, val_loader


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=MoBYConfig, setup=setup_linear, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
