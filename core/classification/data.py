"""Image classification data: checked ImageFolder trees, the embedded digits and shapes sets, transforms, and the
registry of image sets by name (``data.dataset``), the one list of their names that the configs check against.

Unreadable images never stop a run: in training they are replaced by the next readable sample, in
evaluation they come back with target -1 and are left out of the metrics; either way a
:class:`UnreadableImageWarning` names the file and ``dataset.num_skipped`` counts them.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets import ImageFolder
from torchvision.datasets.folder import IMG_EXTENSIONS, default_loader

from ..engine.data import DataError
from .config import ClassificationConfig
from .shapes import build_shapes, shape_classes, shapes_split

__all__ = ["DataError", "UnreadableImageWarning", "check_image_folder", "SafeImageFolder", "DigitsDataset",
           "build_transform", "ImageSet", "IMAGE_SETS", "register_image_set", "image_set", "image_set_names",
           "build_image_datasets", "IGNORE_INDEX"]

IGNORE_INDEX = -1


class UnreadableImageWarning(UserWarning):
    """An image file could not be decoded and was skipped."""


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def check_image_folder(root: str) -> list[str]:
    """Class names of an ImageFolder tree; DataError if the folder is missing, has no classes or an empty class."""
    if not root:
        raise DataError("data.root is empty: set it to an ImageFolder directory (root/<class>/<image>)")
    if not os.path.isdir(root):
        raise DataError(f"data folder not found: {root}")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise DataError(f"no class folders in {root}: expected {root}/<class>/<image>")
    empty = []
    for c in classes:
        has_image = any(_is_image(f) for _, _, files in os.walk(os.path.join(root, c), followlinks=True)
                        for f in files)
        if not has_image:
            empty.append(os.path.join(root, c))
    if empty:
        raise DataError(f"empty class folder(s) with no image files ({', '.join(IMG_EXTENSIONS)}): "
                        + ", ".join(empty))
    return classes


class SafeImageFolder(ImageFolder):
    """ImageFolder that checks its tree up front and skips unreadable images with a warning naming each."""

    def __init__(self, root: str, transform: Callable | None = None, *, train: bool = True,
                 placeholder_shape: tuple[int, ...] = (3, 224, 224), verify: bool = False,
                 loader: Callable[[str], Any] = default_loader) -> None:
        check_image_folder(root)
        super().__init__(root, transform=transform, loader=loader, allow_empty=True)
        self.train = train
        self.placeholder_shape = placeholder_shape
        self._skipped = mp.Value("i", 0)
        self._seen_bad: set[str] = set()
        if verify:
            self._verify()

    @property
    def num_skipped(self) -> int:
        """Unreadable images met so far (over all DataLoader workers of this process)."""
        return int(self._skipped.value)

    def _note_bad(self, path: str, err: BaseException) -> None:
        if path in self._seen_bad:
            return
        self._seen_bad.add(path)
        with self._skipped.get_lock():
            self._skipped.value += 1
        warnings.warn(f"skipping unreadable image {path}: {type(err).__name__}: {err}", UnreadableImageWarning,
                      stacklevel=2)

    def _verify(self) -> None:
        """Open every file once; drop the unreadable ones."""
        good = []
        for path, target in self.samples:
            try:
                with Image.open(path) as im:
                    im.verify()
                good.append((path, target))
            except Exception as e:  # noqa: BLE001 -- PIL raises many types for broken files
                self._note_bad(path, e)
        if not good:
            raise DataError(f"no readable images in {self.root}")
        self.samples = self.imgs = good
        self.targets = [t for _, t in good]

    def __getitem__(self, index: int) -> tuple[Any, int]:
        n = len(self.samples)
        for attempt in range(n):
            path, target = self.samples[(index + attempt) % n]
            try:
                sample = self.loader(path)
            except Exception as e:  # noqa: BLE001
                self._note_bad(path, e)
                if not self.train:
                    return torch.zeros(self.placeholder_shape), IGNORE_INDEX
                continue
            if self.transform is not None:
                sample = self.transform(sample)
            if self.target_transform is not None:
                target = self.target_transform(target)
            return sample, target
        raise DataError(f"no readable images in {self.root}")


class DigitsDataset(Dataset):
    """scikit-learn's 1797 real 8x8 digit images, upsampled to ``img_size`` with 3 channels; no download.

    A fixed stratified split (``val_fraction`` held out, split seed 0) gives train and val; training adds
    random translations of up to ``img_size // 8`` pixels.
    """

    def __init__(self, split: str = "train", img_size: int = 32, val_fraction: float = 0.2, in_chans: int = 3,
                 mean: tuple[float, ...] = (0.5,), std: tuple[float, ...] = (0.5,), train: bool | None = None) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        if split not in ("train", "val"):
            raise DataError(f"digits split must be 'train' or 'val', got {split!r}")
        d = load_digits()
        idx = np.arange(len(d.target))
        tr, va = train_test_split(idx, test_size=val_fraction, random_state=0, stratify=d.target)
        sel = np.sort(tr if split == "train" else va)
        x = torch.from_numpy(d.images[sel]).float().div_(16.0).unsqueeze(1)  # (N,1,8,8) in [0,1]
        x = F.interpolate(x, size=(img_size, img_size), mode="bilinear", align_corners=False)
        x = x.expand(-1, in_chans, -1, -1)
        m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.images = ((x - m) / s).contiguous()
        self.targets = torch.from_numpy(d.target[sel]).long()
        self.classes = [str(i) for i in range(10)]
        self.train = (split == "train") if train is None else train
        self.shift = max(1, img_size // 8)
        self.pad_value = float(((0 - m) / s).flatten()[0])

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.images[index]
        if self.train:
            s = self.shift
            dy, dx = torch.randint(-s, s + 1, (2,)).tolist()
            x = torch.roll(F.pad(x, (s, s, s, s), value=self.pad_value), (dy, dx), dims=(1, 2))[:, s:-s, s:-s]
        return x, int(self.targets[index])


def build_transform(cfg: ClassificationConfig, train: bool) -> Callable:
    """timm transform: RandAugment / color jitter / random erasing for training, resize + center crop for eval."""
    from timm.data import create_transform

    d, a = cfg.data, cfg.aug
    common = dict(input_size=(d.in_chans, d.img_size, d.img_size), interpolation=d.interpolation,
                  mean=tuple(d.mean), std=tuple(d.std))
    if train:
        return create_transform(is_training=True, scale=tuple(d.scale), ratio=tuple(d.ratio),
                                color_jitter=a.color_jitter or None,
                                auto_augment=a.auto_augment or None, re_prob=a.reprob, re_mode=a.remode,
                                re_count=a.recount, hflip=a.hflip, **common)
    return create_transform(is_training=False, crop_pct=d.crop_pct, **common)


@dataclass(frozen=True)
class ImageSet:
    """A registered image data set: how a recipe builds it, and what the inference tools need to read files like it
    (``eval_transform`` of a PIL image, ``classes`` names; defaults: the timm eval transform, no names).
    ``split(cfg, name)``: the raw labelled images of one split (PIL images or uint8 tensors, no transform), for
    methods that draw their own views (MoBY); None where the set has none."""
    build: Callable[[Any], tuple[Dataset, Dataset, int]]
    eval_transform: Callable[[Any], Callable] | None = None
    classes: Callable[[Any], list[str]] | None = None
    whole_image: bool = False  # evaluation resizes the whole image to img_size (no centre crop)
    split: Callable[[Any, str], Dataset] | None = None


IMAGE_SETS: dict[str, ImageSet] = {}


def register_image_set(name: str, image_set: ImageSet) -> None:
    """``data.dataset: <name>`` in a recipe builds this set."""
    IMAGE_SETS[name] = image_set


def image_set(cfg: Any) -> ImageSet:
    """The registered set a recipe names (``data.dataset``)."""
    name = cfg.data.dataset
    if name not in IMAGE_SETS:
        raise DataError(f"data.dataset = {name!r} is not an image data set; registered: {sorted(IMAGE_SETS)}")
    return IMAGE_SETS[name]


def image_set_names(*, raw_splits: bool = False) -> list[str]:
    """The registered names (those with raw splits: ``raw_splits=True``), for the configs' start-up checks."""
    return sorted(n for n, s in IMAGE_SETS.items() if s.split is not None or not raw_splits)


