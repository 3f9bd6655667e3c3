"""The decoded-video cache (data.decoded_cache_mb): a fresh decode's frames, the decoder called once per video and
process, LRU within the byte budget, off by default, broken files skipped and counted as without it, and loaders
whose kept workers give the batches (and the final metrics) of fresh ones."""
from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

pytest.importorskip("decord")

import core.video.data as video_data  # noqa: E402
from core.engine.data import EpochLoader, build_loaders  # noqa: E402
from core.video.data import BrokenVideo, VideoDataset, build_video_dataset, collate_videos  # noqa: E402
from core.video.decoders import DecodedCache, DecodedVideo, open_video  # noqa: E402
from core.video.synthetic import ensure_moving_shapes  # noqa: E402

FRAME_BYTES = 32 * 32 * 3
VIDEO_BYTES = 16 * FRAME_BYTES  # a generated clip: 16 frames of 32x32 RGB
INFO = SimpleNamespace(world_size=1, rank=0, device=torch.device("cpu"))


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return ensure_moving_shapes(tmp_path_factory.mktemp("data") / "moving_shapes", num_train=8, num_val=4)


@pytest.fixture
def paths(shapes) -> list[str]:
    return [p for p, _ in VideoDataset.from_list_file(shapes / "train.txt").samples]


@pytest.fixture
def opens(monkeypatch) -> list[str]:
    """The paths core.video.data opened with the decoder, in order."""
    calls: list[str] = []

    def counting(path, **kwargs):
        calls.append(path)
        return open_video(path, **kwargs)
    monkeypatch.setattr(video_data, "open_video", counting)
    return calls


def _dataset(shapes: Path, mb: int = 0, split: str = "train", **kwargs) -> VideoDataset:
    return build_video_dataset(shapes, shapes / f"{split}.txt", split=split, clip_len=8, frame_interval=2,
                               crop_size=32, short_side=32, scale=(0.5, 1.0), num_clips=1, num_crops=1,
                               decoded_cache_mb=mb, **kwargs)


def _cfg(num_workers: int, batch_size: int = 4) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(batch_size=batch_size, eval_batch_size=0, num_workers=num_workers,
                                                pin_memory=False), train=SimpleNamespace(seed=0))


# ---- the frames ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("decoder,short_side", [("decord", 0), ("decord", 20), ("pyav", 0), ("pyav", 24)])
def test_cached_frames_equal_a_fresh_decode(paths, decoder, short_side, one_thread):
    if decoder == "pyav":
        pytest.importorskip("av")
    ds = VideoDataset([(p, 0) for p in paths], ["a"], decoder=decoder, decode_short_side=short_side,
                      decoded_cache_mb=1)
    rng = np.random.default_rng(0)
    for p in paths:
        for _ in range(2):  # the first read decodes the whole video, the second is served from memory
            video = ds.open(p)
            inds = rng.integers(0, video.num_frames, size=(3, 8))
            got, ref = video.get(inds), open_video(p, decoder=decoder, short_side=short_side).get(inds)
            assert got.dtype == ref.dtype == torch.uint8 and got.shape == ref.shape
            assert got.stride() == ref.stride() and torch.equal(got, ref)
        assert isinstance(video, DecodedVideo) and p in ds._cache
    h = short_side or 32
    assert ds.cache_info == {"videos": len(paths), "bytes": len(paths) * 16 * h * h * 3, "hits": len(paths),
                             "misses": len(paths)}
    got[:] = 0  # a served clip is a copy: changing it leaves the cache alone
    assert ds.open(paths[-1]).get(inds).any()


def test_items_do_not_depend_on_the_cache(shapes, one_thread):
    """The same seed gives the same training items (random clip, crop and flip) with the cache on and off."""
    items = []
    for mb in (0, 1):
        ds = _dataset(shapes, mb)
        torch.manual_seed(1)
        items.append([ds[i]["video"] for i in range(len(ds)) for _ in range(2)])
    for a, b in zip(items[0], items[1]):
        assert torch.equal(a, b)


# ---- decoding once, the budget, off by default -----------------------------------------------------------------

def test_second_read_does_not_call_the_decoder(shapes, paths, opens, one_thread):
    ds = _dataset(shapes, mb=1)
    for _ in range(3):
        for i in range(len(ds)):
            ds[i]
    assert sorted(opens) == sorted(paths)  # each video opened once
    assert ds.cache_info["hits"] == 2 * len(paths) and ds.cache_info["misses"] == len(paths)


