"""python -m video_swin.prepare: re-encoded videos (short side, dense keyframes, same frames), lists without the bad
files, bad files named with exit 1, nothing half-written, resumable, --scan-only writes nothing."""
from __future__ import annotations

import numpy as np
import pytest

from cli import prepare as cmd
from core.video.data import build_video_dataset
from core.video.synthetic import write_mp4

av = pytest.importorskip("av")


def _tree(tmp_path):
    root = tmp_path / "src"
    rng = np.random.default_rng(0)
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        yy, xx = np.mgrid[0:48, 0:80]
        still = np.stack([3 * xx, 5 * yy, 2 * (xx + yy)], -1).clip(0, 255).astype(np.uint8)  # smooth colours
        frames = np.repeat(still[None], 24, 0)  # a still picture: its re-encoded frames must stay close
        write_mp4(root / cls / "good.mp4", frames)
    (root / "a" / "zero.mp4").write_bytes(b"")
    (root / "a" / "notes.mp4").write_text("my notes, renamed by mistake\n" * 20)
    (root / "b" / "one.mp4").parent.mkdir(exist_ok=True)
    write_mp4(root / "b" / "one.mp4", rng.integers(0, 255, (1, 48, 80, 3), dtype=np.uint8))
    good = (root / "a" / "good.mp4").read_bytes()
    (root / "b" / "truncated.mp4").write_bytes(good[: len(good) // 3])
    (root / "train.txt").write_text("a/good.mp4 0\nb/good.mp4 1\na/zero.mp4 0\na/notes.mp4 0\nb/one.mp4 1\n"
                                    "b/truncated.mp4 1\n")
    return root


def _keyframes(path):
    with av.open(str(path)) as c:
        return [i for i, p in enumerate(c.demux(c.streams.video[0])) if p.is_keyframe and p.size]


def test_prepare_reencodes_names_bad_files_and_resumes(tmp_path, capsys):
    root, out = _tree(tmp_path), tmp_path / "out"
    argv = ["--root", str(root), "--out", str(out), "--list", str(root / "train.txt"), "--short-side", "24",
            "--keyint", "4", "--workers", "1", "--no-progress"]
    assert cmd.main(argv) == 1
    err = capsys.readouterr().err
    for name in ("zero.mp4: empty file", "notes.mp4", "one.mp4: 1 frame(s), fewer than 2", "truncated.mp4"):
        assert name in err
    assert (out / "train.txt").read_text() == "a/good.mp4 0\nb/good.mp4 1\n"
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["good.mp4", "good.mp4", "prepare.json", "train.txt"]
    with av.open(str(out / "a" / "good.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.height, s.codec_context.width) == (24, 40)  # short side 24, aspect kept
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
    assert len(frames) == 24 and _keyframes(out / "a" / "good.mp4") == [0, 4, 8, 12, 16, 20]
    # the same picture as decoding the source and resizing it (within the codec's loss)
    with av.open(str(root / "a" / "good.mp4")) as c:
        ref = next(c.decode(video=0)).reformat(width=40, height=24, format="rgb24").to_ndarray()
    assert np.abs(frames[10].astype(int) - ref.astype(int)).mean() < 3
    # the training reader reads the prepared set
    ds = build_video_dataset(str(out), str(out / "train.txt"), split="train", clip_len=8, frame_interval=2,
                             crop_size=16)
    assert len(ds) == 2 and ds[0]["video"].shape[-2:] == (16, 16)
    # resumable: a rerun keeps the finished files
    mtime = (out / "a" / "good.mp4").stat().st_mtime_ns
    assert cmd.main(argv) == 1
    assert "already done 2" in capsys.readouterr().out and (out / "a" / "good.mp4").stat().st_mtime_ns == mtime
    # another size into the same folder would mix two sizes: refused, nothing touched
    assert cmd.main([*argv, "--short-side", "16"]) == 2  # the last --short-side wins
    assert "was prepared with other settings (--short-side 24 -> 16)" in capsys.readouterr().err
    assert (out / "a" / "good.mp4").stat().st_mtime_ns == mtime


def test_scan_only_writes_nothing_and_bad_arguments_are_one_line(tmp_path, capsys):
    root = _tree(tmp_path)
    assert cmd.main(["--root", str(root), "--scan-only", "--no-progress", "--workers", "2"]) == 1
    out = capsys.readouterr()
    assert "readable 2, already done 0, bad 4 of 6 videos" in out.out
    assert not (tmp_path / "out").exists()
    for argv, msg in ((["--root", str(tmp_path / "nope"), "--scan-only"], "not a folder"),
                      (["--root", str(root)], "--out is required"),
                      (["--root", str(root), "--out", str(root)], "must differ"),
                      (["--root", str(root), "--out", "x", "--keyint", "0"], "--keyint 0: expected >= 1")):
        with pytest.raises(SystemExit):
            cmd.main(argv)
        assert msg in capsys.readouterr().err


def test_an_output_decord_cannot_read_is_reported_not_kept(tmp_path):
    pytest.importorskip("decord")
    from core.video.prepare import prepare
    src = tmp_path / "src"
    src.mkdir()
    write_mp4(src / "a.mp4", np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    (bad,) = prepare(src, tmp_path / "out", ["a.mp4"], short_side=24).outcomes  # decord 0.6.0 misreads 24 px
    assert bad.status == "bad" and "decord cannot read" in bad.reason and "data.decoder=pyav" in bad.reason
    assert not (tmp_path / "out" / "a.mp4").exists()
    (good,) = prepare(src, tmp_path / "out", ["a.mp4"], short_side=0).outcomes
    assert good.status == "done" and (tmp_path / "out" / "a.mp4").is_file()
