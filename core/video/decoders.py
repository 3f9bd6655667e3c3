"""Video decoders behind one interface: the frame count of a file and chosen frames as uint8 (N, H, W, C), optionally
resized at decode time (short side), so a 1080p source is never decoded to full-size RGB for a 224 crop.

    video = open_video("clip.mp4", decoder="pyav", short_side=256)
    frames = video.get(sample_frame_indices(video.num_frames, ...))      # uint8 (*inds.shape, H, W, C)

``decord`` (default; the reader the recipes were measured with), ``pyav`` (PyAV, ships its own FFmpeg; maintained),
``torchcodec`` (PyTorch's decoder; needs the system FFmpeg libraries). The same indices give the same frames
(``tests/test_decoders.py``: decord and PyAV equal on real clips). Every reader, writer and tool of the suite opens
videos here (training, test, predict, ``video_swin.extract_features``, ``video_swin.prepare``, ``simmim.visualize``);
:func:`iter_frames` reads a whole video forward, a chunk of frames at a time, each frame decoded once.

:class:`PreloadedVideos` decodes the whole videos of a small set once, up front, into shared memory
(``data.decoded_cache_mb``); their clips are then served from memory, equal to a fresh decode's.
"""
from __future__ import annotations

import importlib
import math
import time
import warnings
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np
import torch

__all__ = ["DECODERS", "open_video", "check_decoder", "scaled_size", "Video", "iter_frames", "decord_frames",
           "DecodedVideo", "PreloadedVideos"]

_INSTALL = {"decord": "pip install decord", "pyav": "pip install av",
            "torchcodec": "pip install torchcodec, and the FFmpeg shared libraries (e.g. apt install ffmpeg)"}


def scaled_size(h: int, w: int, short_side: int) -> tuple[int, int]:
    """(H, W) with the short side at ``short_side`` when the frame is larger (never upscaled), aspect kept."""
    if short_side <= 0 or min(h, w) <= short_side:
        return h, w
    s = short_side / min(h, w)
    return (short_side, round(w * s)) if h <= w else (round(h * s), short_side)


class Video(Protocol):
    """An opened video: its frame count, frame rate (0.0 when unknown), and frames by index as uint8
    (*inds.shape, H, W, C)."""
    num_frames: int
    fps: float

    def get(self, inds: np.ndarray) -> torch.Tensor: ...


def _gather(frames: torch.Tensor, inverse: np.ndarray, shape: tuple[int, ...]) -> torch.Tensor:
    return frames[torch.from_numpy(inverse)].reshape(*shape, *frames.shape[1:])


class _Decord:
    def __init__(self, path: str, short_side: int, num_threads: int) -> None:
        import decord
        self.vr = decord.VideoReader(path, num_threads=num_threads, ctx=decord.cpu(0))
        self.num_frames, self.fps = len(self.vr), float(self.vr.get_avg_fps() or 0.0)
        if short_side > 0 and self.num_frames:
            h, w = self.vr[0].shape[:2]
            sh, sw = scaled_size(h, w, short_side)
            if (sh, sw) != (h, w):  # reopen, decoding straight to the smaller size (FFmpeg's scaler)
                self.vr = decord.VideoReader(path, num_threads=num_threads, ctx=decord.cpu(0), width=sw, height=sh)

    def get(self, inds: np.ndarray) -> torch.Tensor:
        return decord_frames(self.vr, inds)


def decord_frames(vr: Any, inds: np.ndarray) -> torch.Tensor:
    """Frames ``inds`` of a decord VideoReader as uint8 (*inds.shape, H, W, C), each distinct frame decoded once."""
    inds = np.asarray(inds)
    uniq, inverse = np.unique(inds.ravel(), return_inverse=True)  # in order: decord seeks forward only
    frames = vr.get_batch(uniq.tolist())
    # decord's native bridge gives NDArrays (pytorchvideo switches it to torch)
    frames = frames if isinstance(frames, torch.Tensor) else torch.from_numpy(frames.asnumpy())
    return _gather(frames, inverse, inds.shape)