def test_off_by_default_decodes_every_time(shapes, paths, opens, one_thread):
    ds = VideoDataset.from_list_file(shapes / "train.txt", clip_len=8, frame_interval=2)
    assert ds.cache_info is None and ds.worker_seed is None
    for _ in range(2):
        for i in range(len(ds)):
            ds[i]
    assert len(opens) == 2 * len(paths)
    assert not isinstance(ds.open(paths[0]), DecodedVideo)


def test_lru_keeps_the_budget(paths):
    cache = DecodedCache(2.5 * VIDEO_BYTES / 2 ** 20)  # room for two videos

    def read(p):
        return cache.open(p, lambda: open_video(p))
    a, b, c, d = paths[:4]
    read(a), read(b)
    assert a in cache and b in cache and cache.nbytes == 2 * VIDEO_BYTES
    read(c)  # the oldest goes
    assert a not in cache and b in cache and c in cache and cache.nbytes == 2 * VIDEO_BYTES
    read(b)  # a hit makes b the most recent: d pushes c out
    read(d)
    assert b in cache and d in cache and c not in cache
    assert cache.info() == {"videos": 2, "bytes": 2 * VIDEO_BYTES, "hits": 1, "misses": 4}


def test_a_video_larger_than_the_budget_is_read_but_never_kept(paths):
    cache = DecodedCache(0.5 * VIDEO_BYTES / 2 ** 20)
    inds = np.array([[0, 3, 15]])
    for _ in range(2):
        video = cache.open(paths[0], lambda: open_video(paths[0]))
        assert not isinstance(video, DecodedVideo) and torch.equal(video.get(inds), open_video(paths[0]).get(inds))
    assert paths[0] not in cache and cache.nbytes == 0


def test_a_copy_of_the_data_set_starts_with_an_empty_cache(shapes):
    import copy
    import pickle
    ds = _dataset(shapes, mb=1)
    ds[0]
    assert ds.cache_info["videos"] == 1
    for other in (copy.deepcopy(ds), pickle.loads(pickle.dumps(ds))):
        assert other.cache_info == {"videos": 0, "bytes": 0, "hits": 0, "misses": 0}
        assert other._cache.max_bytes == 2 ** 20


# ---- broken files ----------------------------------------------------------------------------------------------

def test_broken_files_are_skipped_counted_and_not_cached(shapes, paths, tmp_path, opens):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(Path(paths[0]).read_bytes()[:300])
    ds = VideoDataset([(str(garbage), 0), (str(truncated), 0), (paths[0], 0)], ["a"], clip_len=8,
                      frame_interval=2, decoded_cache_mb=1)
    with pytest.warns(UserWarning, match="skipping undecodable video"):
        for _ in range(2):
            assert isinstance(ds[0], BrokenVideo) and isinstance(ds[1], BrokenVideo)
            assert not isinstance(ds[2], BrokenVideo)
    assert ds.num_skipped == 4
    assert str(garbage) not in ds._cache and str(truncated) not in ds._cache and paths[0] in ds._cache
    assert opens.count(paths[0]) == 1 and opens.count(str(garbage)) == 2


def test_a_video_that_does_not_decode_whole_reads_as_without_the_cache(paths):
    """Frames past a damaged part: the sampled frames come from the decoder (as without the cache); never kept."""
    class Damaged:
        num_frames = 16

        def get(self, inds):
            if np.max(inds) > 9:
                raise RuntimeError("damaged")
            return open_video(paths[0]).get(inds)
    cache = DecodedCache(1)
    for _ in range(2):
        video = cache.open(paths[0], Damaged)
        assert torch.equal(video.get(np.array([[0, 9]])), open_video(paths[0]).get(np.array([[0, 9]])))
        with pytest.raises(RuntimeError, match="damaged"):
            video.get(np.array([[12]]))
    assert paths[0] not in cache


# ---- loaders ---------------------------------------------------------------------------------------------------

def test_build_loaders_keeps_workers_only_with_the_cache_on(shapes):
    on, off = _dataset(shapes, mb=1), _dataset(shapes)
    for ds, workers, kept in [(on, 2, True), (off, 2, False), (on, 0, False), (Subset(on, range(4)), 1, True)]:
        train, val = build_loaders(_cfg(workers), ds, ds, INFO)
        assert isinstance(train, EpochLoader) and train.persistent_workers is kept and val.persistent_workers is kept
    train, _ = build_loaders(_cfg(2), torch.utils.data.TensorDataset(torch.zeros(8, 1)), None, INFO)
    assert not train.persistent_workers


def _epochs(loader, epochs: int, cut: int | None = None) -> list[list]:
    """Each epoch's (index, video) batches; ``cut``: the first epoch stops after that many batches."""
    out = []
    for e in range(epochs):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(e)
        batches = []
        for i, b in enumerate(loader):
            batches.append((b["index"].tolist(), b["video"]))
            if cut is not None and e == 0 and i + 1 == cut:
                break
        out.append(batches)
    return out


