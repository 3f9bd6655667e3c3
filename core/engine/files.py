"""Atomic file writes: a temporary file next to the target, fsync, then ``os.replace`` (readers never see half a file).

A write that fails for want of space (or a quota, a read-only or unwritable folder) raises :class:`WriteError`, one
line naming the file, its folder and the free space there (torch.save's own ``unexpected pos`` errors included).
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import shutil
import tempfile
from typing import Any, Iterator, Mapping

import torch

__all__ = ["WriteError", "write_error", "atomic_target", "atomic_save", "atomic_copy", "atomic_write_text", "write_json",
           "read_json", "to_plain"]

# errors that say the folder cannot take the file (not a bug of the caller, such as a missing source)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO}


class WriteError(OSError):
    """A file could not be written; the message names the file, the folder and the free space there."""


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def free_space(directory: str) -> str:
    """Free space of the file system holding ``directory``, for people ('412.0 KB'); '?' when unknown."""
    try:
        return _human(shutil.disk_usage(directory).free)
    except OSError:
        return "?"


def _is_write_failure(e: BaseException) -> bool:
    if isinstance(e, WriteError):
        return False  # already described
    if isinstance(e, OSError):
        return e.errno in _WRITE_ERRNOS
    # torch.save wraps the OSError of a full disk: "unexpected pos N vs M", "... failed writing file ...: file write failed"
    return isinstance(e, RuntimeError) and ("unexpected pos" in str(e) or "write failed" in str(e))


def write_error(path: str, e: BaseException) -> WriteError:
    """One line for a failed write of ``path``: the reason, the folder and its free space."""
    folder = os.path.dirname(os.path.abspath(path))
    if isinstance(e, OSError) and e.strerror:
        reason = e.strerror
    else:
        last = re.sub(r"^\[enforce fail at [^\]]*\][ .]*", "", str(e).strip().splitlines()[-1])
        reason = f"the write failed ({last.strip(' .')})"
    err = WriteError(f"cannot write {os.path.basename(path)} into {folder}: {reason}; {free_space(folder)} free there")
    err.folder, err.reason = folder, reason
    return err


def _fsync_file(path: str) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


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
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp", dir=directory)
        os.close(fd)
        # mkstemp makes 0600 files; give the file the mode a plain open() would (0666 less the umask) so colleagues
        # on a shared file system can read checkpoints and results
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as e:
        raise (write_error(path, e) if _is_write_failure(e) else e) from None
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, path)
        _fsync_dir(directory)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if _is_write_failure(e):
            raise write_error(path, e) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def read_json(path: str) -> dict[str, Any]:
    """A JSON file's object, {} when it is missing or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}
