"""Video classification as a task: clips (or their middle frame, the single-frame baseline) through a classifier,
unreadable videos skipped and counted, multi-view testing (clips x crops, scores averaged per video)."""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

import torch
import torch.nn as nn
from tqdm import tqdm

from ..classification.build import build_classification
from ..classification.task import ClassificationTask
from ..engine import EvalEnv, RunContext
from ..engine import distributed as du
from ..engine.data import DataError, build_loaders
from ..engine.device import autocast, to_device
from ..engine.metrics import topk_correct
from .config import VideoConfig
from .data import collate_videos
from .datasets import data_paths, run_datasets
from .pytorchvideo_data import build_pytorchvideo_loaders

__all__ = ["model_input", "view_scores", "predict_views", "view_metrics", "VideoClassificationTask",
           "setup_video"]


def model_input(x: torch.Tensor, single_frame: bool) -> torch.Tensor:
    """(B, C, T, H, W) clips, or their middle frame (B, C, H, W) for the single-frame 2D baseline."""
    return x[:, :, x.shape[2] // 2] if single_frame else x


@torch.no_grad()
def view_scores(model: nn.Module, x: torch.Tensor, device: torch.device, amp_dtype: torch.dtype | None,
                single_frame: bool = False) -> torch.Tensor:
    """(B, classes) softmax scores of (B, V, C, T, H, W) views, averaged over the V views of each video (on CPU)."""
    B, V = x.shape[:2]
    with autocast(device, amp_dtype):
        logits = model(model_input(x.flatten(0, 1), single_frame))
    return logits.float().softmax(-1).view(B, V, -1).mean(1).cpu()


@torch.no_grad()
def predict_views(model: nn.Module, loader, device: torch.device, amp_dtype: torch.dtype | None,
                  single_frame: bool = False, *, leave: bool = False
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Per video (in dataset order, gathered from every rank): view-averaged softmax scores, labels, indices.

    Each item holds all its views (clips x crops); the scores of a video are the mean over its views, as in
    the paper's 4x3-view testing. Unreadable videos are returned by path and left out of the scores. The progress
    bar (rank 0, stderr) is closed before this returns; ``leave=True`` leaves its last state on a line of its own
    (a command's result line then follows on its own line, also in a log that captures both streams).
    """
    model.eval()
    idx, scores, labels, skipped = [], [], [], []
    with tqdm(loader, desc="multi-view test", leave=leave, disable=not du.is_main(), mininterval=1.0) as bar:
        for batch in bar:
            skipped += batch["skipped"]
            if batch["video"] is None:
                continue
            batch = to_device(batch, device)
            scores.append(view_scores(model, batch["video"], device, amp_dtype, single_frame))
            labels.append(batch["label"].cpu())
            idx.append(batch["index"].cpu())
    index, scores, labels = du.gather_by_index(
        torch.cat(idx) if idx else torch.empty(0, dtype=torch.long), torch.cat(scores) if scores else torch.empty(0),
        torch.cat(labels) if labels else torch.empty(0, dtype=torch.long))
    return scores, labels, index, [s for part in du.all_gather_object(skipped) for s in part]


def view_metrics(scores: torch.Tensor, labels: torch.Tensor, skipped: Sequence[str]) -> dict[str, float]:
    """Top-1 (and top-5 when there are more than 5 classes) in % of view-averaged scores."""
    n = max(1, len(labels))
    ks = (1, 5) if scores.ndim == 2 and scores.shape[-1] > 5 else (1,)
    correct = topk_correct(scores, labels, ks) if len(labels) else [0] * len(ks)
    out = {f"top{k}": 100.0 * float(c) / n for k, c in zip(ks, correct)}
    return {**out, "count": len(labels), "skipped_videos": len(skipped)}


class VideoClassificationTask(ClassificationTask):
    """Classification of dict batches of clips: unreadable videos are skipped and counted, testing is multi-view."""

    def __init__(self, model: nn.Module, criterion: nn.Module, mixup: Any = None, *, clip_shape: tuple[int, ...],
                 single_frame: bool = False, max_skipped_fraction: float = 0.5,
                 sources: tuple[str, str] = ("the training data", "the validation data")) -> None:
        super().__init__(model, criterion, mixup)
        self.clip_shape = clip_shape  # (C, T, H, W) of a training clip
        self.single_frame = single_frame
        self.max_skipped_fraction = max_skipped_fraction
        self.sources = sources  # (training, validation) list file or folder, named when too much is unreadable
        self._skipped = 0
        self._seen = 0
        self._examples: list[str] = []  # a few unreadable files of this epoch (this rank's)

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self._skipped += len(batch["skipped"])
        self._seen += len(batch["skipped"]) + (0 if batch["video"] is None else len(batch["video"]))
        self._examples += batch["skipped"][:3 - len(self._examples)]
        if batch["video"] is None:  # the whole batch was unreadable: the trainer makes the zero step
            return None
        return super().forward((model_input(batch["video"], self.single_frame), batch["label"]))

    def end_epoch(self) -> dict[str, float]:
        count = torch.tensor([float(self._skipped), float(self._seen)], dtype=torch.float64)
        examples, self._skipped, self._seen, self._examples = self._examples, 0, 0, []
        if du.is_dist():
            count = du.all_reduce_sum(count.to(next(self.parameters()).device)).cpu()
        skipped, seen = int(count[0]), int(count[1])
        self.check_readable(skipped, seen, examples, "training epoch", self.sources[0])
        if skipped:
            logging.getLogger("swin").warning(f"{skipped} unreadable video(s) skipped this epoch (named in the "
                                              f"warnings above)")
        return {"skipped_videos": skipped}

    def check_readable(self, skipped: int, seen: int, examples: Sequence[str], where: str, source: str) -> None:
        """A DataError naming ``source``, the count and a few files when nothing, or more than
        ``max_skipped_fraction`` of what ``where`` met, was readable."""
        if not skipped or not seen:
            return
        if skipped < seen and skipped / seen <= self.max_skipped_fraction:
            return
        what = ("no readable video" if skipped == seen else
                f"more than data.max_skipped_fraction={self.max_skipped_fraction:g} unreadable")
        raise DataError(f"{what} in the {where}: {skipped} of {seen} videos of {source} could not be decoded, "
                        f"e.g. {', '.join(examples[:3]) or '(named in the warnings above)'}")

    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        if loader is None:
            return {}
        scores, labels, _, skipped = predict_views(self.model, loader, env.device, env.amp_dtype, self.single_frame)
        self.check_readable(len(skipped), len(skipped) + len(labels), skipped, "validation", self.sources[1])
        return view_metrics(scores, labels, skipped)


def setup_video(cfg: VideoConfig, run: RunContext) -> tuple[VideoClassificationTask, Any, Any]:
    """Clip datasets (classes checked against the run's classes.txt), loaders, the model and its task."""
    train_ds, val_ds, num_classes = run_datasets(cfg, run.output_dir)
    d = cfg.data
    root, ann_train, ann_val, _ = data_paths(cfg)
    sources = (ann_train or os.path.join(root, "train"), ann_val or d.root_val or os.path.join(root, "val"))
    loaders = build_pytorchvideo_loaders if d.backend == "pytorchvideo" else build_loaders
    return build_classification(cfg, run, train_ds, val_ds, num_classes, task_cls=VideoClassificationTask,
                                loaders=loaders, collate_fn=collate_videos,
                                clip_shape=(3, d.clip_len, d.crop_size, d.crop_size), single_frame=d.single_frame,
                                max_skipped_fraction=d.max_skipped_fraction, sources=sources)
