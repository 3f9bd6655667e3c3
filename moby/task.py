"""MoBY (MoCo v2 + BYOL) as a :class:`core.engine.Task`: online backbone -> projector -> predictor, momentum
target backbone -> projector, a symmetric contrastive loss against two key queues.

    task = MoBY(online_backbone, target_backbone, proj_dim=256, hidden_dim=4096, queue_len=4096)
    out = task((view1, view2))          # {"loss", "momentum"}; keys of both views enter the queues
    task.after_update(step, total)      # momentum update of the target, k += 1

On clips, ``reverse_negatives=True`` makes the target also embed each key clip played backwards: that key has the
positive's appearance and the opposite motion, an extra negative of the other view's query (not enqueued), so
only the direction of time tells the positive from it (``time_top1``: % of queries that rank it below the
positive; 50 = blind to the direction). That alone leaves a time-symmetric network where it starts (the gradient only
reaches the query, and the keys differ from their reversals only as much as the target already tells time apart:
measured, ``time_top1`` stays at 50); ``reverse_views=True`` also passes the reversed clips through the online
encoder: each is a query of its own (positive: the other view's reversed key) and a negative of its forward
embedding, with gradients through both, which is what breaks the symmetry.

Everything (target weights, queues, pointer, momentum counter k) is a parameter or buffer, so the engine's
checkpoints save and resume it; the backbone alone is the deliverable (``backbone_attr = "encoder"``).
"""
from __future__ import annotations

import copy
import math
from typing import Any, Iterator, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.convert import register_layout
from core.engine import distributed as du
from core.engine.task import EvalEnv, Task

__all__ = ["MLPHead", "momentum_at", "reverse_time", "contrastive_loss", "time_top1", "enqueue", "MoBY"]


