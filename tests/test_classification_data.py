"""Image data: ImageFolder checks, unreadable images, the embedded digits set, transforms and samplers."""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from core.classification.config import ClassificationConfig
from core.classification.data import (
    IGNORE_INDEX,
    DataError,
    DigitsDataset,
    SafeImageFolder,
    UnreadableImageWarning,
    build_image_datasets,
    build_transform,
    check_image_folder,
)
from core.engine.config import load_config as _load_config
from core.engine.data import build_loaders


def load_config(path, overrides=None):
    return _load_config(path, overrides, ClassificationConfig)
from cli.train import main_image as main
from core.engine.distributed import DistInfo
from helpers import DIGITS, ROOT
from helpers import TINY_OPT as TINY


def _make_tree(root, classes=("cat", "dog"), n=4, size=12, seed=0):
    rng = np.random.default_rng(seed)
    for c in classes:
        os.makedirs(root / c, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / c / f"{i}.png")
    return root


def test_missing_and_malformed_folders(tmp_path):
    with pytest.raises(DataError, match=r"data folder not found: .*nowhere"):
        check_image_folder(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match=r"data.root is empty"):
        check_image_folder("")
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"no class folders in .*flat: expected"):
        check_image_folder(str(tmp_path / "flat"))
    root = _make_tree(tmp_path / "tree")
    (root / "empty_class").mkdir()
    (root / "empty_class" / "notes.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"empty class folder\(s\) with no image files .*: .*tree/empty_class$"):
        check_image_folder(str(root))


def test_cli_reports_missing_data_folder(tmp_path, capsys):
    rc = main(["--config", DIGITS, "--output-dir", str(tmp_path / "o"), "--opt", "data.dataset=imagefolder",
               f"data.root={tmp_path / 'missing'}"])
    assert rc == 2
    assert f"data error: data folder not found: {tmp_path / 'missing' / 'train'}" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "o" / "last.pth")


def test_class_mismatch_between_splits(tmp_path):
    _make_tree(tmp_path / "d" / "train", ("a", "b"))
    _make_tree(tmp_path / "d" / "val", ("a", "c"))
    cfg = load_config(None, ["data.dataset=imagefolder", f"data.root={tmp_path / 'd'}", "data.img_size=16"])
    with pytest.raises(DataError, match=r"class folders differ .*only in train \['b'\], only in val \['c'\]"):
        build_image_datasets(cfg)


def test_unreadable_image_is_skipped_counted_and_named(tmp_path):
    root = _make_tree(tmp_path / "t")
    bad = root / "cat" / "1.png"
    bad.write_bytes(b"\x89PNG this is not an image")
    train = SafeImageFolder(str(root), lambda im: torch.tensor(im.size), train=True)
    idx = train.samples.index((str(bad), 0))
    with pytest.warns(UnreadableImageWarning, match=r"skipping unreadable image .*cat/1\.png"):
        x, y = train[idx]
    assert train.num_skipped == 1
    assert (x.tolist(), y) == ([12, 12], 0)  # replaced by the next sample (cat/2.png)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train[idx]  # warned once per file
    assert train.num_skipped == 1

    val = SafeImageFolder(str(root), lambda im: torch.tensor(im.size), train=False, placeholder_shape=(2,))
    with pytest.warns(UnreadableImageWarning, match=r"cat/1\.png"):
        x, y = val[idx]
    assert y == IGNORE_INDEX and x.shape == (2,) and val.num_skipped == 1

    with pytest.warns(UnreadableImageWarning, match=r"cat/1\.png"):
        checked = SafeImageFolder(str(root), verify=True)
    assert len(checked) == 7 and checked.num_skipped == 1 and str(bad) not in [p for p, _ in checked.samples]


