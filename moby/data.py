"""MoBY data: two BYOL views of an image, or two clips of one video at different times (one spatial
augmentation per clip, the same over all its frames), plus the labelled evaluation sets (kNN bank and queries,
linear probe) with a fixed centre view.

Pretraining items are dicts ``{"view1", "view2", "label", "index"}``; evaluation items ``(x, label, index)``
for images and the :func:`core.video.data.collate_videos` dicts for clips.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Sequence

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from core.classification.data import image_set, image_set_names
from core.engine.data import DataError, build_loaders
from core.engine.distributed import DistInfo
from core.video.data import VideoDataset, build_video_dataset, collate_videos
from core.video.sources import video_paths
from core.video.transforms import ToCTHW, video_eval_transform

from .config import MoBYConfig, MoBYDataConfig, ViewAugConfig

__all__ = ["byol_transform", "eval_transform", "TwoViewDataset", "Indexed", "TwoClipDataset", "build_pretrain_sets",
           "build_labelled_set"]


def _blur_kernel(size: int) -> int:
    """BYOL's kernel is about a tenth of the crop (23 at 224); odd, at least 3."""
    k = max(3, int(0.1 * size))
    return k + 1 - k % 2


def byol_transform(view: int, aug: ViewAugConfig, size: int, mean: Sequence[float], std: Sequence[float],
                   video: bool = False) -> v2.Compose:
    """View 1 or 2 of BYOL: random-resized crop, flip, colour jitter, grayscale, blur, solarize, normalise.

    Takes a PIL image, a uint8 (3, H, W) tensor, or a uint8 ``tv_tensors.Video`` (T, 3, H, W), whose frames all
    get the same draw; returns float (3, H, W), or (3, T, H, W) for a clip.
    """
    i = view - 1
    ops: list[Any] = [] if video else [v2.ToImage()]
    ops += [v2.RandomResizedCrop(size, scale=tuple(aug.scale), antialias=True),
            v2.RandomHorizontalFlip(aug.hflip),
            v2.ToDtype(torch.float32, scale=True),
            v2.RandomApply([v2.ColorJitter(*aug.color_jitter)], p=aug.color_jitter_prob),
            v2.RandomGrayscale(aug.grayscale_prob)]
    if aug.blur_prob[i] > 0:
        ops.append(v2.RandomApply([v2.GaussianBlur(_blur_kernel(size), sigma=tuple(aug.blur_sigma))],
                                  p=aug.blur_prob[i]))
    if aug.solarize_prob[i] > 0:
        ops.append(v2.RandomSolarize(0.5, p=aug.solarize_prob[i]))
    ops.append(v2.Normalize(list(mean), list(std)))
    if video:
        ops.append(ToCTHW())
    return v2.Compose(ops)


def eval_transform(size: int, mean: Sequence[float], std: Sequence[float], resize: int | None = None) -> v2.Compose:
    """Resize the short side (default: 256/224 of the crop), centre crop, normalise (images)."""
    return v2.Compose([v2.ToImage(), v2.Resize(resize or round(size * 256 / 224), antialias=True),
                       v2.CenterCrop(size), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(mean), list(std))])


class TwoViewDataset(Dataset):
    """Two augmented views of each item of a labelled image dataset (labels are kept, for bookkeeping only)."""

    def __init__(self, base: Dataset, view1: Callable, view2: Callable) -> None:
        self.base, self.view1, self.view2 = base, view1, view2

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        x, y = self.base[index]
        return {"view1": self.view1(x), "view2": self.view2(x), "label": int(y), "index": index}


class Indexed(Dataset):
    """``(x, y)`` items as ``(transform(x), y, index)``; items with a negative label (unreadable) are kept."""

    def __init__(self, base: Dataset, transform: Callable | None = None) -> None:
        self.base, self.transform = base, transform
        self.classes = getattr(base, "classes", None)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int, int]:
        x, y = self.base[index]
        return (self.transform(x) if self.transform is not None else x), int(y), index


