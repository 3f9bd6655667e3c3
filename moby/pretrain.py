"""MoBY self-supervised pretraining: ``python -m moby.pretrain [--config configs/moby/<recipe>.yaml] [--opt k=v]``.

Without --config it pretrains the embedded default (configs/moby/tiny_shapes.yaml: a tiny Swin on generated
shape images). Any backbone the registry builds works: 2D Swin and Swin-MLP on images, Video Swin on clips (the
two views are two clips of one video). The kNN monitor runs every ``train.eval_interval`` epochs and picks
``best.pth``, whose ``model`` entry is the online backbone: ``core.load_pretrained(classifier, "best.pth")``.
One CPU, one GPU or torchrun DDP (SyncBatchNorm in the heads, keys gathered from every rank).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from torch.utils.data import Subset

from core.engine import ConfigError, RunContext, build_model, launch
from core.engine.data import build_loaders
from core.engine.device import rank_seeds
from core.engine.distributed import DistInfo, convert_sync_batchnorm

from .config import MoBYConfig
from .data import build_eval_loader, build_pretrain_sets
from .knn import KNNLoaders
from .task import MoBY

__all__ = ["check_queue", "build_moby", "setup_pretrain", "main"]

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


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=MoBYConfig, setup=setup_pretrain, description=__doc__, default_config=DEFAULT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
