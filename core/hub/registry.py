"""Named pretrained weights, ``<arch>.<tag>`` (timm's convention): what each file is, where it lives, what it fits.

An entry names the model that reads it (a ``core.nn.registry`` name) and the overrides that make that model fit
the file (window, heads, classes); ``<arch>`` is the short name of that architecture (the registry name where
one fits as is, e.g. ``swin_t``; otherwise a descriptive one, e.g. ``swin_v2_l_w12``). The first entry registered
for an arch is its default (``create_model("swin_t", pretrained=True)``).
"""
from __future__ import annotations

import difflib
import fnmatch
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit


class HubError(RuntimeError):
    """Pretrained weights that cannot be had: no network, a bad hash, a file to fetch by hand."""


class UnknownPretrained(HubError, ValueError):
    """A pretrained name that is not registered (the message lists the nearest ones)."""


@dataclass(frozen=True)
class Pretrained:
    """One released weight file: its source, the model and overrides it fits, its inputs, labels and accuracy."""
    name: str                                # "<arch>.<tag>", e.g. "swin_t.ms_in1k"
    model: str                               # the registered model that reads it
    family: str                              # zoo section: Swin, Swin V2, Swin-MLP, Video Swin, MoBY, SimMIM
    source: str                              # who released it: microsoft/Swin-Transformer, torchvision, ...
    url: str | None = None                   # direct download (or the page to fetch it from by hand: manual)
    hf_hub_id: str | None = None             # Hugging Face hub repository (the file: hf_filename)
    hf_filename: str | None = None           # file in the hub repository; None: timm's model.safetensors
    manual: bool = False                     # hosted where no program can fetch it (Google Drive): by hand
    file: str | None = None                  # the cache file name where the url does not end in one
    overrides: Mapping[str, Any] = field(default_factory=dict)
    num_classes: int = 1000                  # 0: a backbone without a classifier (pretraining checkpoints)
    labels: str | None = "imagenet-1k"       # label-set name for core.class_names (None: no classifier)
    input_size: tuple[int, ...] = (3, 224, 224)   # (C, H, W) or (C, T, H, W); T = clip length
    frame_interval: int | None = None        # video: frames between sampled frames
    test_views: str | None = None            # video: clips x crops of the release's test protocol
    resize_size: int | None = None           # torchvision's evaluation resize (short side) before the crop
    top1: float | None = None                # the release's accuracy (fine-tuned / linear-probe for pretraining)
    top5: float | None = None
    metric: str = ""                         # what the accuracy is: data set, views, protocol
    notes: str = ""

    @property
    def arch(self) -> str:
        """The part before the dot."""
        return self.name.split(".", 1)[0]

    @property
    def tag(self) -> str:
        """The part after the dot."""
        return self.name.split(".", 1)[1]

    @property
    def file_name(self) -> str:
        """The name of the file in the cache (``file``, the url's last part, or the hub file's)."""
        if self.file:
            return self.file
        if self.url and not self.manual:
            return os.path.basename(urlsplit(self.url).path)
        if self.hf_filename:
            return os.path.basename(self.hf_filename)
        return f"{self.name}.pth"

    @property
    def task(self) -> str:
        """'pretrain' for a checkpoint without a classifier, else 'video' or 'image'."""
        if self.num_classes == 0:
            return "pretrain"
        return "video" if len(self.input_size) == 4 else "image"

    def cfg(self) -> dict[str, Any]:
        """The entry as a plain mapping (``pretrained_cfg``)."""
        out = asdict(self)
        out.update(overrides=dict(self.overrides), arch=self.arch, tag=self.tag, file_name=self.file_name,
                   task=self.task, clip_len=self.input_size[1] if len(self.input_size) == 4 else None)
        return out


_ENTRIES: dict[str, Pretrained] = {}
_DEFAULT: dict[str, str] = {}


def register_pretrained(entry: Pretrained, *, default: bool = False) -> Pretrained:
    """Add a named weight file (``default``: the one ``pretrained=True`` picks for its arch)."""
    if entry.name.count(".") != 1:
        raise ValueError(f"pretrained names are '<arch>.<tag>', got {entry.name!r}")
    if not (entry.url or entry.hf_hub_id):
        raise ValueError(f"{entry.name}: give a url or an hf_hub_id")
    _ENTRIES[entry.name] = entry
    if default or entry.arch not in _DEFAULT:
        _DEFAULT[entry.arch] = entry.name
    return entry


def _load_entries() -> None:
    if not _ENTRIES:
        from . import entries  # noqa: F401  (registers the released weights)


def list_pretrained(pattern: str = "*") -> list[str]:
    """Every registered pretrained name matching the shell-style ``pattern`` (e.g. ``"video_swin_*"``), sorted."""
    _load_entries()
    return sorted(n for n in _ENTRIES if fnmatch.fnmatchcase(n, pattern))


def archs() -> list[str]:
    """Every arch that has pretrained weights."""
    _load_entries()
    return sorted(_DEFAULT)


def get_pretrained(name: str, tag: str | None = None) -> Pretrained:
    """The entry ``name`` (``"<arch>.<tag>"``), ``<arch>`` plus ``tag``, or an arch's default; unknown: the
    nearest registered names."""
    _load_entries()
    full = f"{name}.{tag}" if tag else name
    if full in _ENTRIES:
        return _ENTRIES[full]
    if tag is None and name in _DEFAULT:
        return _ENTRIES[_DEFAULT[name]]
    near = difflib.get_close_matches(full, list(_ENTRIES) + list(_DEFAULT), n=6, cutoff=0.6)
    if not near and "." in full:  # the arch is known: its tags
        near = [n for n in _ENTRIES if n.startswith(full.split(".")[0] + ".")][:6]
    hint = f"; nearest: {', '.join(near)}" if near else "; core.list_pretrained() lists them"
    raise UnknownPretrained(f"unknown pretrained weights {full!r}{hint}")


def pretrained_cfg(name: str) -> dict[str, Any]:
    """What the weights ``name`` are: url / hf_hub_id, model and overrides, num_classes, labels, input size,
    clip length, accuracy and source."""
    return get_pretrained(name).cfg()
