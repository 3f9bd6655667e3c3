"""Videos as test views for inference: the view data set of a recipe and the view-averaged scores (the command:
``cli/predict.py``)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch.utils.data import DataLoader

from core.engine.device import to_device
from core.malloc import maybe_trim
from core.video.config import VideoConfig
from core.video.data import (
    VideoDataset,
)
from core.video.task import view_scores
from core.video.transforms import build_video_transform


def view_dataset(files: Sequence[str], cfg: VideoConfig, classes: Sequence[str], num_clips: int,
                 num_crops: int) -> VideoDataset:
    """The files as a test set with the recipe's sampling and transforms (as ``video_swin.test`` builds it)."""
    d = cfg.data
    return VideoDataset([(f, 0) for f in files], classes, clip_len=d.clip_len, frame_interval=d.frame_interval,
                        num_clips=num_clips, test_mode=True, check_files=False, decoder=d.decoder,
                        transform=build_video_transform("test", d.crop_size, None, num_crops))


@torch.no_grad()
def classify(model: torch.nn.Module, loader: DataLoader, device: torch.device, amp_dtype: torch.dtype | None,
             single_frame: bool = False) -> tuple[dict[int, torch.Tensor], dict[int, str]]:
    """View-averaged softmax scores per dataset index, and the decoding error of each unreadable one."""
    scores: dict[int, torch.Tensor] = {}
    errors: dict[int, str] = {}
    paths = {p: i for i, (p, _) in enumerate(loader.dataset.samples)}
    for batch in loader:
        errors.update({paths[p]: e for p, e in zip(batch["skipped"], batch["errors"])})
        if batch["video"] is None:
            continue
        batch = to_device(batch, device)
        maybe_trim()  # thousands of batches come and go through the heap
        for i, s in zip(batch["index"].tolist(), view_scores(model, batch["video"], device, amp_dtype, single_frame)):
            scores[i] = s
    return scores, errors


