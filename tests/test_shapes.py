"""The embedded shapes set: deterministic, balanced, disjoint splits, difficulty knobs that do what they say."""
import numpy as np
import pytest

from core.classification.shapes import SHAPE_CLASSES, ShapesDataset, render_shapes


def test_deterministic_balanced_and_split_apart():
    a, ya = render_shapes(24, size=16, seed=3)
    b, yb = render_shapes(24, size=16, seed=3)
    c, _ = render_shapes(24, size=16, seed=4)
    assert a.shape == (24, 3, 16, 16) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(ya, yb)
    assert not np.array_equal(a, c)
    assert np.bincount(ya).tolist() == [4] * len(SHAPE_CLASSES)
    train, test = ShapesDataset("train", num=12, size=16), ShapesDataset("test", num=12, size=16)
    assert not (train.images == test.images).all()
    x, y = train[5]
    assert x.shape == (3, 16, 16) and y == 5 and train.num_classes == 6


def test_polarity_makes_the_shape_lighter_than_the_background():
    images, _ = render_shapes(30, size=32, seed=0, texture=0.0, noise=0.0, polarity=True)
    px = images.transpose(0, 2, 3, 1).reshape(30, -1, 3).astype(int)
    light, dark = (px >= 153).all(-1), (px <= 102).all(-1)
    assert (light | dark).all()                        # every pixel is shape (light) or background (dark)
    assert light.any(1).all() and dark.any(1).all()    # each image has both
    free, _ = render_shapes(30, size=32, seed=0, texture=0.0, noise=0.0)
    fpx = free.transpose(0, 2, 3, 1).reshape(30, -1, 3)
    assert not ((fpx >= 153).all(-1) | (fpx <= 102).all(-1)).all()   # without it, colours are anywhere


def test_difficulty_knobs_are_checked():
    images, labels = render_shapes(8, size=16, classes=["disc", "cross"])
    assert set(labels.tolist()) == {0, 1}
    assert ShapesDataset("val", num=8, size=16, num_classes=3).classes == list(SHAPE_CLASSES[:3])
    with pytest.raises(ValueError, match="scale"):
        render_shapes(4, scale=[0.3, 0.7])
    with pytest.raises(ValueError, match="num_classes"):
        render_shapes(4, num_classes=9)
    with pytest.raises(ValueError, match="split"):
        ShapesDataset("dev", num=4)
