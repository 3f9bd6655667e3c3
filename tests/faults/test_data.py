"""Data faults in one run: zero-byte, truncated and renamed-text files are skipped and counted; a short video
and an odd resolution are read (short clips loop); a missing entry is dropped at start; an out-of-range label
stops at start naming file and line. A run that cannot train fails: no readable training video in an epoch, none in
validation, or more than data.max_skipped_fraction unreadable stops with exit 2 naming the list, count and files."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from cli import train as video_train
from core.video.synthetic import ensure_moving_shapes, write_mp4

TINY = ["train.progress=false", "train.tensorboard=false", "data.num_workers=0", "data.num_clips=1",
        "data.num_crops=1", "data.dataset=kinetics", "train.epochs=1",
        "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], window_size: [4, 4, 4]}"]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    src = ensure_moving_shapes(tmp_path_factory.mktemp("d") / "shapes", num_train=16, num_val=8)
    data = tmp_path_factory.mktemp("faulty") / "data"
    shutil.copytree(src, data)
    good = sorted((data / "train").rglob("*.mp4"))[0]
    (data / "train" / "zero.mp4").write_bytes(b"")
    (data / "train" / "truncated.mp4").write_bytes(good.read_bytes()[:400])
    (data / "train" / "notes.mp4").write_text("these are my notes, renamed by mistake\n" * 20)
    rng = np.random.default_rng(0)
    write_mp4(data / "train" / "short.mp4", rng.integers(0, 255, (2, 32, 32, 3), dtype=np.uint8))  # 2 of 8 frames
    write_mp4(data / "train" / "odd.mp4", rng.integers(0, 255, (16, 38, 54, 3), dtype=np.uint8))  # odd size
    lines = (data / "train.txt").read_text().splitlines()
    lines += ["train/zero.mp4 0", "train/truncated.mp4 1", "train/notes.mp4 2", "train/short.mp4 3",
              "train/odd.mp4 0", "train/missing.mp4 1"]
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    return data


def test_broken_files_skipped_counted_and_the_rest_trained(faulty, tmp_path):
    out = tmp_path / "run"
    with pytest.warns(UserWarning):
        rc = video_train.main(["--output-dir", str(out), "--opt", f"data.root={faulty}", *TINY, "data.batch_size=7",
                               f"data.ann_train={faulty}/train.txt", f"data.ann_val={faulty}/val.txt"])
    assert rc == 0
    epoch = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"epoch"' in x][-1]
    assert epoch["skipped_videos"] == 3  # zero-byte, truncated, text; short and odd-sized ones are read
    log = (out / "log.txt").read_text()
    assert "1 of 22 videos are missing and dropped" in log and "missing.mp4" in log  # warnings reach log.txt
    for name in ("zero.mp4", "truncated.mp4", "notes.mp4"):
        assert name in log


def test_out_of_range_label_stops_at_start_naming_the_line(faulty, tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_text((faulty / "train.txt").read_text() + "train/odd.mp4 7\n")
    names = tmp_path / "classes.txt"
    names.write_text("left\nright\nup\ndown\n")
    rc = video_train.main(["--output-dir", str(tmp_path / "run"), "--opt", f"data.root={faulty}", *TINY,
                           f"data.ann_train={bad}", f"data.ann_val={faulty}/val.txt", f"data.classes_file={names}"])
    err = capsys.readouterr().err
    assert rc == 2 and f"data error: {bad}:23: label 7 of 'train/odd.mp4' is outside [0, 4)" in err


def _bad_list(faulty, path, n_bad, good=0):
    """A list of ``n_bad`` unreadable entries (zero-byte and text files) and the first ``good`` readable ones."""
    lines = (faulty / "train.txt").read_text().splitlines()[:good]
    lines += [f"train/{'zero' if i % 2 else 'notes'}.mp4 {i % 4}" for i in range(n_bad)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("which", ["train", "val"])
def test_nothing_readable_fails_naming_the_list(faulty, tmp_path, capsys, which):
    bad = _bad_list(faulty, tmp_path / "allbad.txt", 8)
    lists = {"train": faulty / "train.txt", "val": faulty / "val.txt", which: bad}
    out = tmp_path / "run"
    with pytest.warns(UserWarning):
        rc = video_train.main(["--output-dir", str(out), "--opt", f"data.root={faulty}", *TINY, "data.batch_size=4",
                               "train.max_iters_per_epoch=2", f"data.ann_train={lists['train']}",
                               f"data.ann_val={lists['val']}", "train.epochs=2"])
    err = [x for x in capsys.readouterr().err.splitlines() if "error" in x]  # not the progress bar's lines
    where = "training epoch" if which == "train" else "validation"
    n = 8
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith(f"data error: no readable video in the {where}: {n} of {n} videos of {bad} could not "
                             f"be decoded, e.g. "), err
    assert "zero.mp4" in err[0] and "notes.mp4" in err[0]
    assert not (out / "best.pth").exists() and not (out / "results.json").exists()


def test_mostly_unreadable_stops_at_the_threshold(faulty, tmp_path, capsys):
    mostly = _bad_list(faulty, tmp_path / "mostly.txt", 12, good=4)  # 12 of 16 unreadable
    args = ["--opt", f"data.root={faulty}", *TINY, "data.batch_size=4", f"data.ann_train={mostly}",
            f"data.ann_val={faulty}/val.txt"]
    with pytest.warns(UserWarning):
        rc = video_train.main(["--output-dir", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert rc == 2 and "data error: more than data.max_skipped_fraction=0.5 unreadable in the training epoch: " \
                       f"12 of 16 videos of {mostly}" in err
    with pytest.warns(UserWarning):  # a higher threshold lets the readable quarter train
        rc = video_train.main(["--output-dir", str(tmp_path / "run2"), *args, "data.max_skipped_fraction=0.9"])
    assert rc == 0 and (tmp_path / "run2" / "best.pth").exists()
