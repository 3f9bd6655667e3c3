"""Video data sets from a recipe's ``data`` section: the embedded sets or Kinetics-style folders, list files and CSVs,
with the classes checked against (and written to) the run folder."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

from ..classification.build import check_num_classes
from ..engine import ConfigError
from ..engine import distributed as du
from ..engine.data import DataError
from ..engine.files import atomic_write_text
from .config import VideoConfig
from .data import build_video_dataset
from .decoders import check_decoder
from .sources import is_generated, video_paths

__all__ = ["data_paths", "build_datasets", "check_classes", "write_classes", "run_datasets"]


def data_paths(cfg: VideoConfig) -> tuple[str, str | None, str | None, str | None]:
    """root and train / val / test annotation files (a generated set is written on first use)."""
    root, train, val = video_paths(cfg.data)
    test = val if is_generated(cfg.data.dataset) else (cfg.data.ann_test or val)
    return root, train, val, test


def build_datasets(cfg: VideoConfig, split: str = "val") -> tuple[Any, Any, int]:
    """Training set (one random clip) and validation/test set (clips x crops views per video)."""
    d = cfg.data
    root, ann_train, ann_val, ann_test = data_paths(cfg)
    common = dict(clip_len=d.clip_len, frame_interval=d.frame_interval, crop_size=d.crop_size, **d.decoding())
    sub = (lambda s: os.path.join(root, s)) if ann_train is None else (lambda s: root)
    val_root = d.root_val or sub("val")
    names = {"classes_file": d.classes_file} if d.classes_file and ann_train and not ann_train.endswith(".csv") else {}
    try:
        check_decoder(d.decoder)
        train = build_video_dataset(sub("train"), ann_train, split="train", short_side=d.short_side,
                                    scale=tuple(d.scale), hflip=d.hflip, **names, **common)
        evalset = _eval_set(cfg, split, val_root, ann_val, ann_test, train.classes, common)
    except (ValueError, OSError, ImportError) as e:  # malformed list / CSV files, unreadable folders: name the file
        raise DataError(str(e)) from None
    if len(evalset) == 0:
        raise DataError(f"no {'test' if split == 'test' else 'validation'} videos in {val_root}"
                        f"{'' if ann_val is None else f' (data.ann_val = {ann_val!r})'}: give data.ann_val (a list file "
                        f"or CSV) when data.ann_train is one, or a val/ folder of class folders")
    if list(evalset.classes) != list(train.classes):
        raise ConfigError(f"validation classes differ from training classes ({len(evalset.classes)} vs "
                          f"{len(train.classes)})")
    return train, evalset, train.num_classes


def _eval_set(cfg: VideoConfig, split: str, root: str, ann_val: str | None, ann_test: str | None,
              classes: Sequence[str], common: dict) -> Any:
    """Validation (val_num_clips x 1 crop) or test (num_clips x num_crops) views of every video."""
    d = cfg.data
    if split == "test":
        return build_video_dataset(root, ann_test, split="test", num_clips=d.num_clips, num_crops=d.num_crops,
                                   classes=classes, **common)
    return build_video_dataset(root, ann_val, split="test", num_clips=d.val_num_clips, num_crops=1, classes=classes,
                               **common)


def check_classes(folder: str, classes: Sequence[str]) -> None:
    """A run's classes.txt in ``folder``, if any, must list exactly ``classes``."""
    path = os.path.join(folder, "classes.txt")
    if os.path.exists(path):
        old = Path(path).read_text().splitlines()
        if old != list(classes):
            raise ConfigError(f"{path} lists {len(old)} classes that differ from this data set's "
                              f"{len(classes)}; resume with the data the run was started with")


def write_classes(output_dir: str, classes: Sequence[str]) -> None:
    """classes.txt next to the checkpoints (rank 0, atomically)."""
    if du.is_main():
        atomic_write_text(os.path.join(output_dir, "classes.txt"), "\n".join(classes) + "\n")


def run_datasets(cfg: VideoConfig, out: str) -> tuple[Any, Any, int]:
    """:func:`build_datasets`, its classes checked against the classes.txt of the run folder ``out`` (and written
    there)."""
    train_ds, val_ds, num_classes = build_datasets(cfg)
    for folder in {out, os.path.dirname(cfg.train.resume)} - {""}:
        check_classes(folder, train_ds.classes)
    write_classes(out, train_ds.classes)
    check_num_classes(cfg, num_classes)
    logging.getLogger("swin").info(f"videos: {len(train_ds)} training, {len(val_ds)} validation, {num_classes} classes "
                                   f"({data_paths(cfg)[0]})")
    return train_ds, val_ds, num_classes
