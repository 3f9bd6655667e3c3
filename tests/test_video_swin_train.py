"""Video Swin end to end: real mp4 files through decord, the engine, checkpoints, multi-view test, broken files."""
import json
import os
import shutil

import pytest

from cli import test as video_test
from cli import train as video_train
from core.video.synthetic import ensure_moving_shapes
from helpers import torchrun

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
    from core.engine.curves import plot_runs, read_metrics
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


@pytest.mark.slow  # torchrun DDP is in the default suite through test_distributed and test_moby_ddp
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


def test_inflation_recipe_needs_a_pretrained_file(shapes, tmp_path, capsys):
    assert run_train(tmp_path / "run", shapes, "model.pretrained_kwargs={inflate: true}") == 2
    assert "model.pretrained is empty but model.pretrained_kwargs.inflate is true" in capsys.readouterr().err


def test_inflated_recipe_trains_and_tests_without_the_2d_file(shapes, tmp_path, capsys):
    """Inflate 2D weights at start; the multi-view test later needs only the run's checkpoint."""
    import torch

    from core import create_model
    two_d = create_model("swin_t", embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=4, num_classes=9)
    torch.save({"model": two_d.state_dict()}, tmp_path / "in1k.pth")
    out = tmp_path / "run"
    assert run_train(out, shapes, "train.epochs=1", f"model.pretrained={tmp_path}/in1k.pth",
                     "model.pretrained_kwargs={inflate: true}") == 0
    log = (out / "log.txt").read_text()  # one line says what was loaded and how
    assert f"initial weights: {tmp_path}/in1k.pth (ours format); inflated 2D -> 3D" in log
    assert "new classifier head (freshly initialised)" in log
    # the same 2D file without inflation: one line naming the fix, not a traceback
    rc = run_train(tmp_path / "run2", shapes, "train.epochs=1", f"model.pretrained={tmp_path}/in1k.pth")
    err = capsys.readouterr().err
    assert rc == 2 and "checkpoint error:" in err and "This is a 2D checkpoint: inflate it" in err
    assert "model.pretrained_kwargs={inflate: true}" in err
    (tmp_path / "in1k.pth").unlink()
    assert video_test.main(["--checkpoint", str(out / "last.pth"), "--out", str(tmp_path / "t")]) == 0


def _list_with_broken(shapes, tmp_path, broken_positions, n=16):
    """A copy of the data whose train list has n entries, those at broken_positions unreadable."""
    data = tmp_path / "data"
    shutil.copytree(shapes, data)
    good = (data / "train.txt").read_text().splitlines()
    lines = []
    for i in range(n):
        if i in broken_positions:
            (data / "train" / f"broken{i}.mp4").write_bytes(b"\x00" * 64)
            lines.append(f"train/broken{i}.mp4 0")
        else:
            lines.append(good[i])
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    return data


def test_a_batch_of_only_broken_videos_still_steps(shapes, tmp_path):
    """Every clip of the epoch's first batch unreadable: the task returns None, the trainer makes a zero step, the
    skip is counted, and the epoch ends (an epoch with no readable clip at all is a data error:
    tests/faults/test_data.py)."""
    import torch
    g = torch.Generator()
    g.manual_seed(0)  # DistributedSampler: seed (train.seed=0) + epoch 0
    data = _list_with_broken(shapes, tmp_path, set(torch.randperm(8, generator=g)[:4].tolist()), n=8)
    out = tmp_path / "run"
    with pytest.warns(UserWarning):
        assert run_train(out, data, "train.epochs=1", "data.dataset=kinetics", f"data.ann_train={data}/train.txt",
                         f"data.ann_val={data}/val.txt", "data.batch_size=4", "train.log_interval=1") == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r for r in rows if r.get("kind") == "epoch"][-1]["skipped_videos"] == 4
    # the all-broken batch is a (zero) step of the schedule but no loss of the log: only iteration 2 has a row
    assert [r["iter"] for r in rows if r.get("kind") == "train"] == [2]
    from core.engine.checkpoint import load_checkpoint
    assert load_checkpoint(str(out / "last.pth"))["iteration"] == 2


