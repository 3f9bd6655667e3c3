"""Features of whole videos, bounded in memory: the plan (which videos, resumable), the sliding-clip data set, the
memory-mapped writer and the extraction loop (the command: ``cli/extract.py``)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from torchvision import tv_tensors

from core.engine.config import ConfigError
from core.engine.data import DataError
from core.engine.device import autocast
from core.engine.inference import expand_inputs, stage_features
from core.malloc import maybe_trim
from core.video.data import (
    VIDEO_EXTENSIONS,
    num_sliding_clips,
    sliding_clip_indices,
)
from core.video.decoders import open_video
from core.video.lists import ListFileError, read_list_file
from core.video.prepare import remove_orphans
from core.video.task import model_input
from core.video.transforms import video_eval_transform

INDEX = "index.json"
SETTINGS = ("clip_len", "frame_interval", "stride", "stage", "pooling", "crop_size", "model")


@dataclass
class Job:
    """Videos to extract and where their arrays go."""
    videos: list[str]
    outputs: list[str]
    problems: list[tuple[str, str]] = field(default_factory=list)


def _list_entries(list_file: str) -> list[str]:
    """Paths of a list file (:mod:`core.video.lists`: one per line, the path may hold spaces, a label is optional)."""
    if not os.path.isfile(list_file):
        raise DataError(f"--list {list_file}: file not found")
    try:
        return [e.path for e in read_list_file(list_file, labels=False)]
    except ListFileError as e:
        raise DataError(f"--list {e}") from None


def plan(out_dir: str, list_file: str | None = None, root: str | None = None) -> Job:
    """Videos of a list file (relative to ``root`` or the list's folder) or of a folder tree, and their outputs.

    The output of ``<base>/a/b.mp4`` is ``<out_dir>/a/b.npy`` (a file outside the base keeps only its name).
    """
    if list_file:
        base = root or os.path.dirname(os.path.abspath(list_file))
        entries = [e if os.path.isabs(e) else os.path.join(base, e) for e in _list_entries(list_file)]
        problems = [(e, "file not found") for e in entries if not os.path.isfile(e)]
        videos = [e for e in entries if os.path.isfile(e)]
    elif root:
        if not os.path.isdir(root):
            raise DataError(f"--root {root}: not a folder")
        base = root
        videos, problems = expand_inputs([root], VIDEO_EXTENSIONS)
    else:
        raise ConfigError("give the videos: --list FILE or --root DIR")
    outputs, seen = [], {}
    for v in videos:
        rel = os.path.relpath(os.path.abspath(v), os.path.abspath(base))
        rel = os.path.basename(v) if rel.startswith("..") else rel
        o = os.path.join(out_dir, os.path.splitext(rel)[0] + ".npy")
        if o in seen:
            raise DataError(f"{seen[o]} and {v} would both write {o}")
        seen[o] = v
        outputs.append(o)
    return Job(videos, outputs, problems)


class SlidingClips(IterableDataset):
    """Chunks of sliding clips over whole videos: items {video, start, total, clips (k, C, T, H, W), ...} or
    {video, error}. DataLoader workers take every num_workers-th video; a frame is decoded (by ``decoder``, one of
    :mod:`core.video.decoders`) and resized once."""

    def __init__(self, videos: Sequence[str], clip_len: int, frame_interval: int, stride: int, chunk: int,
                 crop_size: int, num_threads: int = 1, decoder: str = "decord") -> None:
        self.videos = np.array(list(videos), dtype=np.str_)  # no refcount copies in forked workers
        self.clip_len, self.frame_interval, self.stride, self.chunk = clip_len, frame_interval, stride, chunk
        self.transform = video_eval_transform(crop_size, crop_size, num_crops=1)
        self.num_threads, self.decoder = num_threads, decoder

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        for vi in range(wid, len(self.videos), nw):
            yield from self.video_chunks(vi)

    def video_chunks(self, vi: int) -> Iterator[dict[str, Any]]:
        """Every chunk of video ``vi``, then nothing; or, on a decoding failure, an error item."""
        path = str(self.videos[vi])
        try:
            video = open_video(path, decoder=self.decoder, num_threads=self.num_threads)
            n, fps = video.num_frames, video.fps
            total = num_sliding_clips(n, self.clip_len, self.frame_interval, self.stride)
            for start in range(0, total, self.chunk):
                inds = sliding_clip_indices(n, self.clip_len, self.frame_interval, self.stride, start, self.chunk)
                uniq, inverse = np.unique(inds, return_inverse=True)
                frames = video.get(uniq).permute(0, 3, 1, 2)                  # (U, C, H, W) uint8
                frames = self.transform(tv_tensors.Video(frames))[0]          # (C, U, h, w) float
                clips = frames[:, torch.from_numpy(inverse.reshape(inds.shape))].transpose(0, 1)
                yield {"video": vi, "start": start, "total": total, "num_frames": n, "fps": fps,
                       "clips": clips.contiguous()}
        except Exception as e:  # noqa: BLE001 -- DECORDError, FFmpeg's errors, RuntimeError on truncated files
            yield {"video": vi, "error": f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"}


def clip_features(model: torch.nn.Module, x: torch.Tensor, stage: int, pooling: str,
                  single_frame: bool = False) -> torch.Tensor:
    """Features of clips (B, C, T, H, W) (their middle frames for a single-frame recipe): see stage_features."""
    return stage_features(model, model_input(x, single_frame), stage, pooling)


class _Writer:
    """One video's array, filled chunk by chunk in a memory-mapped temporary file, renamed when complete."""

    def __init__(self, path: str, total: int, row_shape: tuple[int, ...]) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        remove_orphans(path)
        self.path, self.tmp = path, f"{path}.{os.getpid()}.tmp"
        self.array = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=np.float32, shape=(total, *row_shape))
        self.done = 0

    def write(self, start: int, rows: np.ndarray) -> bool:
        """Store rows from clip ``start``; True when the array is complete and in place."""
        self.array[start:start + len(rows)] = rows
        self.done += len(rows)
        if self.done < len(self.array):
            return False
        self.array.flush()
        del self.array
        os.replace(self.tmp, self.path)
        return True

    def discard(self) -> None:
        if hasattr(self, "array"):
            del self.array
        if os.path.exists(self.tmp):
            os.remove(self.tmp)


