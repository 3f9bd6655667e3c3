"""The decoded-video preload (data.decoded_cache_mb): the videos decoded whole once, in the main process, into shared
memory that DataLoader workers read; a fresh decode's frames, the budget taken in list order, off by default, broken
files left to the reader (skipped and counted as without it), and the same final metrics with it on and off."""
from __future__ import annotations

import copy
import json
import logging
import pickle
import re
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, get_worker_info

pytest.importorskip("decord")

import core.video.data as video_data  # noqa: E402
from core.engine.data import build_loaders  # noqa: E402
from core.video.data import BrokenVideo, VideoDataset, build_video_dataset, collate_videos  # noqa: E402
from core.video.decoders import DecodedVideo, PreloadedVideos, open_video  # noqa: E402
from core.video.synthetic import ensure_moving_shapes, write_mp4  # noqa: E402

VIDEO_BYTES = 16 * 32 * 32 * 3  # a generated clip: 16 frames of 32x32 RGB
INFO = SimpleNamespace(world_size=1, rank=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return ensure_moving_shapes(tmp_path_factory.mktemp("data") / "moving_shapes", num_train=8, num_val=4)


@pytest.fixture
def paths(shapes) -> list[str]:
    return [p for p, _ in VideoDataset.from_list_file(shapes / "train.txt").samples]


@pytest.fixture
def opens(monkeypatch) -> list[str]:
    """The paths core.video.data opened with the decoder in this process, in order."""
    calls: list[str] = []

    def counting(path, **kwargs):
        calls.append(path)
        return open_video(path, **kwargs)
    monkeypatch.setattr(video_data, "open_video", counting)
    return calls


def _dataset(root: Path, mb: int = 0, split: str = "train", **kwargs) -> VideoDataset:
    return build_video_dataset(root, root / f"{split}.txt", split=split, clip_len=8, frame_interval=2,
                               crop_size=32, short_side=32, scale=(0.5, 1.0), num_clips=1, num_crops=1,
                               decoded_cache_mb=mb, **kwargs)


def _cfg(num_workers: int, batch_size: int = 4) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(batch_size=batch_size, eval_batch_size=0, num_workers=num_workers,
                                                pin_memory=False), train=SimpleNamespace(seed=0))


def _garbage(tmp_path: Path, good: str) -> tuple[str, str]:
    garbage, truncated = tmp_path / "garbage.mp4", tmp_path / "truncated.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    truncated.write_bytes(Path(good).read_bytes()[:300])
    return str(garbage), str(truncated)


# ---- the frames ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("decoder,short_side", [("decord", 0), ("decord", 20), ("pyav", 0), ("pyav", 24)])
def test_preloaded_frames_equal_a_fresh_decode(paths, decoder, short_side, one_thread):
    if decoder == "pyav":
        pytest.importorskip("av")
    ds = VideoDataset([(p, 0) for p in paths], ["a"], decoder=decoder, decode_short_side=short_side,
                      decoded_cache_mb=1)
    h = short_side or 32
    assert len(ds.preloaded) == len(paths) and ds.preloaded.nbytes == len(paths) * 16 * h * h * 3
    assert ds.preloaded.buffer.is_shared()
    rng = np.random.default_rng(0)
    for p in paths:
        video = ds.open(p)
        assert isinstance(video, DecodedVideo)
        inds = rng.integers(0, video.num_frames, size=(3, 8))
        got, ref = video.get(inds), open_video(p, decoder=decoder, short_side=short_side).get(inds)
        assert got.dtype == ref.dtype == torch.uint8 and got.shape == ref.shape
        assert got.stride() == ref.stride() and torch.equal(got, ref)
    got[:] = 0  # a served clip is a copy: changing it leaves the preloaded frames alone
    assert ds.open(paths[-1]).get(inds).any()


def test_items_do_not_depend_on_the_preload(shapes, one_thread):
    """The same seed gives the same training items (random clip, crop and flip) with the preload on and off."""
    items = []
    for mb in (0, 1):
        ds = _dataset(shapes, mb)
        torch.manual_seed(1)
        items.append([ds[i]["video"] for i in range(len(ds)) for _ in range(2)])
    for a, b in zip(items[0], items[1]):
        assert torch.equal(a, b)


