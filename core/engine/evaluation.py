"""Evaluation inside a run: the task's metrics (and the EMA model's, prefixed ``ema_``) and the best epoch so far."""
from __future__ import annotations

from typing import Any, Mapping

from .task import EvalEnv, Task

__all__ = ["evaluate", "BestTracker"]


def evaluate(task: Task, ema_task: Task | None, loader: Any, env: EvalEnv) -> dict[str, float]:
    """``task.evaluate`` on ``loader``, and the EMA model's metrics as ``ema_<name>``."""
    metrics = dict(task.evaluate(loader, env))
    if ema_task is not None:
        metrics.update({f"ema_{k}": v for k, v in dict(ema_task.evaluate(loader, env)).items()})
    return metrics


class BestTracker:
    """The metrics of the best epoch by ``key`` (higher is better), for the model and for its EMA."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.best: dict[str, Any] = {}
        self.best_ema: dict[str, Any] = {}

    def update(self, metrics: Mapping[str, float], epoch: int) -> bool:
        """Record ``metrics`` of ``epoch`` where they improve; whether the model (not its EMA) improved."""
        key, improved = self.key, False
        if key in metrics and (not self.best or metrics[key] > self.best[key]):
            self.best = {k: v for k, v in metrics.items() if not k.startswith("ema_")}
            self.best["epoch"] = epoch
            improved = True
        ek = f"ema_{key}"
        if ek in metrics and (not self.best_ema or metrics[ek] > self.best_ema[key]):
            self.best_ema = {k[4:]: v for k, v in metrics.items() if k.startswith("ema_")}
            self.best_ema["epoch"] = epoch
        return improved

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {"best": dict(self.best), "best_ema": dict(self.best_ema)}

    def load_state_dict(self, ckpt: Mapping[str, Any]) -> None:
        self.best = dict(ckpt.get("best", {}))
        self.best_ema = dict(ckpt.get("best_ema", {}))
