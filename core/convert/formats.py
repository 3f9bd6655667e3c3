"""Checkpoint layouts into ours: timm, torchvision, official Swin and Video Swin, Hugging Face, and the encoder of
a pretraining checkpoint (layouts registered by the pretraining methods through the ``swin_suite.layouts`` entry
points, e.g. MoBY's and SimMIM's)."""
from __future__ import annotations

import importlib.metadata
import os
import re
from typing import Callable, Mapping, Sequence

import torch

from .hf import from_hf, is_hf_swin

StateDict = dict[str, torch.Tensor]
DERIVED = ("relative_position_index", "attn_mask", "relative_coords_table")
FORMATS = ("ours", "timm", "torchvision", "official", "official_video", "hf")
ENCODER = "encoder."
LAYOUT_GROUP = "swin_suite.layouts"
_LAYOUTS: dict[str, tuple[Callable[[Sequence[str]], bool], tuple[str, ...]]] = {}
_layouts_loaded = False


def register_layout(name: str, detect: Callable[[Sequence[str]], bool], drop: Sequence[str] = ()) -> None:
    """A pretraining method's checkpoint layout: ``detect(keys)`` recognises it, its online encoder sits under
    ``encoder.``, and the encoder keys in ``drop`` are the method's own (e.g. a mask token), not the backbone's."""
    _LAYOUTS[name] = (detect, tuple(drop))


def _load_layouts() -> None:
    global _layouts_loaded
    if not _layouts_loaded:
        _layouts_loaded = True
        for ep in importlib.metadata.entry_points(group=LAYOUT_GROUP):
            ep.load()


def unwrap(checkpoint: Mapping) -> StateDict:
    """Pull the backbone weights out of a checkpoint: the 'model' / 'state_dict' entry of a training checkpoint,
    without DDP's 'module.', and of a pretraining checkpoint (e.g. official MoBY or SimMIM) the online encoder."""
    sd = dict(_entry(checkpoint))
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    method = pretraining_method(sd)
    if method:
        drop = {ENCODER + k for k in _LAYOUTS.get(method, (None, ()))[1]}
        sd = {k[len(ENCODER):]: v for k, v in sd.items() if k.startswith(ENCODER) and k not in drop}
    return sd


def pretraining_method(sd: Mapping[str, torch.Tensor]) -> str | None:
    """The registered pretraining layout of a checkpoint with an ``encoder.`` backbone ('encoder' when none
    claims it), or None for a plain backbone."""
    keys = list(sd)
    if not any(k.startswith(ENCODER) for k in keys) or is_hf_swin(sd):  # transformers: encoder.layers.*
        return None
    _load_layouts()
    return next((name for name, (detect, _) in _LAYOUTS.items() if detect(keys)), "encoder")


def _entry(checkpoint: Mapping) -> Mapping:
    """The weights entry of a checkpoint, before any conversion."""
    for key in ("model", "state_dict", "model_state"):
        if key in checkpoint and isinstance(checkpoint[key], Mapping):
            return checkpoint[key]
    return checkpoint


def detect_format(sd: Mapping[str, torch.Tensor]) -> str:
    """Name the layout of a state dict: ours/timm (merging at stage start), official, torchvision, official_video."""
    keys = list(sd)
    if is_hf_swin(sd):  # transformers SwinModel / SwinFor*
        return "hf"
    if any(k.startswith("backbone.") or k.startswith("cls_head.") for k in keys):
        return "official_video"
    if any(k.startswith("features.") for k in keys):
        return "torchvision"
    if any(k.startswith("layers.0.downsample.") for k in keys) or "head.weight" in sd:
        return "official"
    if any(re.match(r"layers\.\d+\.blocks\.", k) for k in keys):
        return "ours"  # timm's layout is ours: merging at the start of a stage, head.fc
    raise ValueError("cannot recognise the checkpoint format: no 'layers.*', 'features.*' or 'backbone.*' keys; "
                     f"first keys: {keys[:5]}")


def _drop_derived(sd: Mapping[str, torch.Tensor]) -> StateDict:
    return {k: v for k, v in sd.items() if not k.endswith(DERIVED)}