class TwoClipDataset(VideoDataset):
    """Two clips of one video at different times (mmaction2 SampleFrames with 2 clips), each with its own BYOL view
    (one spatial draw for all frames of a clip). An unreadable video is warned about, counted and replaced by the
    next readable one, so every rank's batch keeps its size (the queues need it)."""

    def __init__(self, samples: Sequence[tuple[str, int]], classes: Sequence[str], *, view1: Callable,
                 view2: Callable, **kwargs: Any) -> None:
        super().__init__(samples, classes, num_clips=2, test_mode=False, transform=None, **kwargs)
        self.view1, self.view2 = view1, view2

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        for attempt in range(n):
            j = (index + attempt) % n
            path = str(self._paths[j])
            try:
                clips = self.load_clips(path)  # (2, T, C, H, W) uint8
            except Exception as e:  # decord raises DECORDError / RuntimeError on unreadable files
                self._broken(path, e)
                continue
            return {"view1": self.view1(tv_tensors.Video(clips[0])), "view2": self.view2(tv_tensors.Video(clips[1])),
                    "label": int(self._labels[j]), "index": j}
        raise DataError(f"no readable video among the {n} training videos")


# ------------------------------------------------------------------------------------------------ builders
def _video_split(d: MoBYDataConfig, split: str) -> tuple[str, str | None]:
    root, train, val = video_paths(d)
    if split not in (d.train_split, d.val_split):
        raise DataError(f"video split {split!r}: expected data.train_split ({d.train_split!r}) or data.val_split "
                        f"({d.val_split!r})")
    ann = train if split == d.train_split else val
    return (root if ann is not None else os.path.join(root, split)), ann


def _image_base(cfg: MoBYConfig, split: str) -> Dataset:
    """The raw labelled images of a split (PIL images or uint8 tensors) from the registered image set
    ``data.dataset`` (its ``split`` builder; the config check admits only sets that have one)."""
    raw = image_set(cfg).split
    if raw is None:
        raise DataError(f"data.dataset = {cfg.data.dataset!r} has no raw labelled splits; MoBY builds "
                        f"{image_set_names(raw_splits=True)} or a video set")
    return raw(cfg, split)


def build_labelled_set(cfg: MoBYConfig, split: str, preloaded: Any = None) -> Dataset:
    """A labelled split with the fixed evaluation view (centre crop; one centred clip); ``preloaded``: the decoded
    clips of a data set over the same videos (the training set's, for the kNN bank), reused."""
    d = cfg.data
    if d.video:
        root, ann = _video_split(d, split)
        return build_video_dataset(root, ann, split="val", clip_len=d.clip_len, frame_interval=d.frame_interval,
                                   **d.decoding(), crop_size=d.img_size, short_side=d.img_size, num_clips=1, num_crops=1,
                                   transform=_video_eval_transform(d), preloaded=preloaded)
    resize = d.img_size if image_set(cfg).whole_image else None  # generated images: the whole image, no crop
    return Indexed(_image_base(cfg, split), eval_transform(d.img_size, d.mean, d.std, resize))


def _video_eval_transform(d: MoBYDataConfig) -> Callable:
    """Resize to the crop, centre crop, normalise; (1, C, T, H, W)."""
    return video_eval_transform(d.img_size, d.img_size, 1, [255 * m for m in d.mean], [255 * s for s in d.std])


def build_pretrain_sets(cfg: MoBYConfig) -> tuple[Dataset, Dataset, Dataset]:
    """(two-view training set, kNN bank = training split with the evaluation view, kNN queries = data.val_split)."""
    d, a = cfg.data, cfg.aug
    views = [byol_transform(v, a, d.img_size, d.mean, d.std, video=d.video) for v in (1, 2)]
    if d.video:
        root, ann = _video_split(d, d.train_split)
        listed = build_video_dataset(root, ann, split="train", transform=None)  # list file, CSV or class folders
        train = TwoClipDataset(listed.samples, listed.classes, view1=views[0], view2=views[1],
                                  clip_len=d.clip_len, frame_interval=d.frame_interval, check_files=False,
                                  **d.decoding())
    else:
        train = TwoViewDataset(_image_base(cfg, d.train_split), *views)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing files were reported once by the training set
        bank = build_labelled_set(cfg, d.train_split, getattr(train, "preloaded", None))
        query = build_labelled_set(cfg, d.val_split)
    return train, bank, query


def build_eval_loader(cfg: MoBYConfig, ds: Dataset, info: DistInfo) -> Any:
    """A loader over a labelled set, sharded over ranks without padding (exact gathered features)."""
    return build_loaders(cfg, None, ds, info, collate_fn=collate_videos if cfg.data.video else None)[1]
