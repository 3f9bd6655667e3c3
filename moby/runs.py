"""MoBY's runs: the pretraining setup (two-view loader, kNN monitor, the task with its momentum encoder) and the
linear probe's setup (a frozen backbone's cached features); the commands are ``cli/pretrain.py`` and
``cli/linear.py``."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch.nn as nn
from torch.utils.data import Subset, TensorDataset

from core import load_pretrained
from core.classification.build import build_classification
from core.classification.data import build_image_datasets
from core.classification.task import ClassificationTask
from core.engine import ConfigError, EvalEnv, RunContext, build_model
from core.engine.checkpoint import CheckpointError
from core.engine.data import build_loaders
from core.engine.device import rank_seeds, resolve_amp, seed_everything
from core.engine.distributed import DistInfo, convert_sync_batchnorm
from core.engine.launch import describe_load, pretrained_source
from moby.config import FinetuneConfig, MoBYConfig
from moby.data import build_eval_loader, build_labelled_set, build_pretrain_sets
from moby.knn import KNNLoaders
from moby.probe import LinearProbe, cached_features, standardize
from moby.task import MoBY

__all__ = ["DEFAULT_CONFIG", "check_queue", "build_moby", "setup_pretrain", "load_backbone", "setup_linear",
           "setup_finetune"]

DEFAULT_CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "moby" / "tiny_shapes.yaml")


def check_queue(cfg: MoBYConfig, world_size: int) -> None:
    """Every step enqueues the keys of the whole global batch: the queue length must be a multiple of it."""
    batch = cfg.data.batch_size * world_size
    if cfg.moby.queue_len % batch:
        raise ConfigError(f"moby.queue_len = {cfg.moby.queue_len} is not a multiple of the global batch {batch} "
                          f"(data.batch_size {cfg.data.batch_size} x {world_size} processes): expected e.g. "
                          f"{max(batch, cfg.moby.queue_len // batch * batch)}")


def build_moby(cfg: MoBYConfig, info: DistInfo, initial_weights: bool = True) -> MoBY:
    """Online backbone (model.drop_path_rate), target backbone (moby.target_drop_path), heads; SyncBN under DDP."""
    m = cfg.moby
    with rank_seeds(cfg.train.seed, info.rank):
        online = build_model(cfg, num_classes=0, initial_weights=initial_weights)
        target = build_model(cfg, num_classes=0, initial_weights=False, drop_path_rate=m.target_drop_path)
        task = MoBY(online, target, proj_dim=m.proj_dim, hidden_dim=m.hidden_dim, queue_len=m.queue_len,
                    temperature=m.temperature, momentum=m.momentum, knn_k=cfg.knn.k,
                    knn_temperature=cfg.knn.temperature, reverse_negatives=m.reverse_negatives,
                    reverse_views=m.reverse_views)
        if info.distributed and m.sync_bn:
            for name in ("projector", "predictor", "projector_k"):
                setattr(task, name, convert_sync_batchnorm(getattr(task, name), info.device))
    return task


def setup_pretrain(cfg: MoBYConfig, run: RunContext) -> tuple[MoBY, Any, KNNLoaders]:
    """Two-view training loader, the kNN monitor's loaders and the task."""
    info = run.info
    check_queue(cfg, info.world_size)
    train, bank, query = build_pretrain_sets(cfg)
    if cfg.knn.max_bank and len(bank) > cfg.knn.max_bank:
        bank = Subset(bank, range(cfg.knn.max_bank))
    train_loader, _ = build_loaders(cfg, train, None, info)
    knn = KNNLoaders(build_eval_loader(cfg, bank, info), build_eval_loader(cfg, query, info))
    return build_moby(cfg, info, not run.continuing), train_loader, knn





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




def setup_finetune(cfg: FinetuneConfig, run: RunContext) -> tuple[ClassificationTask, Any, Any]:
    """The classification setup with a required pretrained backbone (its head is new, reported in the log)."""
    if not cfg.model.pretrained and not run.continuing:
        raise ConfigError("model.pretrained is empty: fine-tuning needs a pretrained checkpoint, e.g. --opt "
                          "model.pretrained=outputs/moby_tiny_shapes/latest/best.pth")
    train_ds, val_ds, num_classes = build_image_datasets(cfg)
    return build_classification(cfg, run, train_ds, val_ds, num_classes, train_set=train_ds)
