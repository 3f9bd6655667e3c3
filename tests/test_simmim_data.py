"""SimMIM data: the spin/zoom clip set (real mp4s), photo crops, the few-label subset; end-to-end video runs (slow)."""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch

from core.classification.data import DigitsDataset
from core.engine.checkpoint import load_checkpoint
from core.video.synthetic import SPIN_ZOOM_CLASSES, ensure_spin_zoom, render_spin_zoom_clip
from simmim.config import FinetuneSection, PretrainDataConfig
from simmim.data import PhotoCrops, load_photos
from simmim.runs import label_subset


def test_spin_zoom_set_is_real_decodable_mp4(tmp_path):
    import decord
    root = ensure_spin_zoom(tmp_path / "sz", num_train=8, num_val=4, num_frames=8)
    assert (root / "classes.txt").read_text().split() == list(SPIN_ZOOM_CLASSES)
    lines = (root / "train.txt").read_text().split("\n")[:-1]
    assert [int(ln.split()[1]) for ln in lines] == [0, 1, 2, 3] * 2
    vr = decord.VideoReader(str(root / lines[2].split()[0]))
    frames = vr.get_batch(list(range(len(vr)))).asnumpy()
    assert frames.shape == (8, 32, 32, 3)
    clip = render_spin_zoom_clip(np.random.default_rng([0, 0, 2]), "zoom_in", 8, 32).astype(float)
    other = render_spin_zoom_clip(np.random.default_rng([0, 0, 3]), "zoom_out", 8, 32).astype(float)
    # the decoded frames are the rendered ones, up to the lossy yuv420p codec
    assert np.abs(frames - clip).mean() < 0.5 * np.abs(frames - other).mean()
    assert ensure_spin_zoom(tmp_path / "sz", num_train=8, num_val=4, num_frames=8) == root  # cached


def test_spin_zoom_motion_is_what_tells_the_class():
    """A rotation moves pixels at speed angular speed x radius: frames change more at the border than near
    the centre."""
    rng = np.random.default_rng(0)
    cw = render_spin_zoom_clip(rng, "clockwise", 16, 32).astype(float)
    diff = np.abs(np.diff(cw, axis=0)).mean(axis=(0, 3))
    yy, xx = np.mgrid[0:32, 0:32]
    r = np.hypot(yy - 15.5, xx - 15.5)
    assert diff[r > 12].mean() > diff[r < 4].mean()
    with pytest.raises(ValueError, match="motion must be one of"):
        render_spin_zoom_clip(rng, "left")


def test_photo_crops_hold_out_the_bottom_third():
    d = PretrainDataConfig(dataset="photos", img_size=32, photo_scale=0.25, epoch_size=5)
    train, val = PhotoCrops("train", d), PhotoCrops("val", d)
    assert len(train) == 5 and train[0][0].shape == (3, 32, 32)
    assert len(val) > 0 and all(v[0].shape == (3, 32, 32) for v in (val[0], val[len(val) - 1]))
    rows = load_photos(0.25)[0].shape[1]
    assert train.images[0].shape[1] == int(rows * 2 / 3)  # val crops start below: never seen in training
    assert len(val) == 2 * 1 * len(range(0, load_photos(0.25)[0].shape[2] - 32 + 1, 16))  # 2 photos, 1 row


def test_label_subset_keeps_a_stratified_fraction(caplog):
    ds = DigitsDataset("train", img_size=8)
    with caplog.at_level("INFO", logger="swin"):
        sub = label_subset(ds, FinetuneSection(label_fraction=0.1, label_seed=0))
    assert f"{len(sub)} of {len(ds)} training labels kept (10 classes" in caplog.text
    labels = ds.targets.numpy()
    kept = labels[sub.indices]
    for c in range(10):
        assert (kept == c).sum() == math.ceil(0.1 * (labels == c).sum())
    again = label_subset(ds, FinetuneSection(label_fraction=0.1, label_seed=0))
    other = label_subset(ds, FinetuneSection(label_fraction=0.1, label_seed=1))
    assert sub.indices == again.indices != other.indices
    assert label_subset(ds, FinetuneSection()) is ds


@pytest.mark.slow
def test_video_pretrain_then_finetune_from_it(tmp_path):
    """Per-frame-masked pretraining (the recipe) on generated clips, then few-label fine-tuning that loads its
    backbone."""
    from cli.finetune import main as finetune
    from cli.pretrain import main_simmim as pretrain
    root = str(tmp_path / "sz")
    common = ["train.progress=false", "train.tensorboard=false", "train.device=cpu", "data.num_workers=0",
              f"data.root={root}", "data.num_train=16", "data.num_val=8"]
    pre = str(tmp_path / "pre")
    assert pretrain(["--config", "configs/simmim/tiny_spin_zoom.yaml", "--output-dir", pre, "--opt", *common,
                     "train.epochs=1", "train.eval_interval=1"]) == 0
    ckpt = load_checkpoint(os.path.join(pre, "last.pth"))
    assert ckpt["task"]["mask_token"].shape == (1, 1, 32) and ckpt["best"]["l1"] > 0
    ft = str(tmp_path / "ft")
    assert finetune(["--config", "configs/simmim/tiny_spin_zoom_ft.yaml", "--output-dir", ft, "--opt", *common,
                     f"model.pretrained={pre}/last.pth", "finetune.label_fraction=0.5", "train.epochs=1"]) == 0
    out = load_checkpoint(os.path.join(ft, "last.pth"))
    k = "layers.0.blocks.0.attn.qkv.weight"
    assert not torch.equal(out["model"][k], ckpt["model"][k]) and out["model"]["head.fc.weight"].shape[0] == 4
