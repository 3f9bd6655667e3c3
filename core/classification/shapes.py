"""Embedded image set "shapes": the class is a shape's outline, under random colour, texture, position, scale
and rotation. Generated deterministically in memory (no download, no files).

Colours and textures are drawn independently of the class, so features that only see colour or texture
(what a randomly initialised network mostly sees) cannot tell the classes apart; only the outline can.

    ds = ShapesDataset("train", num=4000, size=32)            # uint8 images (3, 32, 32), labels 0..5
    x, y = ds[0]                                              # x: tensor, or transform(tensor) if given
    images, labels = render_shapes(100, size=32, seed=7)      # the raw arrays
    train, val, n = build_shapes(cfg)                         # a recipe's sets (data.dataset: shapes)

The difficulty is adjustable (keyword arguments of render_shape / render_shapes / ShapesDataset; the defaults
are the original, hard set): ``num_classes`` (the first N of SHAPE_CLASSES, or ``classes`` by name),
``texture`` (strength of the background pattern; the shape's own pattern is 1.25x it), ``scale`` (radius range
as a fraction of the image), ``rotation`` (maximum rotation in degrees, 360 = any), ``noise`` (pixel noise std),
``polarity`` (a light shape on a dark background, colours still random: the outline's contrast has a fixed sign,
which a tiny transformer learns in a few epochs; with free polarity it barely learns in a CPU minute).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..engine.data import DataError

__all__ = ["SHAPE_CLASSES", "SPLIT_SEEDS", "render_shape", "render_shapes", "ShapesDataset", "shape_classes",
           "shapes_split", "build_shapes"]

SHAPE_CLASSES = ("disc", "ring", "square", "triangle", "cross", "half_disc")
SPLIT_SEEDS = {"train": 0, "val": 1, "test": 2}  # disjoint random streams per split


def _mask(kind: str, u: np.ndarray, v: np.ndarray, r: float) -> np.ndarray:
    """Boolean mask of a shape of radius ``r`` in rotated, centred coordinates (u, v)."""
    d = np.hypot(u, v)
    if kind == "disc":
        return d <= r
    if kind == "ring":
        return (d <= r) & (d >= 0.55 * r)
    if kind == "square":
        return np.maximum(abs(u), abs(v)) <= 0.8 * r
    if kind == "triangle":  # equilateral, circumradius r: three half-planes
        angles = np.pi / 2 + np.arange(3) * 2 * np.pi / 3
        return np.all([u * np.cos(a) + v * np.sin(a) >= -0.5 * r for a in angles], axis=0)
    if kind == "cross":
        w = 0.3 * r
        return ((abs(u) <= w) & (abs(v) <= r)) | ((abs(v) <= w) & (abs(u) <= r))
    if kind == "half_disc":
        return (d <= r) & (v >= 0)
    raise ValueError(f"unknown shape {kind!r}; known: {SHAPE_CLASSES}")


def _texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """A (H, W) pattern in [0, 1]: stripes at a random angle and frequency, a checkerboard, or smooth noise."""
    kind = rng.integers(0, 3)
    if kind == 0:
        a, f = rng.uniform(0, np.pi), rng.uniform(2, 6) * 2 * np.pi / size
        return 0.5 + 0.5 * np.sin(f * (xx * np.cos(a) + yy * np.sin(a)) + rng.uniform(0, 2 * np.pi))
    if kind == 1:
        c = int(rng.integers(3, 9))
        return (((yy // c) + (xx // c)) % 2).astype(np.float64)
    coarse = rng.uniform(0, 1, (5, 5))
    idx = np.linspace(0, 4, size)
    i0 = np.minimum(idx.astype(int), 3)
    w = idx - i0
    rows = coarse[i0] * (1 - w[:, None]) + coarse[i0 + 1] * w[:, None]
    return rows[:, i0] * (1 - w[None]) + rows[:, i0 + 1] * w[None]


def shape_classes(num_classes: int | None = None, classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The class names: ``classes`` (checked), else the first ``num_classes`` of SHAPE_CLASSES (default: all)."""
    if classes is not None:
        names = tuple(classes)
        unknown = [c for c in names if c not in SHAPE_CLASSES]
        if unknown or len(set(names)) != len(names) or len(names) < 2:
            raise ValueError(f"shapes classes {list(names)}: expected at least two distinct of {SHAPE_CLASSES}")
        return names
    n = len(SHAPE_CLASSES) if num_classes is None else int(num_classes)
    if not 2 <= n <= len(SHAPE_CLASSES):
        raise ValueError(f"shapes num_classes = {n}: expected 2..{len(SHAPE_CLASSES)}")
    return SHAPE_CLASSES[:n]


