"""Video Swin end to end: real mp4 files through decord, the engine, checkpoints, multi-view test, broken files."""
import json
import os
import shutil
from pathlib import Path

import pytest

from video_swin import test as video_test
from video_swin import train as video_train
from video_swin.synthetic import ensure_moving_shapes
from conftest import torchrun

FAST = ["train.progress=false", "train.tensorboard=false", "data.num_workers=0", "data.batch_size=8",
        "data.num_train=48", "data.num_val=16", "data.num_clips=2", "data.num_crops=1",
        "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
        "window_size: [4, 4, 4]}"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return ensure_moving_shapes(tmp_path_factory.mktemp("data") / "moving_shapes", num_train=48, num_val=16)


def run_train(out, root, *opts):
    return video_train.main(["--opt", f"train.output_dir={out}", f"data.root={root}", *FAST, *opts])


def test_train_checkpoint_and_multiview_test_agree(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_train(out, shapes, "train.epochs=2", "data.val_num_clips=2") == 0
    assert {"last.pth", "best.pth", "config.yaml", "classes.txt", "results.json", "metrics.jsonl"} <= set(os.listdir(out))
    assert (out / "classes.txt").read_text().split() == ["left", "right", "up", "down"]
    results = json.loads((out / "results.json").read_text())
    final = results["final"]
    assert final["count"] == 16 and final["skipped_videos"] == 0
    # the multi-view test of the final weights (same 2 clips x 1 crop as validation) reproduces the number
    assert video_test.main(["--checkpoint", str(out / "last.pth"), "--out", str(tmp_path / "test")]) == 0
    test = json.loads((tmp_path / "test" / "test_results.json").read_text())
    assert test["views"] == "2x1" and test["count"] == 16
    assert test["top1"] == pytest.approx(final["top1"])
    rows = (tmp_path / "test" / "test_scores.csv").read_text().splitlines()
    assert len(rows) == 17 and rows[0].startswith("video,label,pred,left,right,up,down")
    # training curves from the run's metrics
    from core.plot import plot_runs, read_metrics
    assert [r["epoch"] for r in read_metrics(str(out))["epoch"]] == [1, 2]
    png = plot_runs([str(out)], str(tmp_path / "curves.png"))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_broken_and_missing_videos_are_skipped_and_counted(shapes, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    (data / "train" / "garbage.mp4").write_bytes(b"not a video at all" * 100)
    good = next((data / "train").rglob("*.mp4"))
    (data / "train" / "truncated.mp4").write_bytes(good.read_bytes()[:300])
    lines = (data / "train.txt").read_text().splitlines()
    lines += ["train/garbage.mp4 0", "train/truncated.mp4 1", "train/missing.mp4 2"]
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "run"
    with pytest.warns(UserWarning) as caught:
        code = run_train(out, data, "train.epochs=1", "data.dataset=kinetics", f"data.ann_train={data}/train.txt",
                         f"data.ann_val={data}/val.txt", "data.batch_size=10")
    assert code == 0
    messages = " ".join(str(w.message) for w in caught)
    assert "missing.mp4" in messages and "garbage.mp4" in messages
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epoch = [r for r in rows if r.get("kind", r.get("type")) == "epoch" or "skipped_videos" in r][-1]
    assert epoch["skipped_videos"] == 2  # garbage + truncated; the missing file was dropped at start-up
    assert (out / "last.pth").exists()


def test_resume_with_other_classes_fails(shapes, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "classes.txt").write_text("a\nb\nc\nd\n")
    assert run_train(out, shapes, "train.epochs=1") == 2
    assert "classes.txt lists 4 classes that differ" in capsys.readouterr().err


def test_missing_data_root_names_the_field(tmp_path, capsys):
    assert video_train.main(["--opt", "data.dataset=kinetics", f"data.root={tmp_path}/nope"]) == 2
    assert "data.root" in capsys.readouterr().err


def test_torchrun_two_process_video_matches_single_process_test(shapes, tmp_path):
    """DDP (gloo, 2 processes): every validation video scored exactly once; same top-1 as one process."""
    out = tmp_path / "ddp"
    log = torchrun("video_swin.train", "--opt", f"train.output_dir={out}", f"data.root={shapes}", *FAST,
                   "train.epochs=1", "train.device=cpu", "data.val_num_clips=2")
    assert "batch 8 per process x 2 processes x 1 accumulation = global batch 16" in log
    final = json.loads((out / "results.json").read_text())["final"]
    assert final["count"] == 16
    assert video_test.main(["--checkpoint", str(out / "last.pth"), "--out", str(tmp_path / "single")]) == 0
    single = json.loads((tmp_path / "single" / "test_results.json").read_text())
    assert single["count"] == 16 and single["top1"] == pytest.approx(final["top1"])
