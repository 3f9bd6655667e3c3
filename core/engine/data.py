"""Data plumbing every task shares: the loaders (seeded sharding for training, exact sharding for evaluation)."""
from __future__ import annotations

from typing import Any, Callable

from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .config import LoaderConfig
from .distributed import DistInfo, ShardedSampler

__all__ = ["DataError", "build_loaders", "per_process_batch", "set_epoch"]


class DataError(RuntimeError):
    """The data is missing or malformed; the message names the path."""


def build_loaders(cfg: Any, train_ds: Dataset | None, val_ds: Dataset | None, info: DistInfo, *,
                  collate_fn: Callable | None = None) -> tuple[DataLoader | None, DataLoader | None]:
    """Train loader (seeded DistributedSampler, set_epoch each epoch, drop_last) and val loader (ShardedSampler).

    ``cfg.data`` is a :class:`core.engine.config.LoaderConfig`; ``cfg.train.seed`` seeds the shuffling.
    """
    d: LoaderConfig = cfg.data
    seed = cfg.train.seed
    pin = d.pin_memory and info.device.type == "cuda"
    train_loader = val_loader = None
    if train_ds is not None:
        sampler = DistributedSampler(train_ds, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=seed)
        if len(sampler) < d.batch_size:
            raise DataError(f"training set too small: {len(sampler)} samples per process < data.batch_size "
                            f"{d.batch_size}: lower it (--opt data.batch_size=N)")
        train_loader = DataLoader(train_ds, batch_size=d.batch_size, sampler=sampler, num_workers=d.num_workers,
                                  pin_memory=pin, drop_last=True, collate_fn=collate_fn)
    if val_ds is not None:
        val_loader = DataLoader(val_ds, batch_size=d.eval_batch_size or d.batch_size,
                                sampler=ShardedSampler(len(val_ds), info.world_size, info.rank),
                                num_workers=d.num_workers, pin_memory=pin, drop_last=False, collate_fn=collate_fn)
    return train_loader, val_loader


def per_process_batch(cfg: Any, loader: Any) -> int:
    """The loader's batch size, else the config's ``data.batch_size``."""
    bs = getattr(loader, "batch_size", None)
    if bs is None:
        bs = getattr(getattr(cfg, "data", None), "batch_size", None)
    if bs is None:
        raise ValueError("cannot tell the batch size: give a DataLoader or a config with data.batch_size")
    return int(bs)


def set_epoch(loader: Any, epoch: int) -> None:
    """Reshuffle for the epoch: a DistributedSampler's, or an iterable data set's own ``set_epoch``."""
    for source in (getattr(loader, "sampler", None), getattr(loader, "dataset", None)):
        if callable(getattr(source, "set_epoch", None)):
            source.set_epoch(epoch)
            return
