"""One ``load_pretrained`` for every model and format: converters registered by model family, bias tables
resized, heads reset or re-indexed, 2D weights inflated into 3D models, keys that do not fit named."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch
import torch.nn as nn

from ..nn.position import embed_bias_table, infer_table_window, resize_bias_table, table_size
from .formats import DERIVED, StateDict, _entry, pretraining_method, read_file, read_state_dict
from .inflate import inflate_state_dict

Prepare = Callable[[nn.Module, StateDict], list[str]]
_FAMILIES: dict[type, tuple[Prepare | None, Prepare | None]] = {}


def register_converter(model_cls: type, *, prepare: Prepare | None = None, inflate: Prepare | None = None) -> None:
    """A model family's own steps, run by :func:`load_pretrained` on our-layout weights for a model of
    ``model_cls`` (or a subclass): ``prepare(model, sd)`` after conversion, ``inflate(model, sd)`` after 2D -> 3D
    inflation; each edits ``sd`` in place and returns the keys it reshaped."""
    _FAMILIES[model_cls] = (prepare, inflate)


def _family(model: nn.Module) -> tuple[Prepare | None, Prepare | None]:
    return next((_FAMILIES[c] for c in type(model).__mro__ if c in _FAMILIES), (None, None))


@dataclass
class LoadReport:
    """What load_pretrained did: source format, resized tables, a fresh head, and keys it could not place."""
    format: str
    pretraining: str | None = None  # 'moby' / 'simmim': the online encoder of such a checkpoint was taken
    new_head: bool = False          # the model's head was kept as initialised (reset_head, or a headless source)
    inflated: bool = False          # 2D weights inflated into a 3D model (inflate=True)
    resized: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def _shrunk_windows(model: nn.Module, img_size: Sequence[int]) -> dict[int, tuple[int, ...]]:
    """Per stage, the window timm uses for an input of img_size (shrunk where the stage is smaller)."""
    res = [math.ceil(s / p) for s, p in zip(img_size, model.patch_size)]
    out = {}
    for i in range(len(model.depths)):
        if i > 0:
            res = [math.ceil(r / f) for r, f in zip(res, model.merge_factors)]
        out[i] = tuple(min(r, w) for r, w in zip(res, model.window_size))
    return out


def load_pretrained(
        model: nn.Module,
        source: str | os.PathLike | Mapping,
        *,
        fmt: str | None = None,
        inflate: bool = False,
        strict: bool = True,
        reset_head: bool = False,
        head_map: Sequence[int] | torch.Tensor | None = None,
        source_img_size: Sequence[int] | None = None,
) -> LoadReport:
    """Load a checkpoint file or state dict of any supported format into ``model``.

    Bias tables are resized when the window differs; derived buffers are dropped; the model family's registered
    converter runs (e.g. Swin V2's torchvision qkv bias, Swin-MLP's shrunk windows). ``inflate``: 2D weights into
    a 3D model (patch kernel spread over time, tables repeated over time offsets; the head stays new). A head
    whose class count differs is an error unless asked: ``reset_head`` keeps the model's new head, ``head_map``
    picks rows of the source head (e.g. the 22K -> 1K index list). Keys that do not fit are listed in the error
    (or, with ``strict=False``, in the returned report). ``source_img_size``: the input size a timm model was
    built for, whose stages shrank their windows (and bias tables) to it; those tables are placed exactly.
    """
    if isinstance(source, (str, os.PathLike)):
        source = read_file(source)
    method = pretraining_method(_entry(source))
    sd, fmt = read_state_dict(source, fmt)
    target = model.state_dict()
    report = LoadReport(fmt, pretraining=method)
    prepare, inflate_fn = _family(model)
    if inflate:
        sd = inflate_state_dict(sd, model.patch_size, model.window_size)
        report.inflated, reset_head = True, True
        if inflate_fn:
            report.resized += inflate_fn(model, sd)
    if not any(k.startswith("head.") for k in sd) and any(k.startswith("head.") for k in target):
        reset_head = True  # a pretrained backbone without a classifier: the model's head stays fresh
    patch = sd.get("patch_embed.proj.weight")
    ndim = getattr(model, "ndim", None)
    if patch is not None and ndim is not None and patch.ndim != ndim + 2:
        hint = (" This is a 2D checkpoint: inflate it into the video model with model.pretrained_kwargs="
                "{inflate: true} (Python: load_pretrained(model, path, inflate=True))." if patch.ndim == 4 else "")
        raise ValueError(f"checkpoint ({fmt} format) is for a {patch.ndim - 2}D model, {type(model).__name__} is "
                         f"{ndim}D (patch_embed.proj.weight {tuple(patch.shape)}).{hint}")
    if prepare:
        report.resized += prepare(model, sd)
    if head_map is not None:
        rows = torch.as_tensor(head_map, dtype=torch.long).flatten()  # a list, a tensor or a numpy array
        for k in ("head.fc.weight", "head.fc.bias"):
            if k in sd:
                sd[k] = sd[k][rows]
    if reset_head:
        sd = {k: v for k, v in sd.items() if not k.startswith("head.")}
    window = getattr(model, "window_size", None)
    shrunk = _shrunk_windows(model, source_img_size) if source_img_size else {}
    for k, v in list(sd.items()):
        if k.endswith("relative_position_bias_table") and k in target and v.shape != target[k].shape and window:
            stage = int(k.split(".")[1])
            if stage in shrunk and v.shape[0] == table_size(shrunk[stage]):
                sd[k] = embed_bias_table(v, shrunk[stage], window)
                report.resized.append(k)
                continue
            old = infer_table_window(v, window)
            if old is not None and v.shape[1] == target[k].shape[1]:
                sd[k] = resize_bias_table(v, old, window)
                report.resized.append(k)
    report.resized.sort()
    report.missing = sorted(k for k in target if k not in sd and not k.endswith(DERIVED)
                            and not (reset_head and k.startswith("head.")))
    report.unexpected = sorted(k for k in sd if k not in target)
    report.mismatched = sorted(f"{k}: checkpoint {tuple(sd[k].shape)} vs model {tuple(target[k].shape)}"
                               for k in sd if k in target and sd[k].shape != target[k].shape)
    if strict and (report.missing or report.unexpected or report.mismatched):
        lines = [f"checkpoint ({fmt} format) does not fit {type(model).__name__}:"]
        for title, items in (("missing", report.missing), ("unexpected", report.unexpected),
                             ("mismatched", report.mismatched)):
            if items:
                shown = ", ".join(items[:10]) + (f", ... ({len(items)} in all)" if len(items) > 10 else "")
                lines.append(f"  {title} keys: {shown}")
        head, own = sd.get("head.fc.weight"), target.get("head.fc.weight")
        if head is not None and own is not None and head.shape[0] != own.shape[0]:
            lines.append(f"  (the class count differs: {head.shape[0]} in the checkpoint, {own.shape[0]} in the model: "
                         f"pass reset_head=True, or head_map=[...] to pick classes)")
        elif any(m.startswith("head.") for m in report.mismatched):
            lines.append("  (the head's input width differs: the checkpoint is another size of model; check the model "
                         "name, its embed_dim and head_time_bins)")
        if any("relative_position_bias_table" in m for m in report.mismatched):
            lines.append("  (a bias table does not fit: a timm model built for a small input shrank its windows; pass "
                         "source_img_size=(H, W), the img_size it was built with)")
        raise ValueError("\n".join(lines))
    report.new_head = reset_head and any(k.startswith("head.") for k in target)
    fitting = {k: v for k, v in sd.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(fitting, strict=False)
    return report
