"""Classification as a task: images (Swin, Swin-MLP) and, through a subclass, Video Swin.

The task owns the classifier (its deliverable), the criterion and timm's Mixup / CutMix; its evaluation is
top-1 / top-5 and mean cross-entropy, summed exactly across ranks.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from ..engine import distributed as du
from ..engine.device import autocast, to_device
from ..engine.metrics import topk_correct
from ..engine.task import EvalEnv, Task
from .config import AugConfig

__all__ = ["ClassificationTask", "evaluate_classification", "build_mixup", "classification_loss"]


def build_mixup(aug: AugConfig, num_classes: int) -> Callable | None:
    """timm Mixup/CutMix (with label smoothing folded in) when aug.mixup or aug.cutmix > 0, else None."""
    if not aug.mixing:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=aug.mixup, cutmix_alpha=aug.cutmix, cutmix_minmax=aug.cutmix_minmax,
                 prob=aug.mixup_prob, switch_prob=aug.mixup_switch_prob, mode=aug.mixup_mode,
                 label_smoothing=aug.label_smoothing, num_classes=num_classes)


def classification_loss(aug: AugConfig, mixup_active: bool) -> nn.Module:
    """SoftTargetCrossEntropy with mixup, else label-smoothed (or plain) cross-entropy."""
    from timm.loss import SoftTargetCrossEntropy
    if mixup_active:
        return SoftTargetCrossEntropy()
    return nn.CrossEntropyLoss(label_smoothing=aug.label_smoothing)


@torch.no_grad()
def evaluate_classification(model: nn.Module, loader: Any, device: torch.device,
                            amp_dtype: torch.dtype | None = None, topk: tuple[int, ...] = (1, 5),
                            progress: bool = False) -> dict[str, float]:
    """Top-k accuracy (%) and mean cross-entropy over the whole dataset, summed exactly across ranks.

    Targets < 0 (unreadable images) are left out. The loader's sampler must shard without padding
    (:class:`core.engine.distributed.ShardedSampler`) for the result to equal a single-process run.
    """
    model.eval()
    stats = torch.zeros(len(topk) + 2, dtype=torch.float64)  # correct@k..., loss_sum, count
    for x, y in tqdm(loader, desc="eval", leave=False, disable=not (progress and du.is_main()), mininterval=1.0):
        x, y = to_device(x, device), to_device(y, device)
        keep = y >= 0
        if not bool(keep.all()):
            x, y = x[keep], y[keep]
        if y.numel() == 0:
            continue
        with autocast(device, amp_dtype):
            out = model(x)
        out = out.float()
        for i, c in enumerate(topk_correct(out, y, topk)):
            stats[i] += c
        stats[-2] += float(F.cross_entropy(out, y, reduction="sum"))
        stats[-1] += y.numel()
    stats = du.all_reduce_sum(stats.to(device)).cpu() if du.is_dist() else stats
    n = max(1.0, float(stats[-1]))
    res = {f"top{k}": 100.0 * float(stats[i]) / n for i, k in enumerate(topk)}
    res.update(loss=float(stats[-2]) / n, count=int(stats[-1]))
    return res


class ClassificationTask(Task):
    """Supervised classification of ``batch = (inputs, targets)`` with an optional Mixup / CutMix."""

    backbone_attr = "model"
    best_metric = "top1"

    def __init__(self, model: nn.Module, criterion: nn.Module | None = None, mixup: Callable | None = None,
                 train_set: Any = None) -> None:
        super().__init__()
        self.model = model
        self.criterion = criterion if criterion is not None else nn.CrossEntropyLoss()
        self.mixup = mixup
        self._train_set = train_set  # for its count of unreadable samples, if it keeps one

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        x, y = batch[0], batch[1]
        if self.mixup is not None:
            x, y = self.mixup(x, y)
        return {"loss": self.criterion(self.model(x).float(), y)}  # the loss in fp32 under bf16 / fp16 autocast

    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        if loader is None:
            return {}
        topk = (1, 5) if getattr(self.model, "num_classes", 1000) > 5 else (1,)  # no top-5 of 5 classes or fewer
        return evaluate_classification(self.model, loader, env.device, env.amp_dtype, topk, progress=env.progress)

    def describe(self, metrics: Mapping[str, float]) -> str:
        return " ".join(f"top-{k[3:]} {v:.2f}%" for k, v in metrics.items() if k.startswith("top") and k[3:].isdigit())

    def end_epoch(self) -> dict[str, float]:
        skipped = getattr(self._train_set, "num_skipped", 0)
        if skipped:
            logging.getLogger("swin").warning(f"{skipped} unreadable training image(s) skipped so far (see warnings)")
        return {}
