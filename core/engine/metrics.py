"""Metrics: top-k counts, running averages, and the run log (metrics.jsonl + TensorBoard)."""
from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any, Mapping

import torch

from .files import to_plain, write_error

__all__ = ["topk_correct", "AverageMeter", "RunLogger", "setup_logging"]

_LOGGER_NAME = "swin"


def topk_correct(output: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1, 5)) -> list[int]:
    """Number of samples whose target is among the top-k scores, for each k (k clipped to #classes)."""
    if target.ndim > 1:  # soft / one-hot targets
        target = target.argmax(dim=-1)
    maxk = min(max(topk), output.shape[-1])
    pred = output.topk(maxk, dim=-1).indices  # (N, maxk)
    hit = pred.eq(target.view(-1, 1))
    return [int(hit[:, :min(k, maxk)].any(dim=1).sum()) for k in topk]


class AverageMeter:
    """Running sum / count / average of a scalar."""

    def __init__(self) -> None:
        self.sum, self.count, self.val = 0.0, 0, 0.0

    def update(self, val: float, n: int = 1) -> None:
        self.val = float(val)
        self.sum += float(val) * n
        self.count += n

    @property
    def avg(self) -> float:
        return self.sum / max(1, self.count)


class _QuietFileHandler(logging.FileHandler):
    """log.txt: a line that cannot be written (a full disk) is lost quietly instead of printing a traceback; the
    error itself reaches the console."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's name
        pass


def setup_logging(output_dir: str | None, is_main: bool, name: str = _LOGGER_NAME) -> logging.Logger:
    """Logger printing on rank 0 (warnings on others) and writing ``log.txt`` on rank 0."""
    log = logging.getLogger(name)
    log.setLevel(logging.INFO if is_main else logging.WARNING)
    log.propagate = False
    for h in list(log.handlers):
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S")
    sh = logging.StreamHandler(sys.stdout)
    sh.setFormatter(fmt)
    log.addHandler(sh)
    if is_main and output_dir:
        os.makedirs(output_dir, exist_ok=True)
        fh = _QuietFileHandler(os.path.join(output_dir, "log.txt"))
        fh.setFormatter(fmt)
        log.addHandler(fh)
    # Python warnings (skipped files, missing entries) are shown as usual and also written to log.txt; library
    # warnings that every rank would repeat (timm's scheduler, DDP) are shown by rank 0 only
    file_log = logging.getLogger(name + ".warnings")
    file_log.propagate = False
    for h in list(file_log.handlers):
        file_log.removeHandler(h)
    for h in log.handlers:
        if isinstance(h, logging.FileHandler):
            file_log.addHandler(h)
    if not file_log.handlers:  # no log.txt (ranks > 0): nothing, not logging's last-resort print to stderr
        file_log.addHandler(logging.NullHandler())
    prev = getattr(warnings.showwarning, "_shown_by", warnings.showwarning)

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        prev(message, category, filename, lineno, file, line)
        file_log.warning(f"{category.__name__}: {message}")

    showwarning._shown_by = prev
    warnings.showwarning = showwarning
    logging.getLogger("timm.scheduler").setLevel(logging.ERROR)  # "cosine ... will have no effect" on short runs
    if not is_main:
        warnings.filterwarnings("ignore", module=r"torch\.")
        logging.getLogger("timm").setLevel(logging.ERROR)
    return log


class RunLogger:
    """Append rows to ``metrics.jsonl`` and scalars to TensorBoard; a no-op on non-main ranks."""

    def __init__(self, output_dir: str | None, enabled: bool = True, tensorboard: bool = True) -> None:
        self.enabled = enabled and bool(output_dir)
        self.path = os.path.join(output_dir, "metrics.jsonl") if self.enabled else None
        self.tb = None
        if self.enabled:
            os.makedirs(output_dir, exist_ok=True)
            if tensorboard:
                try:
                    from torch.utils.tensorboard import SummaryWriter
                    self.tb = SummaryWriter(os.path.join(output_dir, "tb"))
                except ImportError:  # tensorboard not installed: jsonl only
                    logging.getLogger(_LOGGER_NAME).warning("tensorboard is not installed; logging to jsonl only")

    def log(self, kind: str, step: int, values: Mapping[str, Any]) -> None:
        """Write one row ``{"kind", "step", **values}``; numeric values also go to TensorBoard as kind/name."""
        if not self.enabled:
            return
        row = {"kind": kind, "step": step, **{k: to_plain(v) for k, v in values.items()}}
        try:
            with open(self.path, "a") as f:
                f.write(json.dumps(row) + "\n")
        except OSError as e:
            raise write_error(self.path, e) from None
        if self.tb is not None:
            for k, v in row.items():
                if k not in ("kind", "step") and isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def truncate(self, train_step: int, epoch: int) -> int:
        """Drop the rows past a resumed position (written after the checkpoint by a run that was then killed), so a
        continued run logs each step once; returns how many were dropped."""
        if not self.enabled or not os.path.isfile(self.path):
            return 0
        with open(self.path) as f:
            lines = f.read().splitlines()
        keep = []
        for line in lines:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut by the kill
            limit = {"train": train_step, "epoch": epoch}.get(row.get("kind"))
            if limit is None or row.get("step", 0) <= limit:
                keep.append(line)
        if len(keep) != len(lines):
            from .files import atomic_write_text
            atomic_write_text(self.path, "".join(k + "\n" for k in keep))
        return len(lines) - len(keep)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
            self.tb = None
