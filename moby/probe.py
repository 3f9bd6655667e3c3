"""Linear probe on cached features of a frozen backbone: the features of each split are computed once (backbone in
eval mode, fixed centre view), saved next to the run, and a linear classifier is trained on them as a Task."""
from __future__ import annotations

import os
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.classification.task import evaluate_classification
from core.engine import distributed as du
from core.engine.files import atomic_save
from core.engine.task import EvalEnv, Task

from .knn import extract_features

__all__ = ["LinearProbe", "cached_features", "standardize"]


class LinearProbe(Task):
    """A linear classifier on feature vectors: ``batch = (features, labels)``; its weights are the deliverable."""

    backbone_attr = "classifier"
    best_metric = "top1"

    def __init__(self, in_dim: int, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(in_dim, num_classes)
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        logits = self.classifier(batch[0])
        return {"loss": F.cross_entropy(logits, batch[1])}

    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        if loader is None:
            return {}
        return evaluate_classification(self.classifier, loader, env.device, None)

    def describe(self, metrics: Mapping[str, float]) -> str:
        return f"probe top-1 {metrics.get('top1', float('nan')):.2f}%"


def _source_id(path: str) -> list[Any]:
    """What the cached features were computed from: the checkpoint's path, size and mtime (or 'random')."""
    if not path:
        return ["random"]
    st = os.stat(path)
    return [os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns)]


def cached_features(backbone: nn.Module, loader: Any, env: EvalEnv, cache: str, source: str, model_name: str,
                    seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features (N, C) and labels of a loader's dataset, from ``cache`` when it was made from the same weights."""
    key = {"source": _source_id(source), "model": model_name, "seed": seed}
    if os.path.isfile(cache):
        saved = torch.load(cache, map_location="cpu", weights_only=True)
        if saved.get("key") == key:
            return saved["features"], saved["labels"]
    feats, labels = extract_features(backbone, loader, env, normalize=False)
    if du.is_main():
        atomic_save({"key": key, "features": feats, "labels": labels}, cache)
    return feats, labels


def standardize(train: torch.Tensor, *others: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Every feature set shifted and scaled by the training set's per-dimension mean and std."""
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    return tuple((f - mean) / std for f in (train, *others))