# ---- decoded once, in the main process; workers read the shared memory -----------------------------------------

def test_preload_decodes_each_video_once_and_workers_read_it_from_memory(shapes, paths, opens, tmp_path, one_thread):
    """Each video opened once, in list order, while the data set is built; the loader's 2 workers then give every
    item with the files gone, the batches of a loader over the files."""
    root = shutil.copytree(shapes, tmp_path / "copy")
    ds = _dataset(root, mb=1)
    assert opens == [p.replace(str(shapes), str(root)) for p in paths]
    shutil.rmtree(root / "train")  # the mp4 files are gone: only the preloaded frames remain
    batches = []
    for train in (build_loaders(_cfg(2), ds, None, INFO, collate_fn=collate_videos)[0],
                  build_loaders(_cfg(2), _dataset(shapes), None, INFO, collate_fn=collate_videos)[0]):
        torch.manual_seed(2)
        batches.append([(b["index"].tolist(), b["skipped"], b["video"]) for b in train])
    assert sorted(i for idx, _, _ in batches[0] for i in idx) == list(range(len(ds)))
    assert all(not skipped for _, skipped, _ in batches[0]) and ds.num_skipped == 0
    for (i0, _, v0), (i1, _, v1) in zip(*batches, strict=True):
        assert i0 == i1 and torch.equal(v0, v1)
    assert len(opens) == len(paths)  # this process decoded nothing after the preload


def _flip_first_byte(_worker_id: int) -> None:
    buffer = get_worker_info().dataset.preloaded.buffer
    buffer[0] = 255 - buffer[0]


@pytest.mark.parametrize("start", ["fork", "spawn"])
def test_workers_share_the_preloaded_memory(paths, start, one_thread):
    """A worker's write to the preloaded frames is seen by the main process: one memory, not a copy per worker."""
    ds = VideoDataset([(p, 0) for p in paths[:2]], ["a"], clip_len=4, frame_interval=1, decoded_cache_mb=1)
    first = int(ds.preloaded.buffer[0])
    loader = DataLoader(ds, batch_size=2, num_workers=1, collate_fn=collate_videos, multiprocessing_context=start,
                        worker_init_fn=_flip_first_byte)
    assert len(list(loader)) == 1
    assert int(ds.preloaded.buffer[0]) == 255 - first


def test_off_by_default_decodes_every_time(shapes, paths, opens, one_thread):
    ds = VideoDataset.from_list_file(shapes / "train.txt", clip_len=8, frame_interval=2)
    assert ds.preloaded is None and not opens
    for _ in range(2):
        for i in range(len(ds)):
            ds[i]
    assert len(opens) == 2 * len(paths)
    assert not isinstance(ds.open(paths[0]), DecodedVideo)


# ---- the budget ------------------------------------------------------------------------------------------------

def test_the_budget_takes_the_videos_that_fit_in_list_order(paths):
    opened: list[str] = []

    def opener(p):
        opened.append(p)
        return open_video(p)
    pre = PreloadedVideos(paths[:4] + paths[:1], opener, int(2.5 * VIDEO_BYTES))  # room for two videos
    assert [p for p in paths if p in pre] == paths[:2] and len(pre) == 2 and pre.nbytes == 2 * VIDEO_BYTES
    assert opened == paths[:3]  # the third does not fit: the preload ends there
    inds = np.array([[0, 3, 15]])
    assert torch.equal(pre.open(paths[1]).get(inds), open_video(paths[1]).get(inds))
    assert pre.open(paths[2]) is None
    empty = PreloadedVideos(paths, open_video, VIDEO_BYTES - 1)
    assert len(empty) == 0 and empty.nbytes == 0 and empty.open(paths[0]) is None


def test_videos_past_the_budget_are_read_from_their_files(shapes, paths, tmp_path, opens, one_thread):
    big = tmp_path / "big.mp4"  # 16 frames of 160x160: 1.2 MiB, more than the whole budget
    write_mp4(big, np.random.default_rng(0).integers(0, 256, (16, 160, 160, 3), dtype=np.uint8))
    ds = VideoDataset([(paths[0], 0), (str(big), 0), (paths[1], 0)], ["a"], clip_len=4, frame_interval=2,
                      decoded_cache_mb=1)
    assert paths[0] in ds.preloaded and str(big) not in ds.preloaded and paths[1] not in ds.preloaded
    opens.clear()
    torch.manual_seed(0)
    items = [ds[i]["video"] for i in range(3)]
    assert opens == [str(big), paths[1]]
    torch.manual_seed(0)
    assert all(torch.equal(a, VideoDataset(ds.samples, ["a"], clip_len=4, frame_interval=2)[i]["video"])
               for i, a in enumerate(items))


