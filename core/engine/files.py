"""Atomic file writes: a temporary file next to the target, fsync, then ``os.replace`` (readers never see half a file)."""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from typing import Any, Iterator, Mapping

import torch

__all__ = ["atomic_target", "atomic_save", "atomic_copy", "atomic_write_text", "write_json", "to_plain"]


def _fsync_dir(directory: str) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_target(path: str) -> Iterator[str]:
    """Yield a temporary path next to ``path``; on success fsync it and ``os.replace`` it into place, else remove it."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save`` to a temporary file next to ``path``, fsync, then ``os.replace`` into place."""
    with atomic_target(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def atomic_copy(src: str, dst: str) -> None:
    """Copy ``src`` to ``dst`` through a temporary file and ``os.replace``."""
    with atomic_target(dst) as tmp:
        shutil.copyfile(src, tmp)


def atomic_write_text(path: str, text: str) -> None:
    """Write a text file atomically."""
    with atomic_target(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def to_plain(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        v = v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if isinstance(v, Mapping):
        return {k: to_plain(x) for k, x in v.items()}
    return v


def write_json(path: str, obj: Mapping[str, Any]) -> None:
    """Write a JSON file atomically (tensors as numbers or lists, non-finite floats as strings)."""
    atomic_write_text(path, json.dumps(to_plain(obj), indent=2))
