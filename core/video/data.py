"""Kinetics-style video classification data: annotations, SampleFrames sampling, decoding, collate.

Annotations: an mmaction2 list file (``relative/path.mp4 label`` per line), the official Kinetics CSV
(``label,youtube_id,time_start,time_end,split``), both read by :mod:`core.video.lists`, or a class-folder tree.
Decoding opens a reader of :mod:`core.video.decoders` (``data.decoder``) per item (in the DataLoader worker) and
reads only the sampled frames; with ``decoded_cache_mb`` > 0 the data set decodes its videos whole once, when it is
built, into shared memory and serves their clips from there (small sets; :class:`core.video.decoders.PreloadedVideos`).
A video that cannot be decoded yields a ``BrokenVideo`` item that ``collate_videos`` drops and reports in
``batch["skipped"]``.
``data.backend: pytorchvideo`` reads the same sets through pytorchvideo instead (:mod:`core.video.pytorchvideo_data`).
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from torchvision import tv_tensors

from .decoders import PreloadedVideos, Video, decord_frames, open_video
from .lists import class_dir, is_csv, parse_kinetics_csv, parse_list_file
from .transforms import build_video_transform

__all__ = [
    "VIDEO_EXTENSIONS", "BrokenVideo", "BrokenVideoWarning", "SkippedVideos", "VideoDataset", "build_video_dataset",
    "collate_videos",
    "parse_list_file", "parse_kinetics_csv", "scan_class_folders", "sample_frame_indices", "sliding_clip_indices",
    "num_sliding_clips", "default_stride", "read_clips",
]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
Samples = list[tuple[str, int]]


def sample_frame_indices(
        num_frames: int,
        clip_len: int,
        frame_interval: int = 1,
        num_clips: int = 1,
        test_mode: bool = False,
        test_offsets: str = "centered",
        generator: torch.Generator | None = None,
) -> np.ndarray:
    """Frame indices (num_clips, clip_len) as mmaction2's SampleFrames with out_of_bound_opt='loop'.

    ``test_offsets``: "centered" (mmaction2 0.x, used by Video Swin: clip k starts at int((k + 1/2) * avg)) or
    "endpoints" (mmaction2 >= 1.0: first and last clip touch the ends of the video).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    span = clip_len * frame_interval
    if test_mode and test_offsets == "centered":
        avg = (num_frames - span + 1) / num_clips
        offsets = (np.arange(num_clips) * avg + avg / 2.0).astype(np.int64) if num_frames > span - 1 \
            else np.zeros(num_clips, np.int64)
    elif test_mode and test_offsets == "endpoints":
        max_offset = max(num_frames - ((clip_len - 1) * frame_interval + 1), 0)
        offsets = np.round(np.arange(num_clips) * (max_offset / (num_clips - 1))).astype(np.int64) \
            if num_clips > 1 else np.array([max_offset // 2], np.int64)
    elif test_mode:
        raise ValueError(f"test_offsets must be 'centered' or 'endpoints', got {test_offsets!r}")
    else:
        avg_int = (num_frames - span + 1) // num_clips
        if avg_int > 0:
            offsets = np.arange(num_clips) * avg_int + _randint(avg_int, num_clips, generator)
        elif num_frames > max(num_clips, span):
            offsets = np.sort(_randint(num_frames - span + 1, num_clips, generator))
        elif avg_int == 0:
            offsets = np.around(np.arange(num_clips) * ((num_frames - span + 1.0) / num_clips)).astype(np.int64)
        else:
            offsets = np.zeros(num_clips, np.int64)
    inds = offsets[:, None] + np.arange(clip_len)[None, :] * frame_interval
    return np.mod(inds, num_frames).astype(np.int64)


def sliding_clip_indices(num_frames: int, clip_len: int, frame_interval: int = 1, stride: int | None = None,
                         start: int = 0, max_clips: int | None = None) -> np.ndarray:
    """Frame indices (n, clip_len) of clips sliding over a whole video: clip k starts at frame k * stride.

    Clips start while a whole clip fits (at least one clip; a video shorter than one clip loops, as SampleFrames).
    ``start`` / ``max_clips`` select clips [start, start + max_clips) of that sequence (chunked decoding).
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    stride = stride or default_stride(clip_len, frame_interval)
    total = num_sliding_clips(num_frames, clip_len, frame_interval, stride)
    stop = total if max_clips is None else min(total, start + max_clips)
    offsets = np.arange(start, stop, dtype=np.int64) * stride
    inds = offsets[:, None] + np.arange(clip_len, dtype=np.int64)[None, :] * frame_interval
    return np.mod(inds, num_frames)


def num_sliding_clips(num_frames: int, clip_len: int, frame_interval: int = 1, stride: int | None = None) -> int:
    """How many clips :func:`sliding_clip_indices` gives for a video of num_frames frames."""
    span = (clip_len - 1) * frame_interval + 1
    return max(num_frames - span, 0) // (stride or default_stride(clip_len, frame_interval)) + 1


def default_stride(clip_len: int, frame_interval: int = 1) -> int:
    """Half a clip's span: consecutive sliding clips overlap by half."""
    return max(1, clip_len * frame_interval // 2)


def read_clips(reader: Any, inds: np.ndarray) -> torch.Tensor:
    """Decode frames ``inds`` (n, T) of a decord VideoReader as uint8 (n, T, C, H, W); each frame decoded once."""
    return decord_frames(reader, inds).permute(0, 1, 4, 2, 3)


def _randint(high: int, n: int, generator: torch.Generator | None) -> np.ndarray:
    """n integers in [0, high) from torch's RNG (seeded per DataLoader worker)."""
    return torch.randint(high, (n,), generator=generator).numpy().astype(np.int64)


def scan_class_folders(root: str | os.PathLike, classes: Sequence[str] | None = None,
                       extensions: Sequence[str] = VIDEO_EXTENSIONS) -> tuple[Samples, list[str]]:
    """List ``root/<class>/**/<video>`` files; classes are the sorted folder names unless given."""
    root = Path(root)
    if classes is None:
        classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    samples: Samples = []
    for i, c in enumerate(classes):
        files = sorted(p for p in class_dir(root, c, {}).rglob("*") if p.suffix.lower() in extensions)
        samples += [(str(p), i) for p in files]
    return samples, list(classes)


def _read_classes_file(path: str | os.PathLike) -> list[str]:
    """One class name per line (blank lines ignored)."""
    return [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]


class BrokenVideoWarning(UserWarning):
    """A video could not be decoded and was skipped."""


@dataclass(frozen=True)
class BrokenVideo:
    """Placeholder for an item that could not be decoded."""

    path: str
    error: str


class VideoDataset(Dataset):
    """Labelled videos (decord by default, or another of ``core.video.decoders``, optionally resized at decode time
    to ``decode_short_side``); one random clip (train) or all test views (test_mode) per item.

    Items are dicts ``video`` (C, T, H, W) in train mode or (num_clips * num_crops, C, T, H, W) in test mode,
    ``label`` and ``index``; an undecodable video gives a ``BrokenVideo``. Use ``collate_videos``.

    ``decoded_cache_mb`` > 0 decodes the videos whole here, in list order while they fit in that many MiB, into
    shared memory (``preloaded``, a :class:`core.video.decoders.PreloadedVideos`) that DataLoader workers read without
    copying; their clips are the frames of a fresh decode. Videos left out (over the budget, unreadable) are read
    from their files as without it: an unreadable one is warned about and counted when read, never by the preload.
    """

    def __init__(
            self,
            samples: Sequence[tuple[str, int]],
            classes: Sequence[str],
            *,
            clip_len: int = 32,
            frame_interval: int = 2,
            num_clips: int = 1,
            test_mode: bool = False,
            test_offsets: str = "centered",
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
            num_threads: int = 1,
            check_files: bool = True,
            decoder: str = "decord",
            decode_short_side: int = 0,
            decoded_cache_mb: int = 0,
            preloaded: PreloadedVideos | None = None,
    ) -> None:
        self.classes = list(classes)
        self.clip_len, self.frame_interval, self.num_clips = clip_len, frame_interval, num_clips
        self.test_mode, self.test_offsets = test_mode, test_offsets
        self.transform, self.num_threads = transform, num_threads
        self.decoder, self.decode_short_side = decoder, decode_short_side
        self.missing: list[str] = []
        self._skipped = mp.get_context("spawn").Value("i", 0)  # shared with DataLoader workers (any start method)
        self._seen_bad: set[str] = set()
        if check_files:
            self.missing = [p for p, _ in samples if not os.path.isfile(p)]
            if self.missing:
                warnings.warn(f"{len(self.missing)} of {len(samples)} videos are missing and dropped, e.g. "
                              f"{', '.join(self.missing[:5])}", stacklevel=2)
                gone = set(self.missing)
                samples = [s for s in samples if s[0] not in gone]
        bad = [(p, y) for p, y in samples if not 0 <= y < len(self.classes)]
        if bad:
            raise ValueError(f"label {bad[0][1]} of {bad[0][0]} is outside [0, {len(self.classes)})")
        # numpy arrays instead of lists of str: no copy-on-read refcount growth in forked workers
        self._paths = np.array([p for p, _ in samples], dtype=np.str_)
        self._labels = np.array([y for _, y in samples], dtype=np.int64)
        self.preloaded = preloaded  # another data set's preload over the same videos (same decoding), shared
        if decoded_cache_mb > 0 and preloaded is None:
            self.preloaded = pre = PreloadedVideos(self._paths.tolist(), self._decode, decoded_cache_mb * 2 ** 20)
            logging.getLogger("swin").info(
                f"decoded-video preload: {len(pre)} of {len(self)} videos, "
                f"{pre.nbytes / 2 ** 20:.1f} MiB in {pre.seconds:.1f} s (data.decoded_cache_mb = {decoded_cache_mb})")

    @classmethod
    def from_list_file(cls, list_file: str | os.PathLike, root: str | os.PathLike | None = None, *,
                       num_classes: int | None = None, classes: Sequence[str] | None = None,
                       classes_file: str | os.PathLike | None = None, **kwargs: Any) -> VideoDataset:
        """mmaction2 list file; class names from ``classes``, ``classes_file``, a classes.txt beside the list
        file, or else the label indices ("0", "1", ...; num_classes of them, or max label + 1)."""
        if classes is None and classes_file is None and (Path(list_file).parent / "classes.txt").is_file():
            classes_file = Path(list_file).parent / "classes.txt"
        names = list(classes) if classes is not None else \
            _read_classes_file(classes_file) if classes_file is not None else None
        if names is not None and num_classes is not None and len(names) != num_classes:
            raise ValueError(f"{classes_file or 'classes'} names {len(names)} classes, but num_classes={num_classes}")
        samples = parse_list_file(list_file, root, num_classes if names is None else len(names))
        if names is None:
            names = [str(i) for i in range(num_classes or max((y for _, y in samples), default=-1) + 1)]
        return cls(samples, names, **kwargs)

    @classmethod
    def from_kinetics_csv(cls, csv_file: str | os.PathLike, root: str | os.PathLike, *,
                          classes: Sequence[str] | None = None, ext: str = ".mp4", **kwargs: Any) -> VideoDataset:
        """Official Kinetics CSV; classes default to the sorted labels in the file."""
        samples, classes = parse_kinetics_csv(csv_file, root, classes, ext)
        return cls(samples, classes, **kwargs)

    @classmethod
    def from_folder(cls, root: str | os.PathLike, *, classes: Sequence[str] | None = None,
                    **kwargs: Any) -> VideoDataset:
        """Class-folder tree ``root/<class>/<video>``."""
        samples, classes = scan_class_folders(root, classes)
        return cls(samples, classes, **kwargs)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)

    @property
    def num_skipped(self) -> int:
        """Failed decodes so far, over all DataLoader workers (a file counts each time it is met)."""
        return int(self._skipped.value)

    @property
    def samples(self) -> Samples:
        """(path, label) pairs after dropping missing files."""
        return [(str(p), int(y)) for p, y in zip(self._paths, self._labels)]

    def __len__(self) -> int:
        return len(self._paths)

    def __getstate__(self) -> dict[str, Any]:
        """Share the skip counter with spawned workers; plain pickles and deep copies get their own."""
        state = self.__dict__.copy()
        if mp.context.get_spawning_popen() is None:
            state["_skipped"] = self._skipped.value
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state["_skipped"], int):
            state["_skipped"] = mp.get_context("spawn").Value("i", state["_skipped"])
        self.__dict__.update(state)

    def frame_indices(self, num_frames: int) -> np.ndarray:
        """Sampled indices (num_clips, clip_len) for a video of num_frames frames."""
        return sample_frame_indices(num_frames, self.clip_len, self.frame_interval, self.num_clips,
                                    self.test_mode, self.test_offsets)

    def load_clips(self, path: str) -> torch.Tensor:
        """Decode the sampled clips of one video as uint8 (num_clips, T, C, H, W) (each frame decoded once)."""
        video = self.open(path)
        return video.get(self.frame_indices(video.num_frames)).permute(0, 1, 4, 2, 3)

    def open(self, path: str) -> Video:
        """The video at ``path``: its preloaded frames (``decoded_cache_mb``), else opened by the decoder."""
        video = self.preloaded.open(path) if self.preloaded is not None else None
        return video if video is not None else self._decode(path)

    def _decode(self, path: str) -> Video:
        return open_video(path, decoder=self.decoder, short_side=self.decode_short_side, num_threads=self.num_threads)

    def __getitem__(self, index: int) -> dict[str, Any] | BrokenVideo:
        path = str(self._paths[index])
        try:
            clips = self.load_clips(path)
        except Exception as e:  # decord raises DECORDError / RuntimeError on unreadable or truncated files
            return self._broken(path, e)
        views = [self._apply(c) for c in clips]
        if self.test_mode:
            video = torch.cat([v if v.dim() == 5 else v.unsqueeze(0) for v in views])
        else:
            video = views[0] if len(views) == 1 else torch.stack(views)
        return {"video": video, "label": int(self._labels[index]), "index": index}

    def _broken(self, path: str, err: Exception) -> BrokenVideo:
        """Count the failure, warn once per file and process, return the placeholder."""
        with self._skipped.get_lock():
            self._skipped.value += 1
        msg = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0]}"
        if path not in self._seen_bad:
            self._seen_bad.add(path)
            warnings.warn(f"skipping undecodable video {path}: {msg}", BrokenVideoWarning, stacklevel=3)
        return BrokenVideo(path, msg)

    def _apply(self, clip: torch.Tensor) -> torch.Tensor:
        """Transform one (T, C, H, W) uint8 clip; without a transform: float (C, T, H, W) in 0-255."""
        if self.transform is None:
            return clip.permute(1, 0, 2, 3).float()
        return self.transform(tv_tensors.Video(clip))