class MLPHead(nn.Module):
    """Projector / predictor: Linear(in, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, out), no output BN."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def momentum_at(k: int, total: int, base: float = 0.99) -> float:
    """m = 1 - (1 - base) * (cos(pi k / K) + 1) / 2: ``base`` at k = 0, 1 at k = K."""
    return 1.0 - (1.0 - base) * (math.cos(math.pi * k / max(total, 1)) + 1.0) / 2.0


def reverse_time(x: torch.Tensor) -> torch.Tensor:
    """A batch of clips (N, C, T, H, W) played backwards (flipped along T)."""
    if x.dim() != 5:
        raise ValueError(f"reverse_time needs clips (N, C, T, H, W), got a {x.dim()}-D tensor {tuple(x.shape)}")
    return torch.flip(x, dims=(2,))


def contrastive_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float,
                     extra_neg: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of [q.k, q.queue] / T with the positive at index 0 (q, k, queue rows L2-normalised).

    ``extra_neg`` (N, D) or (N, E, D), paired row-wise with ``q``: more negatives per query,
    [q.k, q.extra_neg, q.queue]."""
    pos = (q * k).sum(1, keepdim=True)
    neg = q @ queue.t()
    if extra_neg is not None:
        extra = extra_neg if extra_neg.dim() == 3 else extra_neg[:, None]
        neg = torch.cat([torch.einsum("nd,ned->ne", q, extra), neg], 1)
    logits = torch.cat([pos, neg], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


@torch.no_grad()
def time_top1(q: torch.Tensor, k: torch.Tensor, k_rev: torch.Tensor) -> torch.Tensor:
    """% of the queries ``q`` (N, D) that score their positive ``k`` above its time-reversed ``k_rev`` (row-wise)."""
    return 100.0 * ((q * k).sum(1) > (q * k_rev).sum(1)).float().mean()


@torch.no_grad()
def enqueue(queue: torch.Tensor, ptr: torch.Tensor, keys: torch.Tensor) -> None:
    """Write ``keys`` into the ring buffer ``queue`` (L, D) at ``ptr`` (wrapping around), advance ``ptr``."""
    n, length = len(keys), len(queue)
    idx = (int(ptr) + torch.arange(n, device=queue.device)) % length
    queue[idx] = keys.to(queue.dtype)
    ptr.fill_((int(ptr) + n) % length)


class MoBY(Task):
    """The MoBY task on any backbone built with ``num_classes=0`` (its forward gives pooled features)."""

    backbone_attr = "encoder"
    best_metric = "knn_top1"

    def __init__(self, encoder: nn.Module, encoder_k: nn.Module, *, proj_dim: int = 256, hidden_dim: int = 4096,
                 queue_len: int = 4096, temperature: float = 0.2, momentum: float = 0.99,
                 knn_k: int = 20, knn_temperature: float = 0.07, reverse_negatives: bool = False,
                 reverse_views: bool = False) -> None:
        super().__init__()
        dim = encoder.num_features
        self.encoder = encoder
        self.projector = MLPHead(dim, hidden_dim, proj_dim)
        self.predictor = MLPHead(proj_dim, hidden_dim, proj_dim)
        self.encoder_k = encoder_k
        self.encoder_k.load_state_dict(encoder.state_dict())
        self.projector_k = copy.deepcopy(self.projector)
        for p in (*self.encoder_k.parameters(), *self.projector_k.parameters()):
            p.requires_grad = False
        self.temperature, self.base_momentum = temperature, momentum
        self.knn_k, self.knn_temperature = knn_k, knn_temperature
        self.reverse_negatives, self.reverse_views = reverse_negatives, reverse_views
        queues = F.normalize(torch.randn(2, queue_len, proj_dim), dim=-1)
        self.register_buffer("queue1", queues[0].clone())  # keys of view 1 (the negatives of view 2's predictions)
        self.register_buffer("queue2", queues[1].clone())
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("k", torch.zeros((), dtype=torch.long))  # momentum updates done so far
        self.register_buffer("momentum", torch.tensor(float(momentum), dtype=torch.float64))  # the last one used

    # ------------------------------------------------------------------------------------------ training
    def _views(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, Mapping):
            return batch["view1"], batch["view2"]
        return batch[0], batch[1]

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        x1, x2 = self._views(batch)
        n = len(x1)
        reversed_ = [reverse_time(x1), reverse_time(x2)] if self.reverse_negatives or self.reverse_views else []
        online = [x1, x2, *reversed_] if self.reverse_views else [x1, x2]
        feats = self.encoder(torch.cat(online))            # one pass over all views (no BN in the backbone)
        preds = [self.predictor(self.projector(f)) for f in feats.split(n)]  # the heads' BN: one view at a time
        with torch.no_grad():
            feats_k = self.encoder_k(torch.cat([x1, x2, *reversed_]))
            dt = self.queue1.dtype  # float32 under autocast too
            keys = [F.normalize(self.projector_k(f).to(dt), dim=1) for f in feats_k.split(n)]
        with torch.autocast(x1.device.type, enabled=False):  # similarities / 0.2 in full precision
            qs = [F.normalize(p.to(dt), dim=1) for p in preds]
            # the queues are cloned: the enqueue below writes into them while the graph still needs these values
            queues = (self.queue2.clone(), self.queue1.clone())
            loss = sum(contrastive_loss(q, k, queue, self.temperature, neg)
                       for q, k, queue, neg in self._pairs(qs, keys, queues)) * 2 / len(qs)
        out = {"loss": loss, "momentum": self.momentum.clone()}
        if reversed_:
            out["time_top1"] = time_top1(torch.cat(qs[:2]), torch.cat([keys[1], keys[0]]),
                                         torch.cat([keys[3], keys[2]]))
        self._enqueue(keys[0], keys[1])  # the reversed keys are not
        return out

    def _pairs(self, qs: list[torch.Tensor], keys: list[torch.Tensor], queues: tuple[torch.Tensor, torch.Tensor]
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]]:
        """(query, positive key, queue, extra negatives) of each term: the query of a view against the other view's
        key in the same direction of time; the extra negatives are that key played the other way (target) and,
        with reverse_views, the query's own clip played the other way (online, with gradient)."""
        other = (1, 0, 3, 2)                                # view 1 <-> view 2, forward and reversed alike
        flip = (2, 3, 0, 1)                                 # the same clip in the other direction
        for i, q in enumerate(qs):
            negs = []
            if len(keys) == 4:
                negs.append(keys[flip[other[i]]])
            if self.reverse_views:
                negs.append(qs[flip[i]])
            yield q, keys[other[i]], queues[i % 2], torch.stack(negs, 1) if negs else None

    @torch.no_grad()
    def _enqueue(self, k1: torch.Tensor, k2: torch.Tensor) -> None:
        """Keys of every rank, in rank order, into both queues: all ranks hold the same queues."""
        k1, k2 = du.all_gather_cat(k1.contiguous()), du.all_gather_cat(k2.contiguous())
        ptr = self.queue_ptr.clone()
        enqueue(self.queue1, ptr, k1)
        enqueue(self.queue2, self.queue_ptr, k2)

    @torch.no_grad()
    def after_update(self, step: int, total_steps: int) -> None:
        """target <- m * target + (1 - m) * online, with m at iteration k + 1 of K = total_steps."""
        self.k += 1
        m = momentum_at(int(self.k), total_steps, self.base_momentum)
        self.momentum.fill_(m)
        for online, target in ((self.encoder, self.encoder_k), (self.projector, self.projector_k)):
            on, tg = list(online.parameters()), list(target.parameters())
            torch._foreach_mul_(tg, m)
            torch._foreach_add_(tg, on, alpha=1.0 - m)

    # ------------------------------------------------------------------------------------------ evaluation
    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        """Weighted kNN top-1 / top-5 of the online backbone's features (loader: a :class:`moby.knn.KNNLoaders`)."""
        if loader is None:
            return {}
        from .knn import knn_evaluate
        return knn_evaluate(self.encoder, loader, env, k=self.knn_k, temperature=self.knn_temperature)

    def describe(self, metrics: Mapping[str, float]) -> str:
        return f"kNN top-1 {metrics.get('knn_top1', float('nan')):.2f}%"


def _is_moby(keys: list[str]) -> bool:
    """Official Transformer-SSL MoBY: encoder, encoder_k, projector(_k), predictor, queue1/2, queue_ptr."""
    return any(k.startswith(("encoder_k.", "predictor.", "queue1")) for k in keys)


register_layout("moby", _is_moby)
