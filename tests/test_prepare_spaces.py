"""video_swin.prepare on a Kinetics-style tree whose class folders and file names hold spaces (list files and the
official CSV), then the training reader on its output; settings recorded before the first video, so a killed run
rerun with another --short-side is refused; empty lists named as empty; --decoder pyav reaching prepare."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cli import prepare as cmd
from core.video.data import build_video_dataset
from core.video.decoders import iter_frames, open_video
from core.video.synthetic import write_mp4
from helpers import ROOT

av = pytest.importorskip("av")
pytest.importorskip("decord")

CLASSES = ["air drumming", "playing bass"]


def _clip(path: Path, seed: int, frames: int = 12, h: int = 48, w: int = 80) -> None:
    """A smooth moving gradient (quick to encode), different per seed."""
    yy, xx = np.mgrid[0:h, 0:w]
    video = np.stack([np.stack([3 * xx + 4 * t + seed * 20, 5 * yy + t, 2 * (xx + yy) + seed * 7], -1)
                      for t in range(frames)]) % 256
    path.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(path, video.astype(np.uint8))


def _size(path: Path) -> tuple[int, int]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.height, cc.width


@pytest.fixture
def spaced(tmp_path) -> Path:
    """``k400 src/train/<class with a space>/<name with spaces>.mp4``, a list file and a Kinetics CSV."""
    root = tmp_path / "k400 src"
    lines = []
    for i, rel in enumerate(["train/air drumming/clip 00.mp4", "train/air drumming/clip 01.mp4",
                             "train/playing bass/a b  c.mp4"]):
        _clip(root / rel, i)
        lines.append(f"{rel} {int('playing' in rel)}\n")
    (root / "train list.txt").write_text("".join(lines))
    for i, (label, yid) in enumerate([("air drumming", "ab-c"), ("playing bass", "x_y1")]):
        _clip(root / label / f"{yid}_000010_000020.mp4", 10 + i)
    (root / "val.csv").write_text("label,youtube_id,time_start,time_end,split\n"
                                  "air drumming,ab-c,10,20,val\nplaying bass,x_y1,10,20,val\n")
    return root


def test_names_with_spaces_prepare_and_load_through_list_files(spaced, tmp_path, capsys):
    out = tmp_path / "k400 out"
    assert cmd.main(["--root", str(spaced), "--out", str(out), "--list", str(spaced / "train list.txt"),
                     "--short-side", "32", "--workers", "1", "--no-progress"]) == 0
    assert "prepared 3, already done 0, bad 0 of 3 videos" in capsys.readouterr().out
    assert (out / "train list.txt").read_text() == (spaced / "train list.txt").read_text()
    assert _size(out / "train/playing bass/a b  c.mp4") == (32, 54)
    ds = build_video_dataset(str(out), str(out / "train list.txt"), split="train", clip_len=4, frame_interval=2,
                             crop_size=16)
    assert len(ds) == 3 and [y for _, y in ds.samples] == [0, 0, 1] and ds[2]["video"].shape == (3, 4, 16, 16)


def test_names_with_spaces_prepare_and_load_through_the_csv(spaced, tmp_path, capsys):
    out = tmp_path / "out"
    assert cmd.main(["--root", str(spaced), "--out", str(out), "--list", str(spaced / "val.csv"),
                     "--short-side", "32", "--workers", "1", "--no-progress"]) == 0
    assert "prepared 2, already done 0, bad 0 of 2 videos" in capsys.readouterr().out
    assert (out / "air drumming" / "ab-c_000010_000020.mp4").is_file()
    ds = build_video_dataset(str(out), str(out / "val.csv"), split="test", num_clips=1, num_crops=1, clip_len=4,
                             crop_size=16)
    assert ds.classes == CLASSES and len(ds) == 2 and not ds.missing and ds[1]["video"].shape == (1, 3, 4, 16, 16)


def test_an_empty_list_is_named_as_empty_and_a_list_is_never_written_empty(spaced, tmp_path, capsys):
    out = tmp_path / "out"
    empty = spaced / "val list.txt"
    empty.write_text("# nothing yet\n\n")
    argv = ["--root", str(spaced), "--out", str(out), "--workers", "1", "--no-progress", "--short-side", "32"]
    assert cmd.main([*argv, "--list", str(spaced / "train list.txt"), str(empty)]) == 2
    err = capsys.readouterr().err
    assert "0 entries in" in err and "val list.txt" in err and "missing" not in err
    assert not out.exists()  # refused before anything is written
    (spaced / "header.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    assert cmd.main([*argv, "--list", str(spaced / "header.csv")]) == 2
    assert "0 entries in" in capsys.readouterr().err and not out.exists()
    # a list none of whose videos is readable: an error, and no empty list file for the next training to meet
    empty.write_text("train/air drumming/gone 1.mp4 0\n")
    assert cmd.main([*argv, "--list", str(empty), str(spaced / "train list.txt")]) == 1
    err = capsys.readouterr().err
    assert "train/air drumming/gone 1.mp4: missing" in err
    assert "none of the 1 videos of" in err and "val list.txt not written" in err
    assert not (out / "val list.txt").exists() and (out / "train list.txt").is_file()


def test_the_decoder_choice_reaches_prepare(spaced, tmp_path, monkeypatch):
    import core.video.prepare as core_prepare
    used, fed = [], []

    def spy_open(path, *, decoder="decord", **kw):
        used.append(decoder)
        return open_video(path, decoder=decoder, **kw)

    def spy_frames(video, chunk=16):
        for frames in iter_frames(video, chunk):
            fed.append(frames)
            yield frames

    monkeypatch.setattr(core_prepare, "open_video", spy_open)
    monkeypatch.setattr(core_prepare, "iter_frames", spy_frames)
    sources, outputs = {}, {}
    for decoder in ("decord", "pyav"):
        out = tmp_path / decoder
        used.clear(), fed.clear()
        assert cmd.main(["--root", str(spaced), "--out", str(out), "--list", str(spaced / "train list.txt"),
                         "--short-side", "32", "--workers", "1", "--no-progress", "--decoder", decoder]) == 0
        assert used == [decoder] * 6  # each source read, and each output checked, by it
        sources[decoder] = torch.cat(fed)
        outputs[decoder] = torch.cat([open_video(str(p)).get(np.arange(12)) for p in sorted(out.rglob("*.mp4"))])
    # the same source frames went into the encoder (H.264 itself is not bit-reproducible here: ENVIRONMENT.md)
    assert sources["decord"].shape == (36, 48, 80, 3) and torch.equal(sources["decord"], sources["pyav"])
    assert (outputs["decord"].float() - outputs["pyav"].float()).abs().mean() < 1.0


def test_settings_are_recorded_before_the_first_video(spaced, tmp_path, monkeypatch, capsys):
    """A run stopped after its first video (in-process here; the SIGKILL test below is the slow one) has recorded
    its settings: a rerun with another --short-side is refused and the folder keeps one size."""
    import core.video.prepare as core_prepare
    real, calls = core_prepare.reencode, []

    def stop_after_one(job):
        calls.append(job.rel)
        if len(calls) > 1:
            raise KeyboardInterrupt  # as a kill would stop it
        return real(job)

    monkeypatch.setattr(core_prepare, "reencode", stop_after_one)
    out = tmp_path / "out"
    argv = ["--root", str(spaced), "--out", str(out), "--list", str(spaced / "train list.txt"), "--workers", "1",
            "--no-progress"]
    with pytest.raises(KeyboardInterrupt):
        cmd.main([*argv, "--short-side", "32"])
    monkeypatch.setattr(core_prepare, "reencode", real)
    assert [p.name for p in out.rglob("*.mp4")] == ["clip 00.mp4"] and not (out / "train list.txt").exists()
    assert cmd.main([*argv, "--short-side", "24"]) == 2
    assert "was prepared with other settings (--short-side 32 -> 24)" in capsys.readouterr().err
    assert cmd.main([*argv, "--short-side", "32"]) == 0
    assert {_size(p) for p in out.rglob("*.mp4")} == {(32, 54)} and (out / "train list.txt").is_file()


@pytest.mark.slow  # a subprocess: about 5 s on a quiet 2-core machine, most of it the interpreter's imports
def test_a_killed_run_rerun_with_another_short_side_is_refused(tmp_path, capsys):
    """SIGKILL to the process group while two workers re-encode, then another --short-side: refused, one size."""
    root, out, n = tmp_path / "src dir", tmp_path / "out", 16
    for i in range(n):
        _clip(root / "some class" / f"clip {i:02d}.mp4", i, frames=16, h=144, w=176)
    (root / "all.txt").write_text("".join(f"some class/clip {i:02d}.mp4 0\n" for i in range(n)))
    argv = ["--root", str(root), "--out", str(out), "--list", str(root / "all.txt"), "--keyint", "4", "--no-progress"]
    proc = subprocess.Popen([sys.executable, "-m", "video_swin.prepare", *argv, "--short-side", "128", "--workers",
                             "2"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 60
    try:
        while not list(out.rglob("*.mp4")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    done = sorted(out.rglob("*.mp4"))
    assert proc.returncode == -signal.SIGKILL and 1 <= len(done) < n, "not killed mid-way"
    assert json.loads((out / "prepare.json").read_text())["short_side"] == 128  # written before the first video
    assert not (out / "all.txt").exists()
    assert cmd.main([*argv, "--short-side", "64", "--workers", "1"]) == 2
    assert "was prepared with other settings (--short-side 128 -> 64)" in capsys.readouterr().err
    assert sorted(out.rglob("*.mp4")) == done and {_size(p) for p in done} == {(128, 156)}
    # the same settings continue it: one size throughout, the half files of the killed workers gone
    assert cmd.main([*argv, "--short-side", "128", "--workers", "1"]) == 0
    assert f"already done {len(done)}" in capsys.readouterr().out
    assert {_size(p) for p in out.rglob("*.mp4")} == {(128, 156)} and len(list(out.rglob("*.mp4"))) == n
    assert not list(out.rglob("*.tmp")) and (out / "all.txt").read_text() == (root / "all.txt").read_text()