@torch.no_grad()
def extract(model: torch.nn.Module, dataset: SlidingClips, outputs: Sequence[str], device: torch.device, *,
            stage: int, pooling: str, workers: int = 2, amp_dtype: torch.dtype | None = None,
            single_frame: bool = False) -> dict[str, Any]:
    """Write the features of every video of ``dataset``; returns records, failures and timings."""
    loader = DataLoader(dataset, batch_size=None, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=False)
    writers: dict[int, _Writer] = {}
    records, failed = [], []
    wait = compute = 0.0
    clips_done = 0
    t0 = time.perf_counter()
    it = iter(loader)
    while True:
        t = time.perf_counter()
        item = next(it, None)
        wait += time.perf_counter() - t
        if item is None:
            break
        vi = item["video"]
        if "error" in item:
            if vi in writers:
                writers.pop(vi).discard()
            failed.append({"video": str(dataset.videos[vi]), "error": item["error"]})
            continue
        t = time.perf_counter()
        maybe_trim()  # thousands of batches come and go through the heap
        with autocast(device, amp_dtype):
            f = clip_features(model, item["clips"].to(device, non_blocking=True), stage, pooling, single_frame)
        rows = f.float().cpu().numpy()
        compute += time.perf_counter() - t
        clips_done += len(rows)
        if vi not in writers:
            writers[vi] = _Writer(outputs[vi], item["total"], rows.shape[1:])
        if writers[vi].write(item["start"], rows):
            del writers[vi]
            records.append({"video": str(dataset.videos[vi]), "features": outputs[vi], "num_frames": item["num_frames"],
                            "fps": item["fps"], "num_clips": item["total"], "shape": [item["total"], *rows.shape[1:]]})
    for w in writers.values():  # not reached for a well-formed stream; never leave half files behind
        w.discard()
    return {"records": records, "failed": failed, "clips": clips_done, "seconds": time.perf_counter() - t0,
            "data_wait_s": wait, "model_s": compute}


def describe_output(video: str, npy: str, decoder: str = "decord") -> dict[str, Any]:
    """Index record of an array written by an earlier run (shape from its header; frames and fps from the decoder)."""
    shape = list(np.load(npy, mmap_mode="r").shape)
    try:
        v = open_video(video, decoder=decoder)
        n, fps = v.num_frames, v.fps
    except Exception:  # noqa: BLE001 -- the array is what matters; the video may have moved
        n, fps = None, None
    return {"video": video, "features": npy, "num_frames": n, "fps": fps, "num_clips": shape[0], "shape": shape}


def check_index(out_dir: str, settings: dict[str, Any]) -> dict[str, Any]:
    """The existing index of ``out_dir`` (empty if none); ConfigError if it was made with other settings."""
    path = os.path.join(out_dir, INDEX)
    if not os.path.isfile(path):
        return {}
    old = json.loads(Path(path).read_text())
    diff = [f"{k}={old.get(k)!r} (now {settings[k]!r})" for k in SETTINGS if old.get(k) != settings[k]]
    if diff:
        raise ConfigError(f"{out_dir} holds features made with other settings: {', '.join(diff)}; "
                          f"use another --out")
    return old