def from_official(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """microsoft/Swin-Transformer: merging at the end of stage i (ours: start of i+1), head.weight."""
    out = {}
    for k, v in _drop_derived(sd).items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            k = f"layers.{int(m.group(1)) + 1}.downsample.{m.group(2)}"
        elif k.startswith("head."):
            k = "head.fc." + k[len("head."):]
        out[k] = v
    return out


def from_official_video(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Video-Swin-Transformer (mmaction2): backbone.* as the official 2D layout, cls_head.fc_cls.* the head."""
    out = {}
    for k, v in sd.items():
        if k.startswith("backbone."):
            out[k[len("backbone."):]] = v
        elif k.startswith("cls_head.fc_cls."):
            out["head." + k[len("cls_head.fc_cls."):]] = v
    return from_official(out)


def from_torchvision(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """torchvision swin_t/s/b (features.0 = patch embed) and swin3d_t/s/b (patch_embed.*; features = stages)."""
    sd = _drop_derived(sd)
    out: StateDict = {}
    groups: dict[int, list[str]] = {}
    for k in sd:
        if k.startswith("features."):
            groups.setdefault(int(k.split(".")[1]), []).append(k)
    stage = -1
    for idx in sorted(groups):
        keys = groups[idx]
        if idx == 0 and "features.0.0.weight" in sd:  # 2D patch embed: Conv2d, Permute, LayerNorm
            for k in keys:
                out[k.replace("features.0.0.", "patch_embed.proj.").replace("features.0.2.", "patch_embed.norm.")] = sd[k]
            continue
        if any(".reduction." in k for k in keys):  # patch merging opens the next stage
            for k in keys:
                out[f"layers.{stage + 1}.downsample." + k.split(".", 2)[2]] = sd[k]
            continue
        stage += 1
        for k in keys:
            _, _, block, rest = k.split(".", 3)
            rest = re.sub(r"^mlp\.0\.", "mlp.fc1.", re.sub(r"^mlp\.3\.", "mlp.fc2.", rest))  # not cpb_mlp.0
            out[f"layers.{stage}.blocks.{block}.{rest}"] = sd[k]
    for k, v in sd.items():
        if k.startswith("head."):
            out["head.fc." + k[len("head."):]] = v
        elif not k.startswith("features."):
            out[k] = v
    return out


CONVERTERS = {"ours": _drop_derived, "timm": _drop_derived, "official": from_official,
              "official_video": from_official_video, "torchvision": from_torchvision, "hf": from_hf}


def convert_state_dict(sd: Mapping[str, torch.Tensor], fmt: str | None = None) -> StateDict:
    """Convert any supported state dict (format detected when not given) to ours."""
    sd = unwrap(sd)
    fmt = fmt or detect_format(sd)
    if fmt not in CONVERTERS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    return CONVERTERS[fmt](sd)


def unpickle_error(e: BaseException) -> str:
    """torch.load's error in one line, without its advice to turn the weights_only safety off."""
    msg = str(e)
    if "WeightsUnpickler error:" in msg:
        detail = msg.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"it holds objects other than tensors and plain containers, refused without running them ({detail})"
    return f"{type(e).__name__}: {msg.splitlines()[0] if msg else ''}"


def read_file(path: str | os.PathLike) -> Mapping:
    """``torch.load(path, weights_only=True)``; a file holding anything but tensors and plain containers is a
    ValueError naming it (torch's advice to turn the safety off is not passed on)."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 -- any unpickling failure means an unusable file
        raise ValueError(f"cannot read {path}: {unpickle_error(e)}") from None


def read_state_dict(source: str | os.PathLike | Mapping, fmt: str | None = None) -> tuple[StateDict, str]:
    """Our-layout weights and the source format, from a checkpoint file (``weights_only``) or a state dict."""
    if isinstance(source, (str, os.PathLike)):
        source = read_file(source)
    raw = unwrap(source)
    fmt = fmt or detect_format(raw)
    return convert_state_dict(raw, fmt), fmt
