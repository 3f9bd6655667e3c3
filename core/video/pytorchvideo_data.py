"""``data.backend: pytorchvideo``: the clip sets of :mod:`core.video.data` read through pytorchvideo's
``LabeledVideoDataset`` (its decord or PyAV decoder, as ``data.decoder`` says; no audio), as loaders with the
signature of ``core.engine.data.build_loaders``.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, Sampler, get_worker_info
from torchvision import tv_tensors

from .data import BrokenVideo, BrokenVideoWarning, VideoDataset, collate_videos

__all__ = ["PytorchvideoClips", "build_pytorchvideo_loaders", "PYTORCHVIDEO_DECODERS"]

# data.decoder -> the name of pytorchvideo's own decoder for it (it has none for torchcodec)
PYTORCHVIDEO_DECODERS = {"decord": "decord", "pyav": "pyav"}


class PytorchvideoClips(IterableDataset):
    """A :class:`VideoDataset`'s videos read through pytorchvideo's ``LabeledVideoDataset`` (no audio), by its decoder
    of the same library as ``source.decoder`` (decord or pyav).

    pytorchvideo samples clips by time: a clip lasts ``clip_len * frame_interval / fps`` seconds (``fps`` is
    ``data.fps``, not each video's rate), taken at random (``RandomClipSampler``, training) or at ``num_clips``
    even steps (``ConstantClipsPerVideoSampler``, evaluation); its frames are thinned to ``clip_len`` by
    pytorchvideo's ``uniform_temporal_subsample``, then go through ``source``'s transform. Items are this module's:
    ``video`` (C, T, H, W) for training, (clips * crops, C, T, H, W) for evaluation, ``label``, ``index`` (the
    video's position in ``source``); a video pytorchvideo could not decode becomes a :class:`BrokenVideo` after the
    pass (pytorchvideo skips it itself, and gives up after 10 failures in a row).

    ``video_sampler`` picks this process's videos, as pytorchvideo expects (``DistributedSampler`` for training,
    an evaluation sampler without padding); pytorchvideo splits them between DataLoader workers itself. The
    training stream repeats its videos without end (the trainer takes ``len(loader)`` batches; workers that drop
    a partial batch or meet broken files would otherwise come up short); evaluation is one pass.
    """

    def __init__(self, source: VideoDataset, video_sampler: Callable[[Sequence], Sampler], fps: float = 30.0) -> None:
        from fractions import Fraction

        from pytorchvideo.data import LabeledVideoDataset
        from pytorchvideo.data.clip_sampling import (
            ConstantClipsPerVideoSampler,
            RandomClipSampler,
        )

        self.classes, self.clip_len, self.train = list(source.classes), source.clip_len, not source.test_mode
        self.clips_per_video, self.transform = source.num_clips, source.transform
        self.duration = Fraction(source.clip_len * source.frame_interval) / Fraction(str(fps))
        clips = RandomClipSampler(self.duration) if self.train else \
            ConstantClipsPerVideoSampler(self.duration, clips_per_video=source.num_clips)
        self._paths = source._paths
        if source.decoder not in PYTORCHVIDEO_DECODERS:
            from core.engine.config import ConfigError
            raise ConfigError(f"data.decoder = {source.decoder!r} under data.backend pytorchvideo: expected one of "
                              f"{sorted(PYTORCHVIDEO_DECODERS)} (pytorchvideo's own decoders)")
        self.decoder = PYTORCHVIDEO_DECODERS[source.decoder]
        self.videos = LabeledVideoDataset([(p, {"label": int(y)}) for p, y in source.samples], clips, video_sampler,
                                          decode_audio=False, decoder=self.decoder)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def video_sampler(self) -> Sampler:
        """This process's videos."""
        return self.videos.video_sampler

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle the training videos for ``epoch`` (the trainer calls this, as on a DistributedSampler)."""
        if hasattr(self.video_sampler, "set_epoch"):
            self.video_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        """Videos of this process: training clips per epoch, or evaluated videos."""
        return len(self.video_sampler)

    def _worker_videos(self) -> list[int]:
        """The video indices this DataLoader worker reads in one pass (pytorchvideo's MultiProcessSampler split)."""
        order = list(self.video_sampler)
        info = get_worker_info()
        if info is None or info.num_workers == 0:
            return order
        return [order[i] for i in np.array_split(np.arange(len(order)), info.num_workers)[info.id]]

    def _views(self, sample: dict[str, Any]) -> torch.Tensor:
        """pytorchvideo's (C, T', H, W) float 0-255 clip -> clip_len frames -> this module's transform."""
        from .pytorchvideo_compat import import_pytorchvideo_transforms

        subsample = import_pytorchvideo_transforms().functional.uniform_temporal_subsample
        clip = subsample(sample["video"], self.clip_len).permute(1, 0, 2, 3).round_().clamp_(0, 255).to(torch.uint8)
        if self.transform is None:
            return clip.permute(1, 0, 2, 3).float()
        return self.transform(tv_tensors.Video(clip))

    def _broken(self, index: int, why: str) -> BrokenVideo:
        path = str(self._paths[index])
        warnings.warn(f"skipping undecodable video {path}: {why}", BrokenVideoWarning, stacklevel=2)
        return BrokenVideo(path, why)

    def __iter__(self) -> Iterator[dict[str, Any] | BrokenVideo]:
        if self.decoder == "decord":
            import decord

            # pytorchvideo's decord decoder needs decord's torch bridge; it sets it process-wide once, when first
            # imported, so someone may have reset it since (this module's own reader accepts either bridge)
            decord.bridge.set_bridge("torch")
        return self._train_stream() if self.train else self._eval_stream()

    def _train_stream(self) -> Iterator[dict[str, Any] | BrokenVideo]:
        expected = self._worker_videos()
        while expected:
            seen = set()
            for s in self.videos:  # iter() restarts pytorchvideo's pass over this worker's videos
                seen.add(s["video_index"])
                yield {"video": self._views(s), "label": s["label"], "index": s["video_index"]}
            if not seen:
                raise RuntimeError(f"pytorchvideo decoded none of this worker's {len(expected)} videos, e.g. "
                                   f"{self._paths[expected[0]]}")
            for i in expected:
                if i not in seen:
                    yield self._broken(i, "pytorchvideo could not decode it")

    def _eval_stream(self) -> Iterator[dict[str, Any] | BrokenVideo]:
        seen: set[int] = set()
        views: list[torch.Tensor] = []
        current = label = None
        for s in self.videos:
            if s["video_index"] != current:
                if views:  # the previous video ended before all its clips decoded
                    yield self._broken(current, f"pytorchvideo decoded {len(views)} of {self.clips_per_video} clips")
                current, label, views = s["video_index"], s["label"], []
                seen.add(current)
            v = self._views(s)
            views.append(v if v.dim() == 5 else v.unsqueeze(0))
            if len(views) == self.clips_per_video:
                yield {"video": torch.cat(views), "label": label, "index": current}
                views = []
        if views:
            yield self._broken(current, f"pytorchvideo decoded {len(views)} of {self.clips_per_video} clips")
        for i in self._worker_videos():
            if i not in seen:
                yield self._broken(i, "pytorchvideo could not decode it")


def _sharded_videos(videos: Sequence, *, num_replicas: int, rank: int) -> Sampler:
    """Evaluation: rank r reads videos r, r + W, ... (no padding, no duplicates)."""
    from core.engine.distributed import ShardedSampler
    return ShardedSampler(len(videos), num_replicas, rank)


def build_pytorchvideo_loaders(cfg: Any, train_ds: VideoDataset | None, val_ds: VideoDataset | None, info: Any, *,
                               collate_fn: Callable | None = collate_videos) -> tuple[DataLoader | None, DataLoader | None]:
    """``core.engine.data.build_loaders`` for ``data.backend: pytorchvideo``: the same sets read by pytorchvideo.

    Training: ``DistributedSampler`` of videos (seed ``train.seed``, reshuffled per epoch), one random clip per
    video and epoch, ``drop_last``; evaluation: each rank's share of the videos, every view of a video in one item.
    """
    from functools import partial

    from torch.utils.data import DistributedSampler

    from core.engine.data import DataError

    d = cfg.data
    pin = d.pin_memory and info.device.type == "cuda"
    train_loader = val_loader = None
    if train_ds is not None:
        clips = PytorchvideoClips(train_ds, partial(DistributedSampler, num_replicas=info.world_size, rank=info.rank,
                                                    shuffle=True, seed=cfg.train.seed), d.fps)
        if len(clips) < d.batch_size:
            raise DataError(f"training set too small: {len(clips)} videos per process < data.batch_size "
                             f"{d.batch_size}: lower it (--opt data.batch_size=N)")
        train_loader = DataLoader(clips, batch_size=d.batch_size, num_workers=d.num_workers, pin_memory=pin,
                                   drop_last=True, collate_fn=collate_fn)
    if val_ds is not None:
        clips = PytorchvideoClips(val_ds, partial(_sharded_videos, num_replicas=info.world_size, rank=info.rank),
                                  d.fps)
        val_loader = DataLoader(clips, batch_size=d.eval_batch_size or d.batch_size, num_workers=d.num_workers,
                                pin_memory=pin, drop_last=False, collate_fn=collate_fn)
    return train_loader, val_loader
