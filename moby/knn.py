"""Features of a frozen backbone and the weighted kNN monitor (k = 20, T = 0.07, as in InstDisc / DINO).

Evaluation datasets yield ``(input, label, index)`` (or the video dict with ``video``, ``label``, ``index``);
each rank embeds its shard and :func:`core.engine.distributed.gather_by_index` rebuilds the full set on every
rank, in dataset order, so the metric equals a single-process run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from core.engine import distributed as du
from core.engine.device import autocast, to_device
from core.engine.task import EvalEnv

__all__ = ["KNNLoaders", "pooled_features", "extract_features", "knn_predict", "knn_evaluate"]


@dataclass
class KNNLoaders:
    """The kNN monitor's two labelled loaders: the bank (training split) and the queries (held-out split)."""
    bank: DataLoader
    query: DataLoader


def pooled_features(backbone: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Globally pooled features after the final norm (the classifier's input), whatever the head."""
    return backbone.forward_head(backbone.forward_features(x), pre_logits=True)


def _unpack(batch: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        x = batch["video"]
        return (x[:, 0] if x.dim() == 6 else x), batch["label"], batch["index"]  # one view per video
    return batch[0], batch[1], batch[2]


@torch.no_grad()
def extract_features(backbone: nn.Module, loader: DataLoader, env: EvalEnv,
                     normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(features (N, C) float32 on the CPU, labels (N,)) of the whole dataset on every rank, in dataset order."""
    was_training = backbone.training
    backbone.eval()
    idx, feats, labels = [], [], []
    for batch in tqdm(loader, desc="features", leave=False, disable=not (env.progress and du.is_main()),
                      mininterval=1.0):
        x, y, i = _unpack(batch)
        with autocast(env.device, env.amp_dtype):
            f = pooled_features(backbone, to_device(x, env.device))
        f = f.float()
        feats.append((F.normalize(f, dim=1) if normalize else f).cpu())
        labels.append(torch.as_tensor(y).cpu())
        idx.append(torch.as_tensor(i).cpu())
    backbone.train(was_training)
    _, f, y = du.gather_by_index(torch.cat(idx) if idx else torch.empty(0, dtype=torch.long),
                                 torch.cat(feats) if feats else torch.empty(0),
                                 torch.cat(labels) if labels else torch.empty(0, dtype=torch.long))
    return f, y


def knn_predict(query: torch.Tensor, bank: torch.Tensor, bank_labels: torch.Tensor, num_classes: int,
                k: int = 20, temperature: float = 0.07, chunk: int = 1024) -> torch.Tensor:
    """Class scores (Nq, num_classes): each of the k most cosine-similar bank items votes exp(sim / T)."""
    k = min(k, len(bank))
    out = []
    for q in query.split(chunk):
        sim, nn_idx = (q @ bank.t()).topk(k, dim=1)
        weights = (sim / temperature).exp()
        votes = torch.zeros(len(q), num_classes, dtype=weights.dtype)
        votes.scatter_add_(1, bank_labels[nn_idx], weights)
        out.append(votes)
    return torch.cat(out) if out else torch.zeros(0, num_classes)


def knn_evaluate(backbone: nn.Module, loaders: KNNLoaders, env: EvalEnv, k: int = 20,
                 temperature: float = 0.07) -> dict[str, float]:
    """Weighted kNN top-1 / top-5 (%) of L2-normalised pooled features: queries against the bank."""
    bank, bank_y = extract_features(backbone, loaders.bank, env)
    query, query_y = extract_features(backbone, loaders.query, env)
    num_classes = int(max(bank_y.max(), query_y.max())) + 1
    scores = knn_predict(query, bank, bank_y, num_classes, k, temperature)
    top = scores.topk(min(5, num_classes), dim=1).indices
    hit = top == query_y[:, None]
    n = max(1, len(query_y))
    return {"knn_top1": 100.0 * float(hit[:, 0].sum()) / n, "knn_top5": 100.0 * float(hit.any(1).sum()) / n}
