"""Train Video Swin: ``python -m video_swin.train [--config configs/video_swin/<recipe>.yaml] [--opt k=v ...]``.

Without --config it trains the embedded default (configs/video_swin/tiny_moving_shapes.yaml): a generated set
of real mp4 clips whose label is the direction of motion, decoded by decord like any Kinetics video.
Runs on one CPU, one GPU or many through torchrun (DDP), with the engine's AMP, checkpoints and resume.
"""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
from tqdm import tqdm

from core.classification.task import ClassificationTask, build_mixup, classification_loss
from core.engine import ConfigError, EvalEnv, build_model, launch, run_output_dir
from core.engine import distributed as du
from core.engine.data import DataError, build_loaders
from core.engine.device import autocast, seed_everything, to_device
from core.engine.files import atomic_write_text
from core.engine.metrics import topk_correct
from core.train import check_num_classes

from .config import VideoConfig
from .data import build_video_dataset, collate_videos
from .pytorchvideo_data import build_pytorchvideo_loaders

DEFAULT_CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "video_swin" / "tiny_moving_shapes.yaml")


def model_input(x: torch.Tensor, single_frame: bool) -> torch.Tensor:
    """(B, C, T, H, W) clips, or their middle frame (B, C, H, W) for the single-frame 2D baseline."""
    return x[:, :, x.shape[2] // 2] if single_frame else x


def data_paths(cfg: VideoConfig) -> tuple[str, str | None, str | None, str | None]:
    """root and train / val / test annotation files (the embedded set is generated on first use)."""
    d = cfg.data
    if d.dataset == "moving_shapes":
        from .synthetic import ensure_moving_shapes
        root = ensure_moving_shapes(d.root or None, num_train=d.num_train, num_val=d.num_val)
        logging.getLogger("swin").info(f"moving-shapes clips: {root} ({d.num_train} train, {d.num_val} val)")
        return str(root), str(root / "train.txt"), str(root / "val.txt"), str(root / "val.txt")
    if not d.root:
        raise ConfigError("data.root is empty: give the Kinetics video folder (or data.dataset=moving_shapes)")
    if not os.path.isdir(d.root):
        raise ConfigError(f"data.root = {d.root!r} is not a folder")
    for key in ("ann_train", "ann_val", "ann_test", "classes_file"):
        path = getattr(d, key)
        if path and not os.path.isfile(path):
            raise DataError(f"data.{key} = {path!r} is not a file")
    train = d.ann_train or None
    val = d.ann_val or None
    return d.root, train, val, d.ann_test or val


def build_datasets(cfg: VideoConfig, split: str = "val") -> tuple[Any, Any, int]:
    """Training set (one random clip) and validation/test set (clips x crops views per video)."""
    d = cfg.data
    root, ann_train, ann_val, ann_test = data_paths(cfg)
    common = dict(clip_len=d.clip_len, frame_interval=d.frame_interval, crop_size=d.crop_size)
    sub = (lambda s: os.path.join(root, s)) if ann_train is None else (lambda s: root)
    val_root = d.root_val or sub("val")
    names = {"classes_file": d.classes_file} if d.classes_file and ann_train and not ann_train.endswith(".csv") else {}
    try:
        train = build_video_dataset(sub("train"), ann_train, split="train", short_side=d.short_side,
                                    scale=tuple(d.scale), hflip=d.hflip, **names, **common)
        evalset = _eval_set(cfg, split, val_root, ann_val, ann_test, train.classes, common)
    except (ValueError, OSError) as e:  # malformed list / CSV files, unreadable folders: name the file
        raise DataError(str(e)) from None
    if list(evalset.classes) != list(train.classes):
        raise ConfigError(f"validation classes differ from training classes ({len(evalset.classes)} vs "
                          f"{len(train.classes)})")
    return train, evalset, train.num_classes


def _eval_set(cfg: VideoConfig, split: str, root: str, ann_val: str | None, ann_test: str | None,
              classes: Sequence[str], common: dict) -> Any:
    """Validation (val_num_clips x 1 crop) or test (num_clips x num_crops) views of every video."""
    d = cfg.data
    if split == "test":
        return build_video_dataset(root, ann_test, split="test", num_clips=d.num_clips, num_crops=d.num_crops,
                                   classes=classes, **common)
    return build_video_dataset(root, ann_val, split="test", num_clips=d.val_num_clips, num_crops=1, classes=classes,
                               **common)


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
                  single_frame: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Per video (in dataset order, gathered from every rank): view-averaged softmax scores, labels, indices.

    Each item holds all its views (clips x crops); the scores of a video are the mean over its views, as in
    the paper's 4x3-view testing. Unreadable videos are returned by path and left out of the scores.
    """
    model.eval()
    idx, scores, labels, skipped = [], [], [], []
    for batch in tqdm(loader, desc="multi-view test", leave=False, disable=not du.is_main(), mininterval=1.0):
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
                 single_frame: bool = False) -> None:
        super().__init__(model, criterion, mixup)
        self.clip_shape = clip_shape  # (C, T, H, W) of a training clip
        self.single_frame = single_frame
        self._skipped = 0

    def forward(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        self._skipped += len(batch["skipped"])
        if batch["video"] is None:
            # the whole batch was unreadable: a forward of a blank clip through the (DDP) model gives a zero loss
            # and zero gradients, so every rank still joins the gradient all-reduce of this step
            blank = torch.zeros(1, *self.clip_shape, device=next(self.parameters()).device)
            return {"loss": self.model(model_input(blank, self.single_frame)).sum() * 0.0}
        return super().forward((model_input(batch["video"], self.single_frame), batch["label"]))

    def end_epoch(self) -> dict[str, float]:
        count = torch.tensor([float(self._skipped)], dtype=torch.float64)
        self._skipped = 0
        if du.is_dist():
            count = du.all_reduce_sum(count.to(next(self.parameters()).device)).cpu()
        skipped = int(count.item())
        if skipped:
            logging.getLogger("swin").warning(f"{skipped} unreadable video(s) skipped this epoch (named in the "
                                              f"warnings above)")
        return {"skipped_videos": skipped}

    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        if loader is None:
            return {}
        scores, labels, _, skipped = predict_views(self.model, loader, env.device, env.amp_dtype, self.single_frame)
        return view_metrics(scores, labels, skipped)


def check_classes(folder: str, classes: Sequence[str]) -> None:
    """A run's classes.txt in ``folder``, if any, must list exactly ``classes``."""
    path = os.path.join(folder, "classes.txt")
    if os.path.exists(path):
        old = Path(path).read_text().splitlines()
        if old != list(classes):
            raise ConfigError(f"{path} lists {len(old)} classes that differ from this data set's "
                              f"{len(classes)}; resume with the data the run was started with")


def write_classes(output_dir: str, classes: Sequence[str]) -> None:
    """classes.txt next to the checkpoints (rank 0, atomically)."""
    if du.is_main():
        atomic_write_text(os.path.join(output_dir, "classes.txt"), "\n".join(classes) + "\n")


def build_video_model(cfg: VideoConfig, num_classes: int, initial_weights: bool = True) -> nn.Module:
    """The engine's model builder; ``model.pretrained_kwargs.inflate`` needs a 2D checkpoint to inflate."""
    if cfg.model.pretrained_kwargs.get("inflate") and not cfg.model.pretrained:
        raise ConfigError("model.pretrained is empty but model.pretrained_kwargs.inflate is true: give a 2D "
                          "ImageNet checkpoint (ours, timm or official) to inflate")
    return build_model(cfg, num_classes, initial_weights=initial_weights)


def run_datasets(cfg: VideoConfig) -> tuple[Any, Any, int]:
    """:func:`build_datasets`, its classes checked against the run's classes.txt (and written there)."""
    train_ds, val_ds, num_classes = build_datasets(cfg)
    out = run_output_dir(cfg)
    for folder in {out, os.path.dirname(cfg.train.resume)} - {""}:
        check_classes(folder, train_ds.classes)
    write_classes(out, train_ds.classes)
    check_num_classes(cfg, num_classes)
    return train_ds, val_ds, num_classes


def setup_video(cfg: VideoConfig, info: du.DistInfo) -> tuple[VideoClassificationTask, Any, Any]:
    """Clip datasets (classes checked against the run's classes.txt), loaders, the model and its task."""
    train_ds, val_ds, num_classes = run_datasets(cfg)
    loaders = build_pytorchvideo_loaders if cfg.data.backend == "pytorchvideo" else build_loaders
    train_loader, val_loader = loaders(cfg, train_ds, val_ds, info, collate_fn=collate_videos)
    seed_everything(cfg.train.seed)  # identical initial weights on every rank
    model = build_video_model(cfg, num_classes)
    seed_everything(cfg.train.seed + info.rank)  # distinct augmentation streams per rank
    mixup = build_mixup(cfg.aug, num_classes)
    d = cfg.data
    task = VideoClassificationTask(model, classification_loss(cfg.aug, mixup is not None), mixup,
                                   clip_shape=(3, d.clip_len, d.crop_size, d.crop_size), single_frame=d.single_frame)
    return task, train_loader, val_loader


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=VideoConfig, setup=setup_video, description=__doc__, default_config=DEFAULT_CONFIG)


if __name__ == "__main__":
    sys.exit(main())