# ---- broken files ----------------------------------------------------------------------------------------------

def test_broken_files_are_not_preloaded_and_counted_once_when_read(paths, tmp_path, opens, one_thread):
    garbage, truncated = _garbage(tmp_path, paths[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ds = VideoDataset([(garbage, 0), (truncated, 0), (paths[0], 0)], ["a"], clip_len=8, frame_interval=2,
                          decoded_cache_mb=1)
    assert not caught and ds.num_skipped == 0  # the preload neither warns nor counts
    assert garbage not in ds.preloaded and truncated not in ds.preloaded and paths[0] in ds.preloaded
    assert opens.count(paths[0]) == 1
    _, val = build_loaders(_cfg(2), None, ds, INFO, collate_fn=collate_videos)
    assert sorted(p for b in val for p in b["skipped"]) == sorted([garbage, truncated])
    assert ds.num_skipped == 2  # once each, counted by the workers in the counter they share with this process
    with pytest.warns(UserWarning, match="skipping undecodable video"):
        assert isinstance(ds[0], BrokenVideo) and isinstance(ds[1], BrokenVideo) and not isinstance(ds[2], BrokenVideo)
    assert ds.num_skipped == 4 and opens.count(paths[0]) == 1


def test_a_video_that_does_not_decode_whole_is_left_to_the_reader(paths):
    """Frames past a damaged part fail: the video is not preloaded, so its sampled frames are read as without it."""
    class Damaged:
        num_frames = 16

        def get(self, inds):
            if np.max(inds) > 9:
                raise RuntimeError("damaged")
            return open_video(paths[0]).get(inds)
    pre = PreloadedVideos(paths[:2], lambda p: Damaged() if p == paths[0] else open_video(p), 2 ** 20)
    assert paths[0] not in pre and paths[1] in pre and pre.nbytes == VIDEO_BYTES


# ---- copies, MoBY's two-clip set, the log, the config ----------------------------------------------------------

def test_a_copy_of_the_data_set_keeps_the_preloaded_frames(shapes, opens):
    ds = _dataset(shapes, mb=1)
    n = len(opens)
    for other in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds))):
        assert len(other.preloaded) == len(ds) and torch.equal(other.preloaded.buffer, ds.preloaded.buffer)
        assert isinstance(other.open(ds.samples[0][0]), DecodedVideo)
    assert len(opens) == n


def test_twoclip_dataset_reads_the_preloaded_frames(paths, opens, one_thread):
    from moby.data import TwoClipDataset
    views = []
    for mb in (0, 1):
        opens.clear()
        ds = TwoClipDataset([(p, 0) for p in paths], ["a"], view1=lambda v: v, view2=lambda v: v, clip_len=4,
                            frame_interval=1, decoded_cache_mb=mb)
        assert len(opens) == (len(paths) if mb else 0)  # built: each video decoded once with the preload
        opens.clear()
        torch.manual_seed(0)
        views.append([ds[i]["view1"] for i in range(len(ds)) for _ in range(2)])
        assert len(opens) == (0 if mb else 2 * len(paths))
    assert all(torch.equal(a, b) for a, b in zip(*views))


def test_the_preload_is_logged_once_per_data_set(shapes, tmp_path):
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda r: records.append(r.getMessage())
    log = logging.getLogger("swin")
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    try:
        _dataset(shapes, 5), _dataset(shapes, 5, "val"), _dataset(shapes)
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert len(records) == 2
    for record, n in zip(records, (8, 4)):
        mib = n * VIDEO_BYTES / 2 ** 20
        assert re.fullmatch(rf"decoded-video preload: {n} of {n} videos, {mib:.1f} MiB in \d+\.\d s "
                            rf"\(data\.decoded_cache_mb = 5\)", record), record


