"""Training curves from run folders' metrics.jsonl: loss and lr per logged interval, a metric per epoch."""
from __future__ import annotations

import json
import os
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

__all__ = ["read_metrics", "plot_runs"]


def read_metrics(run: str) -> dict[str, list[dict]]:
    """Rows of metrics.jsonl grouped by kind ('train', 'epoch', 'eval')."""
    rows: dict[str, list[dict]] = {}
    with open(os.path.join(run, "metrics.jsonl")) as f:
        for line in f:
            row = json.loads(line)
            rows.setdefault(row.get("kind", "train"), []).append(row)
    return rows


def plot_runs(runs: Sequence[str], out: str, metric: str = "top1") -> str:
    """Draw loss, lr and the per-epoch ``metric`` (validation top-1, or e.g. MoBY's knn_top1) of every run."""
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for run in runs:
        rows = read_metrics(run)
        label = os.path.basename(os.path.normpath(run))
        train = rows.get("train", [])
        per_epoch = max((r["iter"] for r in train), default=1)
        x = [r["epoch"] - 1 + r["iter"] / per_epoch for r in train]
        axes[0].plot(x, [r["loss"] for r in train], label=label)
        axes[1].plot(x, [r["lr"] for r in train], label=label)
        evals = [r for r in rows.get("epoch", []) if metric in r]
        axes[2].plot([r["epoch"] for r in evals], [r[metric] for r in evals], marker="o", label=label)
    third = "validation top-1 (%)" if metric == "top1" else f"{metric} (%)" if "top" in metric else metric
    for ax, title in zip(axes, ("training loss", "learning rate", third)):
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