def test_ddp_rank_with_only_broken_videos_stays_in_step(shapes, tmp_path):
    """torchrun, 2 ranks: rank 1's whole batch is unreadable while rank 0's is fine; training still completes."""
    import torch
    g = torch.Generator()
    g.manual_seed(0)  # DistributedSampler: seed (train.seed=0) + epoch 0
    perm = torch.randperm(16, generator=g).tolist()
    data = _list_with_broken(shapes, tmp_path, set(perm[1::2]))  # every index rank 1 draws
    out = tmp_path / "ddp"
    log = torchrun("video_swin.train", "--opt", f"train.output_dir={out}", f"data.root={data}", *FAST,
                   "train.epochs=1", "train.device=cpu", "data.dataset=kinetics", f"data.ann_train={data}/train.txt",
                   f"data.ann_val={data}/val.txt", "train.seed=0")
    final = json.loads((out / "results.json").read_text())["final"]
    assert final["skipped_videos"] == 8 and final["count"] == 16
    assert "batch 8 per process x 2 processes" in log


def test_misspelled_annotation_file_and_class_names_of_a_list_file(shapes, tmp_path, capsys):
    rc = run_train(tmp_path / "run", shapes, "data.dataset=kinetics", f"data.ann_train={shapes}/trian.txt",
                   f"data.ann_val={shapes}/val.txt")
    assert rc == 2 and f"data error: data.ann_train = '{shapes}/trian.txt' is not a file" in capsys.readouterr().err
    names = tmp_path / "names.txt"
    names.write_text("to the left\nto the right\nupwards\ndownwards\n")
    out = tmp_path / "named"
    assert run_train(out, shapes, "data.dataset=kinetics", f"data.ann_train={shapes}/train.txt", "train.epochs=1",
                     f"data.ann_val={shapes}/val.txt", f"data.classes_file={names}") == 0
    assert (out / "classes.txt").read_text().splitlines() == ["to the left", "to the right", "upwards", "downwards"]
    log = (out / "log.txt").read_text()
    assert f"videos: 48 training, 16 validation, 4 classes ({shapes})" in log and "set up in " in log
    assert log.index("decoded-video preload") < log.index("set up in ") < log.index("done in ")
    assert "top5" not in json.loads((out / "results.json").read_text())["final"]  # 4 classes: no top-5


def test_official_kinetics_csv_layout_with_separate_val_folder(shapes, tmp_path):
    """train.csv / validate.csv (label,youtube_id,time_start,time_end,split) over class folders, as K400 ships."""
    classes = (shapes / "classes.txt").read_text().split()
    for split, ann in (("train", "train.txt"), ("val", "val.txt")):
        rows = ["label,youtube_id,time_start,time_end,split"]
        for i, line in enumerate((shapes / ann).read_text().splitlines()):
            rel, label = line.rsplit(" ", 1)
            name = classes[int(label)]
            dst = tmp_path / "k400" / split / name / f"vid{split}{i:04d}_{i:06d}_{i + 10:06d}.mp4"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shapes / rel, dst)
            rows.append(f"{name},vid{split}{i:04d},{i},{i + 10},{split}")
        (tmp_path / f"{split}.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert run_train(out, tmp_path / "k400" / "train", "train.epochs=1", "data.dataset=kinetics",
                     f"data.root_val={tmp_path}/k400/val", f"data.ann_train={tmp_path}/train.csv",
                     f"data.ann_val={tmp_path}/val.csv") == 0
    assert (out / "classes.txt").read_text().split() == sorted(classes)
    assert json.loads((out / "results.json").read_text())["final"]["count"] == 16


def test_own_videos_without_data_dataset_or_without_a_validation_list_are_config_errors(shapes, tmp_path, capsys):
    """A user's folder named with a generated data.dataset, list files with a generated set, a training list
    without a validation list: each stops at start (exit 2) naming the field; the user's folder is left as it was."""
    mine = tmp_path / "my_clips"
    shutil.copytree(shapes, mine)
    (mine / ".complete.json").unlink()
    before = sorted(p.name for p in mine.rglob("*"))
    assert run_train(tmp_path / "a", mine, "train.epochs=1") == 2
    err = capsys.readouterr().err
    assert "data.dataset = 'moving_shapes'" in err and "set data.dataset=kinetics" in err
    assert sorted(p.name for p in mine.rglob("*")) == before
    assert run_train(tmp_path / "b", shapes, "train.epochs=1", f"data.ann_train={mine}/train.txt") == 2
    assert "data.ann_train given, but data.dataset = 'moving_shapes' is a generated set" in capsys.readouterr().err
    assert run_train(tmp_path / "c", mine, "train.epochs=1", "data.dataset=kinetics",
                     f"data.ann_train={mine}/train.txt") == 2
    assert "no validation videos in" in capsys.readouterr().err
