"""Evaluation inside a run: the task's metrics (and the EMA model's, prefixed ``ema_``) and the best epoch so far."""
from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from .callbacks import Loop
from .files import write_json
from .task import EvalEnv, Task

__all__ = ["evaluate", "BestTracker", "finish_run"]


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


def finish_run(tr: Loop, history: Sequence[Mapping[str, Any]], elapsed: float) -> dict[str, Any]:
    """The run's results (best and final epochs, size, time): logged, and written to results.json on rank 0."""
    best, best_ema = tr.state.best.best, tr.state.best.best_ema
    results = {
        "name": tr.cfg.name, "model": tr.cfg.model.name, "epochs": tr.state.epoch,
        "global_batch": tr.geo.global_batch, "world_size": tr.info.world_size, "time_s": elapsed,
        "params": sum(p.numel() for p in tr.task.backbone.parameters()),
        "best": best, "best_ema": best_ema,
        "final": history[-1] if history else {},
    }
    if best:
        msg = f"best {tr.task.describe(best)} at epoch {best.get('epoch')}"
        if best_ema:
            msg += f"; EMA best {tr.task.describe(best_ema)}"
    else:
        msg = "no evaluation metrics"
    tr.log.info(f"done in {elapsed:.1f}s: {msg}")
    if tr.info.is_main:
        write_json(os.path.join(tr.output_dir, "results.json"), results)
    return results
