"""Image classification entry point (one CPU, one GPU, or torchrun DDP).

    python -m core.train --config configs/swin/tiny_digits.yaml --opt train.epochs=5 optim.lr=1e-3
    torchrun --nproc_per_node 8 -m core.train --config configs/swin/swin_t_in1k.yaml --opt data.root=/data/in1k

Other methods reuse :func:`main` with their own schema, datasets, model builder or trainer class.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Sequence

import torch.nn as nn

from . import create_model, distributed as du, load_pretrained
from .checkpoint import CheckpointError
from .config import Config, ConfigError, dump_config, load_config
from .data import DataError, build_image_datasets, build_loaders
from .engine import Trainer, build_mixup, classification_loss, resume_path, seed_everything

__all__ = ["parse_args", "build_model", "main"]


def parse_args(argv: Sequence[str] | None = None, description: str = __doc__) -> argparse.Namespace:
    """--config PATH [--opt k=v ...] [--resume PATH] [--output-dir DIR] [--eval-only]."""
    p = argparse.ArgumentParser(description=description.splitlines()[0] if description else None)
    p.add_argument("--config", required=True, help="recipe YAML (may use _base_)")
    p.add_argument("--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.epochs=5 model.drop_path_rate=0.2")
    p.add_argument("--resume", default=None, help="checkpoint to resume (= --opt train.resume=PATH)")
    p.add_argument("--output-dir", default=None, help="= --opt train.output_dir=DIR")
    p.add_argument("--eval-only", action="store_true", help="= --opt train.eval_only=true")
    return p.parse_args(argv)


def build_model(cfg: Config, num_classes: int, *, initial_weights: bool = True,
                load_fn: Callable[..., Any] = load_pretrained) -> nn.Module:
    """``create_model(model.name, num_classes, drop_path_rate, **model.kwargs)``, then
    ``load_fn(model, model.pretrained, **model.pretrained_kwargs)``.

    The initial weights are skipped when a checkpoint of the run replaces them anyway (a resume, a test).
    """
    m = cfg.model
    model = create_model(m.name, num_classes=num_classes, drop_path_rate=m.drop_path_rate, **m.kwargs)
    if m.pretrained and initial_weights and resume_path(cfg) is None:
        if not os.path.isfile(m.pretrained):
            raise ConfigError(f"model.pretrained = {m.pretrained!r} is not a file")
        load_fn(model, m.pretrained, **m.pretrained_kwargs)
    return model


def main(argv: Sequence[str] | None = None, *, schema: type = Config,
         build_datasets: Callable[[Any], tuple[Any, Any, int]] = build_image_datasets,
         model_fn: Callable[[Any, int], nn.Module] = build_model, trainer_cls: type = Trainer,
         collate_fn: Callable | None = None, **trainer_kwargs: Any) -> int:
    """Parse args, load config, build data / model / loss, train; returns a process exit code."""
    args = parse_args(argv)
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
        return _run(cfg, info, build_datasets, model_fn, trainer_cls, trainer_kwargs, collate_fn)
    except (ConfigError, DataError, CheckpointError) as e:
        kind = "config" if isinstance(e, ConfigError) else "data" if isinstance(e, DataError) else "checkpoint"
        print(f"{kind} error: {e}", file=sys.stderr)
        return 2
    finally:
        du.cleanup()


def _run(cfg: Any, info: du.DistInfo, build_datasets: Callable, model_fn: Callable, trainer_cls: type,
         trainer_kwargs: dict, collate_fn: Callable | None = None) -> int:
    if info.is_main:
        print("resolved config:\n" + dump_config(cfg), flush=True)
    train_ds, val_ds, num_classes = build_datasets(cfg)
    if cfg.model.num_classes and cfg.model.num_classes != num_classes:
        raise ConfigError(f"model.num_classes = {cfg.model.num_classes} but the dataset has {num_classes} "
                          f"classes (set model.num_classes=0 to take it from the data)")
    train_loader, val_loader = build_loaders(cfg, None if cfg.train.eval_only else train_ds, val_ds, info,
                                             collate_fn=collate_fn)
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    model = model_fn(cfg, num_classes)
    seed_everything(cfg.train.seed + info.rank)  # distinct augmentation streams per rank
    mixup = build_mixup(cfg, num_classes)
    kwargs = dict(loss_fn=classification_loss(cfg, mixup is not None), mixup_fn=mixup)
    kwargs.update(trainer_kwargs)
    trainer = trainer_cls(cfg, model, train_loader, val_loader, info=info, **kwargs)
    trainer.fit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