class _PyAV:
    """PyAV, decoding forward from where the last ``get`` stopped (reopened for an earlier frame): reading a video
    in order, chunk by chunk, decodes each frame once."""

    def __init__(self, path: str, short_side: int, num_threads: int) -> None:
        import av
        self.path, self.short_side, self.num_threads = path, short_side, num_threads
        with av.open(path) as c:
            if not c.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = c.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            n = stream.frames or sum(1 for p in c.demux(stream) if p.size)  # container count, else the packets
        self.num_frames, self.fps = int(n), float(rate or 0.0)
        self._container: Any = None
        self._frames: Iterator[Any] = iter(())
        self._next, self._size = 0, (0, 0)

    def _restart(self) -> None:
        import av
        self.close()
        self._container = c = av.open(self.path)
        stream = c.streams.video[0]
        stream.thread_type, stream.codec_context.thread_count = "AUTO", max(1, self.num_threads)
        self._frames, self._next = iter(c.decode(stream)), 0

    def close(self) -> None:
        """Close the file (a later ``get`` reopens it)."""
        if self._container is not None:
            self._container.close()
        self._container, self._frames = None, iter(())

    def get(self, inds: np.ndarray) -> torch.Tensor:
        inds = np.asarray(inds)
        uniq, inverse = np.unique(inds.ravel(), return_inverse=True)
        if self._container is None or uniq[0] < self._next:
            self._restart()
        want, got = set(uniq.tolist()), {}
        try:
            for frame in self._frames:
                n, self._next = self._next, self._next + 1
                if n in want:
                    if not self._size[0]:
                        self._size = scaled_size(frame.height, frame.width, self.short_side)
                    got[n] = frame.reformat(width=self._size[1], height=self._size[0], format="rgb24").to_ndarray()
                if n >= uniq[-1]:
                    break
        except BaseException:
            self.close()  # a damaged stream: the next get starts over
            raise
        missing = [i for i in uniq.tolist() if i not in got]
        if missing:
            raise RuntimeError(f"{self.path}: frame {missing[0]} of {self.num_frames} could not be decoded")
        return _gather(torch.from_numpy(np.stack([got[i] for i in uniq.tolist()])), inverse, inds.shape)


class _TorchCodec:
    def __init__(self, path: str, short_side: int, num_threads: int) -> None:
        from torchcodec.decoders import VideoDecoder
        self.dec = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=num_threads)
        self.num_frames, self.short_side = int(self.dec.metadata.num_frames), short_side
        self.fps = float(getattr(self.dec.metadata, "average_fps", None) or 0.0)

    def get(self, inds: np.ndarray) -> torch.Tensor:
        inds = np.asarray(inds)
        uniq, inverse = np.unique(inds.ravel(), return_inverse=True)
        frames = self.dec.get_frames_at(uniq.tolist()).data
        sh, sw = scaled_size(frames.shape[1], frames.shape[2], self.short_side)
        if (sh, sw) != tuple(frames.shape[1:3]):
            frames = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2).float(), size=(sh, sw),
                                                     mode="bilinear", antialias=True)
            frames = frames.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
        return _gather(frames, inverse, inds.shape)


DECODERS: dict[str, Callable[[str, int, int], Video]] = {"decord": _Decord, "pyav": _PyAV, "torchcodec": _TorchCodec}
_MODULES = {"decord": "decord", "pyav": "av", "torchcodec": "torchcodec.decoders"}


def check_decoder(name: str) -> None:
    """Fail at start-up, in one line, when the decoder is unknown or cannot be loaded here."""
    if name not in DECODERS:
        raise ValueError(f"data.decoder = {name!r}: expected one of {sorted(DECODERS)}")
    try:
        importlib.import_module(_MODULES[name])
    except Exception as e:  # noqa: BLE001 -- ImportError, or torchcodec's RuntimeError when FFmpeg's libraries are missing
        msg = (str(e).strip().splitlines() or [""])[0][:200]
        raise ImportError(f"data.decoder = {name}: cannot load it here ({type(e).__name__}: {msg}); install: "
                          f"{_INSTALL[name]}") from None


