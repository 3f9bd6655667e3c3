"""The own-data guide's steps (docs/own-data/), in miniature: class folders of the user's own clips with another
class count than the recipe's, trained with the tiny video recipe as it is (model.num_classes 0: from the data),
SimMIM pretraining on them, fine-tuning with a fraction of the labels, then the fine-tuned checkpoint tested and
predicted with the class names; video_swin.test's result line stands on its own line after its progress bar."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("decord")

from cli import finetune, linear, predict, pretrain, test, train
from core.video.synthetic import render_clip, write_mp4
from helpers import CONFIGS

CLASSES = ("left", "right", "up")  # three classes: the tiny recipe's embedded set has four
TINY = ("model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
        "window_size: [4, 4, 4]}")
FAST = ["train.progress=false", "train.tensorboard=false", "train.curves=false", "data.num_workers=0",
        "data.decoded_cache_mb=0", "train.epochs=1", "sched.warmup_epochs=0", TINY]


@pytest.fixture(scope="module")
def myclips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("own") / "myclips"
    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for c in CLASSES:
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                write_mp4(root / split / c / f"{c}_{i}.mp4", render_clip(rng, c, 16, 40))
    return root


def test_train_pretrain_finetune_test_and_predict_on_own_clips(myclips, tmp_path, capfd):
    data = ["data.dataset=kinetics", f"data.root={myclips}"]
    run = tmp_path / "myclips"
    assert train.main(["--opt", f"train.output_dir={run}", *data, *FAST, "data.batch_size=4"]) == 0
    assert (run / "classes.txt").read_text().split() == list(CLASSES)

    ssl = tmp_path / "myclips_simmim"
    assert pretrain.main(["--config", str(CONFIGS / "simmim" / "tiny_moving_shapes.yaml"), "--opt",
                          f"train.output_dir={ssl}", *data, *FAST, "data.batch_size=4", "train.eval_interval=1"]) == 0
    ft = tmp_path / "myclips_ft"
    capfd.readouterr()
    assert finetune.main(["--config", str(CONFIGS / "simmim" / "tiny_moving_shapes_ft.yaml"), "--opt",
                          f"train.output_dir={ft}", *data, *FAST, f"model.pretrained={ssl / 'best.pth'}",
                          "finetune.label_fraction=0.5", "data.batch_size=4", "train.eval_interval=1"]) == 0
    log = (ft / "log.txt").read_text()
    assert "finetune.label_fraction = 0.5: 6 of 12 training labels kept (3 classes, label_seed 0)" in log

    capfd.readouterr()  # the fine-tuned checkpoint (its recipe has a finetune section) tests and predicts
    assert test.main(["--checkpoint", str(ft / "best.pth"), "--opt", "data.num_workers=0"]) == 0
    out, err = capfd.readouterr()
    assert out.splitlines()[-1].startswith("4x3 views, 6 videos (0 unreadable skipped): top-1 ")
    assert "multi-view test" in err and err.endswith("\n")  # the bar ended its line before the result
    assert predict.main([str(myclips / "val" / "up"), "--checkpoint", str(ft / "best.pth"), "--topk", "3"]) == 0
    rows = capfd.readouterr().out.splitlines()  # "<file>: up 35.5%, right 33.5%, left 31.0%": the class names
    assert len(rows) == 2 and all({w for w in r.split(": ", 1)[1].replace(",", " ").split() if "%" not in w}
                                  == set(CLASSES) for r in rows), rows


def test_pretrain_on_every_clip_then_fine_tune_on_the_labelled_list(myclips, tmp_path):
    """More unlabelled clips than labels (docs/own-data/pretraining.md): the flow recipe pretrains on a list of every
    clip (the unlabelled ones with label 0), fine-tuning reads the list of the labelled ones."""
    rng = np.random.default_rng(1)
    (myclips / "unlabelled").mkdir(exist_ok=True)
    for i in range(6):
        write_mp4(myclips / "unlabelled" / f"u{i}.mp4", render_clip(rng, CLASSES[i % 3], 16, 40))
    labelled = [f"train/{c}/{c}_{i}.mp4 {k}" for k, c in enumerate(CLASSES) for i in range(2)]
    unlabelled = [f"unlabelled/u{i}.mp4 0" for i in range(6)]
    val = [f"val/{c}/{c}_{i}.mp4 {k}" for k, c in enumerate(CLASSES) for i in range(2)]
    for name, lines in (("all", labelled + unlabelled), ("labelled", labelled), ("val", val)):
        (tmp_path / f"{name}.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    data = ["data.dataset=kinetics", f"data.root={myclips}", f"data.ann_val={tmp_path / 'val.txt'}"]
    ssl = tmp_path / "all_simmim"
    assert pretrain.main(["--config", str(CONFIGS / "simmim" / "tiny_spin_zoom.yaml"), "--opt",
                          f"train.output_dir={ssl}", *data, f"data.ann_train={tmp_path / 'all.txt'}", *FAST,
                          "data.batch_size=4", "train.eval_interval=1"]) == 0
    log = (ssl / "log.txt").read_text()
    assert "masked flow L1" in log and "3 iterations / 3 updates per epoch" in log  # 12 clips, batch 4
    ft = tmp_path / "labelled_ft"
    assert finetune.main(["--config", str(CONFIGS / "simmim" / "tiny_spin_zoom_ft.yaml"), "--opt",
                          f"train.output_dir={ft}", *data, f"data.ann_train={tmp_path / 'labelled.txt'}", *FAST,
                          f"model.pretrained={ssl / 'best.pth'}", "finetune.label_fraction=1.0",
                          "data.batch_size=2", "train.eval_interval=1"]) == 0
    log = (ft / "log.txt").read_text()
    assert "videos: 6 training, 6 validation, 3 classes" in log and "missing keys none" in log
    assert (ft / "classes.txt").read_text().split() == list(CLASSES)   # from classes.txt beside the lists
    probe = tmp_path / "labelled_probe"
    assert linear.main(["--config", str(CONFIGS / "moby" / "linear_tiny_spin_zoom.yaml"), "--opt",
                        f"train.output_dir={probe}", *data, f"data.ann_train={tmp_path / 'labelled.txt'}", *FAST,
                        f"model.pretrained={ssl / 'best.pth'}", "data.batch_size=4"]) == 0
    assert json.loads((probe / "results.json").read_text())["final"]["count"] == 6
