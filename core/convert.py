"""Checkpoint converters (timm, torchvision, official Swin and Video Swin formats) and load_pretrained."""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from .convert_hf import from_hf, is_hf_swin
from .position import embed_bias_table, resize_bias_table, table_size

StateDict = dict[str, torch.Tensor]
DERIVED = ("relative_position_index", "attn_mask", "relative_coords_table")
FORMATS = ("ours", "timm", "torchvision", "official", "official_video")


def unwrap(checkpoint: Mapping) -> StateDict:
    """Pull the backbone weights out of a checkpoint: the 'model' / 'state_dict' entry of a training checkpoint,
    without DDP's 'module.', and of a pretraining checkpoint (official MoBY or SimMIM) the online encoder."""
    sd = dict(_entry(checkpoint))
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if pretraining_method(sd):
        sd = {k[len(ENCODER):]: v for k, v in sd.items() if k.startswith(ENCODER) and k != ENCODER + "mask_token"}
    return sd


ENCODER = "encoder."


def pretraining_method(sd: Mapping[str, torch.Tensor]) -> str | None:
    """'moby' (encoder, encoder_k, projector(_k), predictor, queue1/2, queue_ptr: Transformer-SSL), 'simmim'
    (encoder with mask_token, decoder), or None for a plain backbone."""
    keys = list(sd)
    if not any(k.startswith(ENCODER) for k in keys) or is_hf_swin(sd):  # transformers: encoder.layers.*
        return None
    if any(k.startswith(("encoder_k.", "predictor.", "queue1")) for k in keys):
        return "moby"
    if any(k.startswith("decoder.") for k in keys) or ENCODER + "mask_token" in sd:
        return "simmim"
    return "encoder"


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


def read_state_dict(source: str | os.PathLike | Mapping, fmt: str | None = None) -> tuple[StateDict, str]:
    """Our-layout weights and the source format, from a checkpoint file (``weights_only``) or a state dict."""
    if isinstance(source, (str, os.PathLike)):
        source = torch.load(source, map_location="cpu", weights_only=True)
    raw = unwrap(source)
    fmt = fmt or detect_format(raw)
    return convert_state_dict(raw, fmt), fmt


@dataclass
class LoadReport:
    """What load_pretrained did: source format, resized tables, a fresh head, and keys it could not place."""
    format: str
    pretraining: str | None = None  # 'moby' / 'simmim': the online encoder of such a checkpoint was taken
    new_head: bool = False          # the model's head was kept as initialised (reset_head, or a headless source)
    inflated: bool = False          # 2D weights inflated into a 3D model (video_swin.inflate_2d)
    resized: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)


def infer_table_window(table: torch.Tensor, model_window: Sequence[int]) -> tuple[int, ...] | None:
    """Infer the square window a bias table was made for, keeping the model's leading (temporal) axes."""
    lead = model_window[:-2]
    lead_size = math.prod(2 * w - 1 for w in lead)
    if table.shape[0] % lead_size:
        return None
    side = math.isqrt(table.shape[0] // lead_size)
    if side * side * lead_size != table.shape[0] or side % 2 == 0:
        return None
    return tuple(lead) + ((side + 1) // 2,) * 2


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
        strict: bool = True,
        reset_head: bool = False,
        head_map: Sequence[int] | torch.Tensor | None = None,
        source_img_size: Sequence[int] | None = None,
) -> LoadReport:
    """Load a checkpoint file or state dict of any supported format into ``model``.

    Bias tables are resized when the window differs; derived buffers are dropped. A head whose class count
    differs is an error unless asked: ``reset_head`` keeps the model's new head, ``head_map`` picks rows of the
    source head (e.g. the 22K -> 1K index list). Keys that do not fit are listed in the error (or, with
    ``strict=False``, in the returned report). ``source_img_size``: the input size a timm model was built for,
    whose stages shrank their windows (and bias tables) to it; those tables are placed exactly into ours.
    """
    if isinstance(source, (str, os.PathLike)):
        source = torch.load(source, map_location="cpu", weights_only=True)
    method = pretraining_method(_entry(source))
    sd, fmt = read_state_dict(source, fmt)
    target = model.state_dict()
    report = LoadReport(fmt, pretraining=method)
    if not any(k.startswith("head.") for k in sd) and any(k.startswith("head.") for k in target):
        reset_head = True  # a pretrained backbone without a classifier: the model's head stays fresh
    patch = sd.get("patch_embed.proj.weight")
    ndim = getattr(model, "ndim", None)
    if patch is not None and ndim is not None and patch.ndim != ndim + 2:
        hint = (" This is a 2D checkpoint: inflate it into the video model with model.pretrained_kwargs="
                "{inflate: true} (Python: video_swin.inflate_2d(model, path))." if patch.ndim == 4 else "")
        raise ValueError(f"checkpoint ({fmt} format) is for a {patch.ndim - 2}D model, {type(model).__name__} is "
                         f"{ndim}D (patch_embed.proj.weight {tuple(patch.shape)}).{hint}")
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
        if any(m.startswith("head.") for m in report.mismatched):
            lines.append("  (the class count differs: pass reset_head=True, or head_map=[...] to pick classes)")
        if any("relative_position_bias_table" in m for m in report.mismatched):
            lines.append("  (a bias table does not fit: a timm model built for a small input shrank its windows; pass "
                         "source_img_size=(H, W), the img_size it was built with)")
        raise ValueError("\n".join(lines))
    report.new_head = reset_head and any(k.startswith("head.") for k in target)
    fitting = {k: v for k, v in sd.items() if k in target and v.shape == target[k].shape}
    model.load_state_dict(fitting, strict=False)
    return report
