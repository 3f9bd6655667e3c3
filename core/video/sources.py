"""Where a recipe's clips are: generated sets registered by name, else a folder of videos with list files / CSVs.

    register_generated("spin_zoom", ensure_spin_zoom)      # name -> ensure(root | None, num_train=, num_val=) -> folder
    root, ann_train, ann_val = video_paths(cfg.data)       # the set named by data.dataset, generated on first use

A recipe names its set (``data.dataset``); no code branches on the name.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

from ..engine.config import ConfigError
from ..engine.data import DataError
from . import synthetic

__all__ = ["GENERATED", "FOLDER", "register_generated", "is_generated", "is_video_set", "video_set_names", "video_paths"]

GENERATED: dict[str, Callable[..., Path]] = {}
_ANNOUNCED: set[str] = set()
FOLDER = "kinetics"  # the name of a folder of videos in the Kinetics layouts (list files, official CSVs, classes)


def register_generated(name: str, ensure: Callable[..., Path]) -> None:
    """A generated clip set: ``ensure(root or None, num_train=..., num_val=...)`` writes it once, returns its folder
    (holding ``train.txt`` and ``val.txt``)."""
    GENERATED[name] = ensure


def is_generated(name: str) -> bool:
    return name in GENERATED


def is_video_set(name: str) -> bool:
    """Whether ``data.dataset`` names clips (a video folder or a generated set) rather than images."""
    return name == FOLDER or name in GENERATED


def video_set_names() -> list[str]:
    """Every name ``data.dataset`` may give for clips: the folder layout and the registered generated sets."""
    return sorted({FOLDER, *GENERATED})


def video_paths(d: Any, name: str | None = None) -> tuple[str, str | None, str | None]:
    """(root, train list, val list) of ``d.dataset`` (or ``name``): a generated set is written on first use;
    otherwise ``d.root`` must be a folder and the list files, when given, files."""
    name = name or d.dataset
    if name in GENERATED:
        given = [f"data.{k}" for k in ("ann_train", "ann_val") if getattr(d, k, "")]
        if given:
            raise ConfigError(f"{' and '.join(given)} given, but data.dataset = {name!r} is a generated set with its "
                              f"own lists: for your own videos set data.dataset={FOLDER}")
        try:
            root = GENERATED[name](d.root or None, num_train=d.num_train, num_val=d.num_val)
        except (FileExistsError, ValueError) as e:
            raise ConfigError(f"data.root = {d.root!r} cannot hold the generated set data.dataset = {name!r}: {e}. "
                              f"For your own videos set data.dataset={FOLDER}; for the generated set leave data.root "
                              f"empty (the cache) or name a new folder") from None
        if str(root) not in _ANNOUNCED:  # once per process
            _ANNOUNCED.add(str(root))
            logging.getLogger("swin").info(f"{name} clips: {root} ({d.num_train} train, {d.num_val} val)")
        return str(root), str(root / "train.txt"), str(root / "val.txt")
    if not d.root:
        raise ConfigError(f"data.root is empty: give the video folder (or a generated set: data.dataset = one of "
                          f"{sorted(GENERATED)})")
    if not os.path.isdir(d.root):
        raise ConfigError(f"data.root = {d.root!r} is not a folder")
    for key in ("ann_train", "ann_val", "ann_test", "classes_file"):
        path = getattr(d, key, "")
        if path and not os.path.isfile(path):
            raise DataError(f"data.{key} = {path!r} is not a file")
    return d.root, d.ann_train or None, d.ann_val or None


register_generated("moving_shapes", synthetic.ensure_moving_shapes)
register_generated("spin_zoom", synthetic.ensure_spin_zoom)
register_generated("speed_change", synthetic.ensure_speed_change)
register_generated("spiral", synthetic.ensure_spiral)
register_generated("spin_zoom_sharp", synthetic.ensure_spin_zoom_sharp)
register_generated("spiral_sharp", synthetic.ensure_spiral_sharp)
register_generated("swarm", synthetic.ensure_swarm)
register_generated("ramp", synthetic.ensure_ramp)
