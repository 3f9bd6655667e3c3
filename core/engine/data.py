"""Data plumbing every task shares: the loaders (seeded sharding for training, exact sharding for evaluation), and
workers kept between epochs for a data set that caches in them (:class:`WorkerSeed`)."""
from __future__ import annotations

import multiprocessing as mp
import random
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset, get_worker_info

from .config import LoaderConfig
from .distributed import DistInfo, ShardedSampler

__all__ = ["DataError", "WorkerSeed", "EpochLoader", "worker_seed_of", "build_loaders"]


class DataError(RuntimeError):
    """The data is missing or malformed; the message names the path."""


class WorkerSeed:
    """The base seed of a loader's epoch, shared with its kept (persistent) workers.

    A data set that keeps state in its DataLoader workers (a decoded-video cache) holds one as ``worker_seed`` and
    calls :meth:`apply` before it reads a batch (``__getitems__``): :class:`EpochLoader` publishes each epoch's seed,
    drawn as a fresh worker's would be, and a worker that meets a new one reseeds python, numpy and torch as a
    freshly started worker does. Kept workers then give every epoch the augmentations of fresh ones, so results
    (and exact mid-epoch resume) do not depend on keeping them.
    """

    def __init__(self) -> None:
        self._value = mp.get_context("spawn").Value("q", -1)  # shared with workers (any start method); -1: none yet
        self._applied = -1

    def __getstate__(self) -> dict[str, Any]:
        """Share the value with spawned workers; plain pickles and deep copies get their own."""
        state = self.__dict__.copy()
        if mp.context.get_spawning_popen() is None:
            state["_value"] = self._value.value
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_value"], int):
            state["_value"] = mp.get_context("spawn").Value("q", state["_value"])
        self.__dict__.update(state)

    def publish(self, base_seed: int) -> None:
        """Main process, between epochs (the workers idle): the base seed of the next epoch (-1: new workers)."""
        self._value.value = base_seed

    def apply(self) -> None:
        """In a worker: reseed as torch's worker loop does at start when a new base seed was published."""
        info, seed = get_worker_info(), self._value.value
        if info is None or seed < 0 or seed == self._applied:
            return
        from torch.utils.data._utils.worker import _generate_state  # torch's numpy seeding of a fresh worker
        random.seed(seed + info.id)
        torch.manual_seed(seed + info.id)
        np.random.seed(_generate_state(seed, info.id))
        self._applied = seed


def worker_seed_of(ds: Dataset | None) -> WorkerSeed | None:
    """The :class:`WorkerSeed` of a data set (or of the data set a Subset takes from), if it keeps worker state."""
    while isinstance(ds, Subset):
        ds = ds.dataset
    return getattr(ds, "worker_seed", None)


class EpochLoader(DataLoader):
    """A DataLoader whose kept workers (``persistent_workers=True``) start every epoch as fresh ones would: each
    ``iter()`` draws the epoch's base seed from the main process's RNG, as a new iterator does, and publishes it
    through the data set's :class:`WorkerSeed` (new workers seed themselves). A pass left unfinished
    (``train.max_iters_per_epoch``) may still have batches in flight, so its workers are stopped and fresh ones
    started (their caches start empty)."""

    def __iter__(self) -> Iterator[Any]:
        if self.persistent_workers:
            it = self._iterator
            if it is not None and it._num_yielded < len(self):
                it._shutdown_workers()
                self._iterator = it = None
            base = -1 if it is None else int(torch.empty((), dtype=torch.int64).random_(generator=self.generator))
            seed = worker_seed_of(self.dataset)
            if seed is not None:
                seed.publish(base)
        return super().__iter__()


def build_loaders(cfg: Any, train_ds: Dataset | None, val_ds: Dataset | None, info: DistInfo, *,
                  collate_fn: Callable | None = None) -> tuple[DataLoader | None, DataLoader | None]:
    """Train loader (seeded DistributedSampler, set_epoch each epoch, drop_last) and val loader (ShardedSampler).

    ``cfg.data`` is a :class:`core.engine.config.LoaderConfig`; ``cfg.train.seed`` seeds the shuffling. A data set
    with a :class:`WorkerSeed` (the decoded-video cache, ``data.decoded_cache_mb``) keeps its workers between
    epochs (``persistent_workers``), so what they hold lasts the run.
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
                            f"{d.batch_size}")
        train_loader = EpochLoader(train_ds, batch_size=d.batch_size, sampler=sampler, num_workers=d.num_workers,
                                   pin_memory=pin, drop_last=True, collate_fn=collate_fn,
                                   persistent_workers=_keep_workers(train_ds, d.num_workers))
    if val_ds is not None:
        val_loader = EpochLoader(val_ds, batch_size=d.eval_batch_size or d.batch_size,
                                 sampler=ShardedSampler(len(val_ds), info.world_size, info.rank),
                                 num_workers=d.num_workers, pin_memory=pin, drop_last=False, collate_fn=collate_fn,
                                 persistent_workers=_keep_workers(val_ds, d.num_workers))
    return train_loader, val_loader


def _keep_workers(ds: Dataset, num_workers: int) -> bool:
    """Workers kept between epochs: there are workers and the data set keeps state in them."""
    return num_workers > 0 and worker_seed_of(ds) is not None