def render_shape(rng: np.random.Generator, label: int, size: int = 32, *, classes: Sequence[str] = SHAPE_CLASSES,
                 texture: float = 0.4, scale: Sequence[float] = (0.22, 0.42), rotation: float = 360.0,
                 noise: float = 6.0, polarity: bool = False) -> np.ndarray:
    """One (3, size, size) uint8 image of shape class ``label`` (an index into ``classes``) on a textured
    background; ``texture``, ``scale``, ``rotation`` (degrees), ``noise`` and ``polarity`` set the difficulty."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    c1, c2 = rng.uniform(0, 255, (2, 3))
    if polarity:  # a dark background, a light shape: the sign of the outline's contrast is fixed
        c1, c2 = c1 * 0.4, c2 * 0.4
    # a faint texture: the outline, not the background pattern, carries the class and the most contrast
    bg = _texture(rng, yy, xx, size)[..., None] * (c2 - c1) * rng.uniform(0.0, texture) + c1   # (H, W, 3)
    r = rng.uniform(scale[0], scale[1]) * size
    cy, cx = rng.uniform(r * 0.8, size - r * 0.8, 2)
    theta = rng.uniform(0, 1) * np.deg2rad(rotation)
    if rotation < 360:  # symmetric about upright
        theta -= np.deg2rad(rotation) / 2
    dy, dx = yy - cy, xx - cx
    u, v = dx * np.cos(theta) + dy * np.sin(theta), -dx * np.sin(theta) + dy * np.cos(theta)
    mask = _mask(classes[label], u, v, r)
    f1, f2 = rng.uniform(0, 255, (2, 3))
    if polarity:
        f1, f2 = 153 + f1 * 0.4, 153 + f2 * 0.4
    fg = _texture(rng, yy, xx, size)[..., None] * (f2 - f1) * rng.uniform(0, 1.25 * texture) + f1  # mostly solid
    img = np.where(mask[..., None], fg, bg) + rng.normal(0, noise, (size, size, 3))
    return np.clip(img, 0, 255).round().astype(np.uint8).transpose(2, 0, 1)


def render_shapes(num: int, size: int = 32, seed: int = 0, *, num_classes: int | None = None,
                  classes: Sequence[str] | None = None, texture: float = 0.4,
                  scale: Sequence[float] = (0.22, 0.42), rotation: float = 360.0,
                  noise: float = 6.0, polarity: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``num`` images (num, 3, size, size) uint8 and labels (balanced, cycling through the classes); cached,
    read-only arrays. The keyword arguments set the difficulty (see the module docstring)."""
    if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 0.5:
        raise ValueError(f"shapes scale = {list(scale)}: expected [lo, hi] with 0 < lo <= hi <= 0.5")
    return _render_shapes(num, size, seed, shape_classes(num_classes, classes), float(texture),
                          (float(scale[0]), float(scale[1])), float(rotation), float(noise), bool(polarity))


@lru_cache(maxsize=8)
def _render_shapes(num: int, size: int, seed: int, classes: tuple[str, ...], texture: float,
                   scale: tuple[float, float], rotation: float, noise: float, polarity: bool = False
                   ) -> tuple[np.ndarray, np.ndarray]:
    labels = np.arange(num) % len(classes)
    kw = dict(classes=classes, texture=texture, scale=scale, rotation=rotation, noise=noise, polarity=polarity)
    images = np.stack([render_shape(np.random.default_rng([seed, i]), int(labels[i]), size, **kw)
                       for i in range(num)]) if num else np.zeros((0, 3, size, size), np.uint8)
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


class ShapesDataset(Dataset):
    """``num`` generated images of one split ("train", "val", "test": disjoint seeds); items (image, label).

    The image is a uint8 tensor (3, size, size), passed through ``transform`` when given (torchvision v2
    transforms take it as an image). ``classes`` names the labels. Further keyword arguments (``num_classes``,
    ``classes``, ``texture``, ``scale``, ``rotation``, ``noise``) set the difficulty, as in :func:`render_shapes`.
    """

    classes = list(SHAPE_CLASSES)

    def __init__(self, split: str = "train", *, num: int = 4000, size: int = 32, seed: int = 0,
                 transform: Callable[[torch.Tensor], object] | None = None, **difficulty: Any) -> None:
        if split not in SPLIT_SEEDS:
            raise ValueError(f"shapes split must be one of {tuple(SPLIT_SEEDS)}, got {split!r}")
        self.classes = list(shape_classes(difficulty.get("num_classes"), difficulty.get("classes")))
        images, labels = render_shapes(num, size, seed=1000 * seed + SPLIT_SEEDS[split], **difficulty)
        self.images = torch.from_numpy(images.copy())
        self.targets = torch.from_numpy(labels.copy())
        self.split, self.transform = split, transform

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[object, int]:
        x = self.images[index]
        return (self.transform(x) if self.transform is not None else x), int(self.targets[index])


# ------------------------------------------------------------------------------------------------ from a recipe
def shapes_split(cfg: Any, split: str, transform: Callable[[torch.Tensor], object] | None = None) -> ShapesDataset:
    """One split of a recipe's shapes (``data.dataset: shapes``): ``data.num_<split>`` images of ``data.img_size``,
    difficulty ``data.shapes``, seeded by ``train.seed``; uint8 images unless ``transform`` is given."""
    d = cfg.data
    nums = {"train": d.num_train, "val": d.num_val, "test": d.num_test}
    if split not in nums:
        raise DataError(f"shapes split {split!r}: expected one of {tuple(nums)}")
    return ShapesDataset(split, num=nums[split], size=d.img_size, seed=cfg.train.seed, transform=transform,
                         **d.shapes)


def build_shapes(cfg: Any) -> tuple[ShapesDataset, ShapesDataset, int]:
    """(train, val, classes) for classification: a random-resized crop and flip for training, the plain image for
    evaluation (``data.train_split`` / ``data.val_split``)."""
    from torchvision.transforms import v2
    d = cfg.data
    norm = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(d.mean), list(d.std))]
    train_tf = v2.Compose([v2.RandomResizedCrop(d.img_size, scale=(0.5, 1.0), antialias=True),
                           v2.RandomHorizontalFlip(cfg.aug.hflip), *norm])
    train = shapes_split(cfg, d.train_split, train_tf)
    return train, shapes_split(cfg, d.val_split, v2.Compose(norm)), train.num_classes