@pytest.mark.parametrize("cut", [None, 1])
def test_kept_workers_give_the_batches_of_fresh_ones(shapes, one_thread, cut):
    """Reshuffled every epoch (set_epoch), and the same random clips and crops as fresh workers each epoch (the kept
    workers are reseeded), also after an epoch cut short and in new loaders over the same data sets; the main
    process's RNG ends the same."""
    runs = []
    for mb in (0, 1):
        torch.manual_seed(3)
        sets = _dataset(shapes, mb), _dataset(shapes, mb, "val")
        train, val = build_loaders(_cfg(2), *sets, INFO, collate_fn=collate_videos)
        assert train.persistent_workers is bool(mb)
        epochs = _epochs(train, 3, cut) + _epochs(val, 2)
        del train, val
        train, _ = build_loaders(_cfg(2), sets[0], None, INFO, collate_fn=collate_videos)  # new workers, same set
        runs.append((epochs + _epochs(train, 1), torch.get_rng_state()))
    (epochs0, rng0), (epochs1, rng1) = runs
    for a, b in zip(epochs0, epochs1, strict=True):
        assert [i for i, _ in a] == [i for i, _ in b]
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a, b))
    assert [i for i, _ in epochs1[1]] != [i for i, _ in epochs1[2]]  # reshuffled each epoch
    assert torch.equal(rng0, rng1)


def test_kept_workers_still_count_skipped_videos(shapes, paths, tmp_path, one_thread):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video at all" * 100)
    ds = VideoDataset([(str(garbage), 0)] + [(p, 0) for p in paths[:3]], ["a"], clip_len=8, frame_interval=2,
                      decoded_cache_mb=1)
    train, _ = build_loaders(_cfg(1), ds, None, INFO, collate_fn=collate_videos)
    assert train.persistent_workers
    for e in range(2):
        train.sampler.set_epoch(e)
        assert sum(len(b["skipped"]) for b in train) == 1
    assert ds.num_skipped == 2  # the counter the workers share with the main process


def test_twoclip_dataset_reads_through_the_cache(shapes, paths, opens, one_thread):
    from moby.data import TwoClipDataset
    views = []
    for mb in (0, 1):
        ds = TwoClipDataset([(p, 0) for p in paths], ["a"], view1=lambda v: v, view2=lambda v: v, clip_len=4,
                            frame_interval=1, decoded_cache_mb=mb)
        assert (ds.worker_seed is not None) is bool(mb)
        opens.clear()
        torch.manual_seed(0)
        views.append([ds[i]["view1"] for i in range(len(ds)) for _ in range(2)])
        assert len(opens) == (len(paths) if mb else 2 * len(paths))
    assert all(torch.equal(a, b) for a, b in zip(*views))


def test_the_cache_is_announced_once(shapes, monkeypatch):
    monkeypatch.setattr(video_data, "_CACHE_ANNOUNCED", set())
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
    assert records == ["decoded-video cache on: up to 5 MiB of decoded frames per data set and loader process "
                       "(data.decoded_cache_mb); DataLoader workers, if any, are kept between epochs"]


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
    for recipe, schema in [("simmim/tiny_speed_change.yaml", SimMIMConfig), ("moby/tiny_spin_zoom.yaml", MoBYConfig)]:
        assert load_config(str(root / recipe), [], schema=schema).data.decoded_cache_mb == 64


# ---- end to end ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clips32(tmp_path_factory) -> Path:
    return ensure_moving_shapes(tmp_path_factory.mktemp("data32") / "moving_shapes", num_train=32, num_val=8)


def _train(out: Path, root: Path, mb: int, *opts: str) -> tuple[list, dict]:
    """2 epochs of the embedded recipe (32 + 8 clips, a smaller model, 2 workers): per-epoch numbers, final weights."""
    from video_swin import train as video_train
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


def test_training_with_the_cache_gives_the_same_metrics(clips32, tmp_path, one_thread):
    """The same seed: the cache and its kept workers change no number and no weight."""
    (numbers0, w0), (numbers1, w1) = (_train(tmp_path / f"cache{mb}", clips32, mb) for mb in (0, 64))
    assert len(numbers0) == 3 and numbers0 == numbers1 and _same_weights(w0, w1)


def test_a_killed_run_with_the_cache_resumes_exactly(clips32, tmp_path, monkeypatch, one_thread):
    """Kept workers, killed mid-epoch 2 and resumed from its mid-epoch checkpoint: the uninterrupted run's weights."""
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