def build_image_datasets(cfg: Any) -> tuple[Dataset, Dataset, int]:
    """(train, val, num_classes) of the set ``data.dataset`` names."""
    return image_set(cfg).build(cfg)


def _digits(cfg: ClassificationConfig) -> tuple[Dataset, Dataset, int]:
    d = cfg.data
    kw = dict(img_size=d.img_size, val_fraction=d.val_fraction, in_chans=d.in_chans, mean=tuple(d.mean),
              std=tuple(d.std))
    return DigitsDataset("train", **kw), DigitsDataset("val", **kw), 10


def _whole_file_transform(cfg: ClassificationConfig) -> Callable:
    """A file as the generated sets see their images: the whole image resized (bilinear) to img_size (digits: from
    8x8)."""
    from torchvision.transforms import v2
    d = cfg.data
    return v2.Compose([v2.PILToTensor(), v2.ToDtype(torch.float32, scale=True),
                       v2.Resize((d.img_size, d.img_size), antialias=False), v2.Normalize(list(d.mean), list(d.std))])


def _image_folder(cfg: ClassificationConfig) -> tuple[Dataset, Dataset, int]:
    d = cfg.data
    train_root = os.path.join(d.root, d.train_split) if d.root else ""
    val_root = os.path.join(d.root, d.val_split) if d.root else ""
    shape = (d.in_chans, d.img_size, d.img_size)
    train = SafeImageFolder(train_root, build_transform(cfg, True), train=True, placeholder_shape=shape,
                            verify=d.verify_images)
    val = SafeImageFolder(val_root, build_transform(cfg, False), train=False, placeholder_shape=shape,
                          verify=d.verify_images)
    if val.classes != train.classes:
        only_t = sorted(set(train.classes) - set(val.classes))
        only_v = sorted(set(val.classes) - set(train.classes))
        raise DataError(f"class folders differ between {train_root} and {val_root}: only in train {only_t[:10]}, "
                        f"only in val {only_v[:10]}")
    return train, val, len(train.classes)


def _folder_classes(cfg: ClassificationConfig) -> list[str]:
    """The training class folders, if the tree is there."""
    d = cfg.data
    train = os.path.join(d.root, d.train_split) if d.root else ""
    return sorted(e.name for e in os.scandir(train) if e.is_dir()) if train and os.path.isdir(train) else []


def _folder_split(cfg: Any, split: str) -> Dataset:
    """The raw images of root/<split> (PIL images, unreadable ones skipped)."""
    if not cfg.data.root:
        raise DataError("data.root is empty: set it to an ImageFolder tree root/<split>/<class>/<image>")
    return SafeImageFolder(os.path.join(cfg.data.root, split), None, train=True)


register_image_set("imagefolder", ImageSet(_image_folder, classes=_folder_classes, split=_folder_split))
register_image_set("digits", ImageSet(_digits, eval_transform=_whole_file_transform,
                                      classes=lambda cfg: [str(i) for i in range(10)], whole_image=True))
register_image_set("shapes", ImageSet(build_shapes, eval_transform=_whole_file_transform, whole_image=True,
                                      classes=lambda cfg: list(shape_classes(cfg.data.shapes.get("num_classes"),
                                                                             cfg.data.shapes.get("classes"))),
                                      split=shapes_split))
