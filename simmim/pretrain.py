"""SimMIM pretraining: ``python -m simmim.pretrain [--config configs/simmim/<recipe>.yaml] [--opt k=v ...]``.

Without --config it runs the embedded default (configs/simmim/tiny_digits.yaml: a tiny Swin on scikit-learn's
digits, no labels used). Runs on one CPU, one GPU or many through torchrun, with the engine's AMP, checkpoints
and resume; ``best.pth`` is the epoch with the lowest held-out masked-pixel L1 (highest ``skill``).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from core.engine import RunContext, launch
from core.engine.data import build_loaders
from core.engine.device import rank_seeds

from .config import SimMIMConfig
from .data import build_pretrain_datasets
from .task import SimMIM, build_simmim

DEFAULT_CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "simmim" / "tiny_digits.yaml")


def setup_simmim(cfg: SimMIMConfig, run: RunContext) -> tuple[SimMIM, Any, Any]:
    """Datasets, loaders and the task (identical initial weights on every rank)."""
    collate = None
    if cfg.data.is_video:
        from core.video.data import collate_videos
        collate = collate_videos
    with rank_seeds(cfg.train.seed, run.info.rank):  # identical weights; distinct masks and augmentation per rank
        task = build_simmim(cfg, not run.continuing)  # checks sizes, patch and stride before any data is read
        train_ds, val_ds = build_pretrain_datasets(cfg)
        train_loader, val_loader = build_loaders(cfg, train_ds, val_ds, run.info, collate_fn=collate)
    return task, train_loader, val_loader


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=SimMIMConfig, setup=setup_simmim, description=__doc__, default_config=DEFAULT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