def test_config_field_reaches_every_video_recipe():
    from core.engine.config import load_config
    from core.video.config import VideoConfig
    from moby.config import MoBYConfig
    from simmim.config import SimMIMConfig
    root = Path(__file__).resolve().parent.parent / "configs"
    assert VideoConfig().data.decoded_cache_mb == 0 and VideoConfig().data.decoding()["decoded_cache_mb"] == 0
    for schema in (SimMIMConfig, MoBYConfig):
        assert schema().data.decoded_cache_mb == 0
    cfg = load_config(str(root / "video_swin" / "tiny_moving_shapes.yaml"), [], schema=VideoConfig)
    assert cfg.data.decoding()["decoded_cache_mb"] == 64
    cfg = load_config(str(root / "video_swin" / "tiny_moving_shapes.yaml"), ["data.backend=pytorchvideo"],
                      schema=VideoConfig)
    assert cfg.data.decoding()["decoded_cache_mb"] == 0  # pytorchvideo decodes by itself
    for recipe, schema, mb in [("simmim/tiny_speed_change.yaml", SimMIMConfig, 256),  # the flow recipe's 2100 clips
                               ("moby/tiny_spin_zoom.yaml", MoBYConfig, 64)]:
        assert load_config(str(root / recipe), [], schema=schema).data.decoded_cache_mb == mb


# ---- end to end ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clips32(tmp_path_factory) -> Path:
    return ensure_moving_shapes(tmp_path_factory.mktemp("data32") / "moving_shapes", num_train=32, num_val=8)


def _train(out: Path, root: Path, mb: int, *opts: str) -> tuple[list, dict]:
    """2 epochs of the embedded recipe (32 + 8 clips, a smaller model, 2 workers): per-epoch numbers, final weights."""
    from cli import train as video_train
    assert video_train.main(["--opt", f"train.output_dir={out}", f"data.root={root}", "data.num_train=32",
                             "data.num_val=8", "data.batch_size=4", "data.num_workers=2", "data.num_clips=1",
                             "data.num_crops=1", f"data.decoded_cache_mb={mb}", "train.epochs=2",
                             "train.progress=false", "train.tensorboard=false", "train.device=cpu",
                             "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], "
                             "patch_size: [2, 4, 4], window_size: [4, 4, 4]}", *opts]) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    numbers = [{k: v for k, v in r.items() if k in ("epoch", "train_loss", "top1", "count", "skipped_videos")}
               for r in rows if "train_loss" in r and "epoch" in r]
    final = json.loads((out / "results.json").read_text())["final"]
    numbers.append({k: final[k] for k in ("epoch", "train_loss", "top1")})
    return numbers, torch.load(out / "last.pth", map_location="cpu", weights_only=True)["model"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_training_with_the_preload_gives_the_same_metrics(clips32, tmp_path, one_thread):
    """The same seed: the preload changes no number and no weight, and its line is in the run's log."""
    (numbers0, w0), (numbers1, w1) = (_train(tmp_path / f"cache{mb}", clips32, mb) for mb in (0, 64))
    assert len(numbers0) == 3 and numbers0 == numbers1 and _same_weights(w0, w1)
    log = (tmp_path / "cache64" / "log.txt").read_text()
    assert "decoded-video preload: 32 of 32 videos" in log and "decoded-video preload: 8 of 8 videos" in log


def test_a_killed_run_with_the_preload_resumes_exactly(clips32, tmp_path, monkeypatch, one_thread):
    """Killed mid-epoch 2 and resumed from its mid-epoch checkpoint: the uninterrupted run's weights."""
    from helpers import interrupt_at
    every = ["train.checkpoint_interval=3", "train.log_interval=1"]
    _, straight = _train(tmp_path / "straight", clips32, 64, *every)
    interrupt_at(monkeypatch, 14)  # iteration 6 of epoch 2; the last checkpoint was written after iteration 3
    with pytest.raises(KeyboardInterrupt):
        _train(tmp_path / "resumed", clips32, 64, *every)
    monkeypatch.undo()
    torch.manual_seed(123)
    _, resumed = _train(tmp_path / "resumed", clips32, 64, *every)
    assert "continuing epoch 2 at iteration 4" in (tmp_path / "resumed" / "log.txt").read_text()
    assert _same_weights(straight, resumed)