def open_video(path: str, *, decoder: str = "decord", short_side: int = 0, num_threads: int = 1) -> Video:
    """Open ``path`` with ``decoder``; ``short_side`` > 0 decodes frames larger than it straight to that short side."""
    return DECODERS[decoder](path, short_side, num_threads)


def iter_frames(video: Video, chunk: int = 16) -> Iterator[torch.Tensor]:
    """Every frame of ``video`` in order, ``chunk`` at a time, as uint8 (k, H, W, C): one forward pass."""
    for start in range(0, video.num_frames, chunk):
        yield video.get(np.arange(start, min(start + chunk, video.num_frames)))


class DecodedVideo:
    """A :class:`Video` over frames decoded beforehand, uint8 (N, H, W, C); ``get`` returns a new tensor."""

    def __init__(self, frames: torch.Tensor, fps: float = 0.0) -> None:
        self.frames, self.num_frames, self.fps = frames, len(frames), fps

    def get(self, inds: np.ndarray) -> torch.Tensor:
        inds = np.asarray(inds, dtype=np.int64)
        return _gather(self.frames, inds.ravel(), inds.shape)


class PreloadedVideos:
    """Whole videos decoded once, up front, into one uint8 buffer in shared memory (``data.decoded_cache_mb``).

    Built in the process that builds the data set, before any DataLoader exists, so that its workers, started by fork
    or spawn, read the same memory without copying it (one buffer: one shared segment). The videos of ``paths`` are
    decoded by ``opener`` in list order while they fit in ``max_bytes`` (the first that does not fit ends the
    preload). One that cannot be opened or decoded whole is passed over silently, so it is read from its file as
    without the preload, which reports it. ``open(path)`` gives a preloaded video (a :class:`DecodedVideo`, the frames
    of a fresh decode), else None.
    """

    def __init__(self, paths: Iterable[str], opener: Callable[[str], Video], max_bytes: int) -> None:
        start = time.perf_counter()
        decoded: dict[str, torch.Tensor] = {}
        total = 0
        for path in dict.fromkeys(paths):  # each path once, in order
            try:
                video = opener(path)
                if video.num_frames < 1:
                    continue
                if total + video.num_frames * video.get(np.zeros(1, np.int64)).numel() > max_bytes:
                    break
                frames = video.get(np.arange(video.num_frames))
            except Exception:  # noqa: BLE001 -- unreadable or damaged: left to the reader, which warns and counts
                continue
            decoded[path] = frames
            total += frames.numel()
        self.buffer = torch.empty(total, dtype=torch.uint8)
        if total:
            try:
                self.buffer.share_memory_()
            except RuntimeError as e:  # e.g. /dev/shm too small: fork still shares it, spawn copies it
                warnings.warn(f"decoded-video preload: not in shared memory ({e}); each worker started by spawn gets "
                              f"a copy", stacklevel=2)
        self._index: dict[str, tuple[int, tuple[int, ...]]] = {}
        offset = 0
        for path in list(decoded):
            frames = decoded.pop(path)
            self.buffer[offset:offset + frames.numel()] = frames.reshape(-1)
            self._index[path] = (offset, tuple(frames.shape))
            offset += frames.numel()
        self.seconds = time.perf_counter() - start

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, path: str) -> bool:
        return path in self._index

    @property
    def nbytes(self) -> int:
        """Bytes of decoded frames held."""
        return self.buffer.numel()

    def open(self, path: str) -> DecodedVideo | None:
        """The preloaded frames of ``path`` (uint8 (N, H, W, C), read in place), or None when it was not preloaded."""
        entry = self._index.get(path)
        if entry is None:
            return None
        offset, shape = entry
        return DecodedVideo(self.buffer[offset:offset + math.prod(shape)].view(shape))