def test_imagefolder_training_run_with_broken_images(tmp_path, capsys):
    d = tmp_path / "d"
    _make_tree(d / "train", n=8)
    _make_tree(d / "val", n=3, seed=1)
    (d / "train" / "dog" / "3.png").write_bytes(b"garbage")
    (d / "val" / "cat" / "0.png").write_bytes(b"garbage")
    out = tmp_path / "o"
    with pytest.warns(UnreadableImageWarning) as rec:
        rc = main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY, "data.dataset=imagefolder",
                   f"data.root={d}", "data.img_size=16", "data.batch_size=4", "train.epochs=1",
                   "sched.warmup_epochs=0", "train.progress=false", "train.tensorboard=false", "model.num_classes=0",
                   "data.mean=[0.5, 0.5, 0.5]", "data.std=[0.5, 0.5, 0.5]", "aug.mixup=0.8", "aug.cutmix=1.0"])
    assert rc == 0
    named = {os.path.relpath(str(w.message).split()[3].rstrip(":"), d) for w in rec}
    assert named == {"train/dog/3.png", "val/cat/0.png"}
    res = json.load(open(out / "results.json"))
    assert res["final"]["count"] == 5  # 6 validation images, the broken one left out
    assert "1 unreadable training image(s) skipped" in capsys.readouterr().out


def test_transforms_follow_recipe():
    cfg = load_config(os.path.join(ROOT, "configs", "swin", "swin_t_in1k.yaml"))
    tr = build_transform(cfg, train=True)
    text = repr(tr)
    assert "RandAugment" in text and "RandomErasing" in text and "RandomResizedCrop" in text
    assert "bicubic" in text.lower()
    ev = build_transform(cfg, train=False)
    x = ev(Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8)))
    assert tuple(x.shape) == (3, 224, 224)
    assert "Resize(size=256" in repr(ev) and "CenterCrop(size=(224, 224))" in repr(ev)
    y = tr(Image.fromarray(np.zeros((300, 400, 3), dtype=np.uint8)))
    assert tuple(y.shape) == (3, 224, 224)


def test_digits_dataset():
    tr, va = DigitsDataset("train", img_size=32), DigitsDataset("val", img_size=32)
    assert (len(tr), len(va)) == (1437, 360)
    counts = va.targets.bincount()
    assert tr.images.shape == (1437, 3, 32, 32) and len(counts) == 10
    assert int(counts.min()) >= 35 and int(counts.max()) <= 37  # stratified: 10% +- 1 per class
    assert float(tr.images.min()) == -1.0 and float(tr.images.max()) == 1.0  # (x - 0.5) / 0.5 of [0, 1]
    assert torch.equal(DigitsDataset("val", img_size=32).images, va.images)  # fixed split
    x0, y0 = va[0]
    assert torch.equal(x0, va.images[0]) and y0 == int(va.targets[0])  # no augmentation on val
    torch.manual_seed(0)
    shifted = {tuple(tr[5][0].flatten()[:200].tolist()) for _ in range(8)}
    assert len(shifted) > 1  # random translations in training
    with pytest.raises(DataError, match=r"digits split must be 'train' or 'val'"):
        DigitsDataset("test")


def test_loaders_seeded_per_epoch_and_sharded():
    cfg = load_config(DIGITS, ["data.batch_size=100", "train.seed=3"])
    tr, va, n = build_image_datasets(cfg)
    assert n == 10
    info = DistInfo(rank=1, world_size=2)
    tl, vl = build_loaders(cfg, tr, va, info)
    assert len(tl) == 7  # ceil(1437 / 2) = 719 per rank, 7 full batches
    assert list(vl.sampler)[:3] == [1, 3, 5] and len(vl.sampler) == 180

    def order(epoch):
        tl.sampler.set_epoch(epoch)
        return list(tl.sampler)

    assert order(0) == order(0) and order(0) != order(1)
    other = build_loaders(cfg, tr, va, DistInfo(rank=0, world_size=2))[0].sampler
    other.set_epoch(1)
    assert len(set(order(1)) & set(other)) <= 1  # disjoint shards (but one padding index)
    assert len(set(order(1)) | set(other)) == 1437
    with pytest.raises(DataError, match=r"training set too small: 719 samples per process < data.batch_size 1000"):
        build_loaders(load_config(DIGITS, ["data.batch_size=1000"]), tr, va, info)
