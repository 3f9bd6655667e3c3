"""Pretraining data: unlabelled images (ImageFolder, digits, crops of two real photos) or clips.

Images get SimMIM's augmentation (RandomResizedCrop scale 0.67-1, ratio 3/4-4/3, horizontal flip); the masks
are drawn by the task, so any classification-style dataset serves (its labels are ignored).
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torchvision.transforms import v2

from core.classification.data import DigitsDataset, SafeImageFolder
from core.engine.config import ConfigError
from core.video.sources import video_paths

from .config import PretrainDataConfig, SimMIMConfig

__all__ = ["PhotoCrops", "load_photos", "image_transform", "PRETRAIN_SETS", "register_pretrain_set",
           "build_pretrain_datasets"]


def load_photos(scale: float = 1.0) -> list[torch.Tensor]:
    """scikit-learn's two sample photographs (china, flower; 427x640, shipped with the package) as float
    (3, H, W) in [0, 1], downscaled by ``scale``."""
    from sklearn.datasets import load_sample_images
    out = []
    for im in load_sample_images().images:
        x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float().div_(255.0)
        if scale != 1.0:
            x = F.interpolate(x[None], scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)[0]
        out.append(x.clamp_(0, 1))
    return out


class PhotoCrops(Dataset):
    """Crops of the two scikit-learn photos: random resized crops of their top 2/3 (train), a fixed grid of
    crops of their bottom 1/3 (val, never seen in training)."""

    def __init__(self, split: str, d: PretrainDataConfig) -> None:
        photos = load_photos(d.photo_scale)
        self.size, self.split = d.img_size, split
        self.mean = torch.tensor(d.mean).view(-1, 1, 1)
        self.std = torch.tensor(d.std).view(-1, 1, 1)
        cut = [int(p.shape[1] * 2 / 3) for p in photos]
        if split == "train":
            self.images = [p[:, :c] for p, c in zip(photos, cut)]
            self.length = d.epoch_size
            self.crop = v2.Compose([v2.RandomResizedCrop(d.img_size, scale=tuple(d.scale), ratio=tuple(d.ratio),
                                                         antialias=True), v2.RandomHorizontalFlip(d.hflip)])
        else:
            s = d.img_size
            self.crops = [p[:, c + y:c + y + s, x:x + s] for p, c in zip(photos, cut)
                          for y in range(0, p.shape[1] - c - s + 1, s // 2) for x in range(0, p.shape[2] - s + 1, s // 2)]
            if not self.crops:
                raise ConfigError(f"data.img_size = {d.img_size} is larger than the held-out strip of the photos "
                                  f"(data.photo_scale = {d.photo_scale})")
            self.length = len(self.crops)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.split == "train":
            img = self.images[int(torch.randint(len(self.images), ()))]
            x = self.crop(img)
        else:
            x = self.crops[index]
        return (x - self.mean) / self.std, 0


def image_transform(d: PretrainDataConfig, train: bool) -> Any:
    """SimMIM's augmentation (train) or resize + centre crop (val), then normalisation."""
    from torchvision import transforms as T
    interp = T.InterpolationMode(d.interpolation)
    norm = [T.ToTensor(), T.Normalize(d.mean, d.std)]
    if train:
        return T.Compose([T.RandomResizedCrop(d.img_size, scale=tuple(d.scale), ratio=tuple(d.ratio),
                                              interpolation=interp), T.RandomHorizontalFlip(d.hflip), *norm])
    return T.Compose([T.Resize(d.img_size, interpolation=interp), T.CenterCrop(d.img_size), *norm])


def _digits(d: PretrainDataConfig) -> tuple[Dataset, Dataset | None]:
    kw = dict(img_size=d.img_size, val_fraction=d.val_fraction, mean=tuple(d.mean), std=tuple(d.std))
    return DigitsDataset("train", **kw), DigitsDataset("val", **kw)


def _photos(d: PretrainDataConfig) -> tuple[Dataset, Dataset | None]:
    return PhotoCrops("train", d), PhotoCrops("val", d)


def _image_folder(d: PretrainDataConfig) -> tuple[Dataset, Dataset | None]:
    shape = (3, d.img_size, d.img_size)
    train = SafeImageFolder(os.path.join(d.root, d.train_split) if d.root else "", image_transform(d, True),
                            train=True, placeholder_shape=shape)
    val_root = os.path.join(d.root, d.val_split) if d.root else ""
    val = SafeImageFolder(val_root, image_transform(d, False), train=False, placeholder_shape=shape) \
        if os.path.isdir(val_root) else None
    return train, val


def _clips(d: PretrainDataConfig) -> tuple[Dataset, Dataset | None]:
    from core.video.data import build_video_dataset
    root, ann_train, ann_val = video_paths(d)
    sub = (lambda s: os.path.join(root, s)) if ann_train is None else (lambda s: root)
    common = dict(clip_len=d.clip_len, frame_interval=d.frame_interval, crop_size=d.img_size, **d.decoding())
    train = build_video_dataset(sub("train"), ann_train, split="train", short_side=d.short_side or d.img_size,
                                scale=tuple(d.scale), hflip=d.hflip, **common)
    val = build_video_dataset(d.root_val or sub("val"), ann_val, split="test", num_clips=1, num_crops=1,
                              classes=train.classes, **common)
    return train, val


# unlabelled image sets by name (data.dataset), with SimMIM's augmentation; clip sets are core.video.sources'
PRETRAIN_SETS: dict[str, Callable[[PretrainDataConfig], tuple[Dataset, Dataset | None]]] = {}


def register_pretrain_set(name: str, build: Callable[[PretrainDataConfig], tuple[Dataset, Dataset | None]]) -> None:
    """``data.dataset: <name>`` in a SimMIM pretraining recipe builds (train, val or None) with ``build(cfg.data)``."""
    PRETRAIN_SETS[name] = build


def build_pretrain_datasets(cfg: SimMIMConfig) -> tuple[Dataset, Dataset | None]:
    """(train, val) of the set ``data.dataset`` names."""
    d = cfg.data
    return _clips(d) if d.is_video else PRETRAIN_SETS[d.dataset](d)


register_pretrain_set("imagefolder", _image_folder)
register_pretrain_set("digits", _digits)
register_pretrain_set("photos", _photos)