def collate_videos(items: Sequence[dict[str, Any] | BrokenVideo]) -> dict[str, Any]:
    """Stack good items into ``video``/``label``/``index``; broken ones go to ``skipped`` (their paths).

    When every item of a batch is broken, ``video`` and ``label`` are None: skip the step.
    """
    good = [it for it in items if not isinstance(it, BrokenVideo)]
    skipped = [it.path for it in items if isinstance(it, BrokenVideo)]
    errors = [it.error for it in items if isinstance(it, BrokenVideo)]
    if not good:
        return {"video": None, "label": None, "index": torch.empty(0, dtype=torch.long),
                "skipped": skipped, "errors": errors}
    batch = default_collate([{k: it[k] for k in ("video", "label", "index")} for it in good])
    batch.update(skipped=skipped, errors=errors)
    return batch


class SkippedVideos:
    """Running tally of ``batch["skipped"]`` over an epoch (sum it across ranks yourself if needed)."""

    def __init__(self) -> None:
        self.count = 0
        self.paths: dict[str, int] = {}

    def update(self, batch: dict[str, Any]) -> int:
        """Add a batch's skipped paths; returns how many it had."""
        for p in batch.get("skipped", ()):
            self.paths[p] = self.paths.get(p, 0) + 1
        self.count += len(batch.get("skipped", ()))
        return len(batch.get("skipped", ()))

    def __repr__(self) -> str:
        more = "..." if len(self.paths) > 5 else ""
        return f"SkippedVideos(count={self.count}, files={sorted(self.paths)[:5]}{more})"


