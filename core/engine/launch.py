"""What every entry point shares: arguments, config loading, model building, error reporting, the run itself.

    def setup(cfg, info) -> (task, train_loader, val_loader): ...
    sys.exit(launch(argv, schema=MyConfig, setup=setup, description=__doc__))
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

import torch.nn as nn

from ..convert import load_pretrained
from ..registry import create_model
from . import distributed as du
from .checkpoint import CheckpointError
from .config import Config, ConfigError, dump_config, load_config
from .data import DataError
from .trainer import Trainer, resume_path

__all__ = ["parse_args", "build_model", "launch"]

Setup = Callable[[Any, du.DistInfo], tuple[Any, Any, Any]]


def parse_args(argv: Sequence[str] | None = None, description: str | None = None,
               default_config: str | None = None) -> argparse.Namespace:
    """--config PATH [--opt k=v ...] [--resume PATH] [--output-dir DIR] [--eval-only]."""
    p = argparse.ArgumentParser(description=description.splitlines()[0] if description else None)
    p.add_argument("--config", required=default_config is None, default=default_config,
                   help="recipe YAML (may use _base_)" + (f"; default {default_config}" if default_config else ""))
    p.add_argument("--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.epochs=5 model.drop_path_rate=0.2")
    p.add_argument("--resume", default=None, help="checkpoint to resume (= --opt train.resume=PATH)")
    p.add_argument("--output-dir", default=None, help="= --opt train.output_dir=DIR")
    p.add_argument("--eval-only", action="store_true", help="= --opt train.eval_only=true")
    return p.parse_args(argv)


def build_model(cfg: Config, num_classes: int | None = None, *, initial_weights: bool = True,
                load_fn: Callable[..., Any] = load_pretrained, **overrides: Any) -> nn.Module:
    """``create_model(model.name, num_classes, **model.kwargs)`` (drop_path_rate when set), then
    ``load_fn(model, model.pretrained, **model.pretrained_kwargs)``.

    Fields left unset keep the variant's own values. The initial weights are skipped when a checkpoint of the
    run replaces them anyway (a resume, a test).
    """
    m = cfg.model
    kwargs = dict(m.kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if m.drop_path_rate is not None:
        kwargs["drop_path_rate"] = m.drop_path_rate
    kwargs.update(overrides)
    model = create_model(m.name, **kwargs)
    if m.pretrained and initial_weights and resume_path(cfg) is None:
        if not os.path.isfile(m.pretrained):
            raise ConfigError(f"model.pretrained = {m.pretrained!r} is not a file")
        load_fn(model, m.pretrained, **m.pretrained_kwargs)
    return model


def launch(argv: Sequence[str] | None, *, schema: type, setup: Setup, description: str | None = None,
           default_config: str | None = None) -> int:
    """Parse args, load the config, ``setup(cfg, info) -> (task, train_loader, val_loader)``, train.

    Returns a process exit code: 0, or 2 with one line naming the problem for config, data and checkpoint errors.
    """
    args = parse_args(argv, description, default_config)
    try:
        cfg = load_config(args.config, args.opt, schema=schema)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    # set directly, not through YAML parsing, so any path string is taken as it is
    if args.resume:
        cfg.train.resume = args.resume
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if args.eval_only:
        cfg.train.eval_only = True
    info = du.init_distributed(cfg.train.device)
    try:
        if info.is_main:
            print("resolved config:\n" + dump_config(cfg), flush=True)
        task, train_loader, val_loader = setup(cfg, info)
        Trainer(cfg, task, None if cfg.train.eval_only else train_loader, val_loader, info=info).fit()
        return 0
    except (ConfigError, DataError, CheckpointError) as e:
        kind = "config" if isinstance(e, ConfigError) else "data" if isinstance(e, DataError) else "checkpoint"
        print(f"{kind} error: {e}", file=sys.stderr)
        return 2
    finally:
        du.cleanup()
