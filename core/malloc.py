"""glibc malloc tuning for a process: keep the heap from growing when inputs keep changing size (glibc only).

glibc serves large blocks from the heap once freed mmapped blocks have raised its dynamic mmap threshold, and
activations of ever new sizes then fragment the heap: Swin-T over 100 image sizes grew the process by ~800 MB
with every cache bounded. Once a process has built :data:`SWITCH_AFTER` shifted-window masks (about 4 input sizes
of a 4-stage model; a fixed size builds at most one per stage), blocks above :data:`THRESHOLD` bytes are mmapped and returned
to the system on free (``mallopt(M_MMAP_THRESHOLD)``, as ``MALLOC_MMAP_THRESHOLD_`` would), and the free heap is
trimmed once. Fixed-size training and inference never switch. ``$SWIN_SUITE_MALLOC=off`` keeps glibc's default;
a ``MALLOC_MMAP_THRESHOLD_`` set by the user is left alone.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
import time

ENV_VAR = "SWIN_SUITE_MALLOC"
THRESHOLD = 128 * 1024
SWITCH_AFTER = 16
TRIM_EVERY_S = 5.0  # after the switch, free heap pages are returned at most this often (a trim of 1 GB: ~25 ms)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number

_lock = threading.Lock()
_built = 0
_state = "pending"  # pending -> switched | skipped
_last_trim = 0.0


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc (macOS, musl, Windows)
        return None


@functools.cache
def _skip_reason() -> str | None:
    if os.environ.get(ENV_VAR, "auto").strip().lower() in ("off", "0", "false", "no"):
        return f"${ENV_VAR}=off"
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return "MALLOC_MMAP_THRESHOLD_ is set"
    return None if _libc() is not None else "not glibc"


def _trim_if_due() -> None:
    global _last_trim
    now = time.monotonic()
    if now - _last_trim >= TRIM_EVERY_S:
        _last_trim = now
        _libc().malloc_trim(0)


def maybe_trim() -> None:
    """Return the heap's free pages to the system, at most every :data:`TRIM_EVERY_S` seconds (glibc only; not
    with ``$SWIN_SUITE_MALLOC=off``): for loops over thousands of inputs whose batches come and go."""
    if _state == "skipped" or (_state == "pending" and _skip_reason() is not None):
        return
    _trim_if_due()


def note_mask_built() -> None:
    """Count a shifted-window mask built; at :data:`SWITCH_AFTER`, switch to mmapping large blocks (once), then
    trim the heap's free pages on new masks at most every :data:`TRIM_EVERY_S` seconds."""
    global _built, _state, _last_trim
    if _state == "skipped":
        return
    if _state == "switched":
        _trim_if_due()
        return
    with _lock:
        _built += 1
        if _built < SWITCH_AFTER or _state != "pending":
            return
        reason = _skip_reason()
        if reason is not None:
            _state = "skipped"
            return
        libc = _libc()
        ok = libc.mallopt(_M_MMAP_THRESHOLD, THRESHOLD) == 1
        libc.malloc_trim(0)
        _last_trim = time.monotonic()
        _state = "switched" if ok else "skipped"
    if ok:
        logging.getLogger(__name__).info(
            "many input sizes: blocks over %d KB are now mmapped and returned on free (set %s=off to keep "
            "glibc's default)", THRESHOLD // 1024, ENV_VAR)


def heap_state() -> str:
    """'pending' (not yet many sizes), 'switched' or 'skipped'."""
    return _state