def build_video_dataset(
        root: str | os.PathLike,
        ann_file: str | os.PathLike | None = None,
        *,
        split: str = "train",
        clip_len: int = 32,
        frame_interval: int = 2,
        num_clips: int | None = None,
        num_crops: int = 3,
        crop_size: int = 224,
        short_side: int | tuple[int, int] | None = None,
        hflip: float = 0.5,
        scale: tuple[float, float] = (0.08, 1.0),
        num_classes: int | None = None,
        classes: Sequence[str] | None = None,
        **kwargs: Any,
) -> VideoDataset:
    """Kinetics with the Video Swin recipe: ``ann_file`` .csv (official), other (list file) or None (folders).

    split: "train" (1 random clip, RRC + flip), "val" (1 centred clip, centre crop) or "test"
    (num_clips=4 clips x num_crops=3 crops). Pass the training ``classes`` to val/test CSV/folder sets.
    """
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be 'train', 'val' or 'test', got {split!r}")
    num_clips = num_clips or (4 if split == "test" else 1)
    kwargs.setdefault("transform", build_video_transform(split, crop_size, short_side, num_crops, hflip, scale))
    kwargs.update(clip_len=clip_len, frame_interval=frame_interval, num_clips=num_clips, test_mode=split != "train")
    if ann_file is None:
        ds = VideoDataset.from_folder(root, classes=classes, **kwargs)
    elif is_csv(ann_file):
        ds = VideoDataset.from_kinetics_csv(ann_file, root, classes=classes, **kwargs)
    else:
        ds = VideoDataset.from_list_file(ann_file, root, num_classes=num_classes, classes=classes, **kwargs)
    if num_classes is not None and ds.num_classes != num_classes:
        raise ValueError(f"{ann_file or root} has {ds.num_classes} classes, expected num_classes={num_classes}")
    return ds

