"""Swin V2 checkpoints (timm ``swinv2_*``, torchvision ``swin_v2_t/s/b``, official microsoft/Swin-Transformer V2)
into our models, and 2D -> 3D inflation.

timm's layout and key names are ours (``attn.q_bias``, ``attn.v_bias``, ``attn.logit_scale``, ``attn.cpb_mlp.*``)
and the official one differs from it as for Swin V1, so ``core.load_pretrained`` already places both (it moves
the official merging and head and drops the ``relative_coords_table`` / ``relative_position_index`` /
``attn_mask`` buffers). torchvision stores one ``attn.qkv.bias`` whose key third it zeroes at every forward:
:func:`load_pretrained` splits it into the q and v biases before handing over to ``core.load_pretrained``.
"""
from __future__ import annotations

import os
from typing import Mapping

import torch
import torch.nn as nn

import core.convert as cc
from video_swin.inflate import inflate_state_dict


def split_qkv_bias(sd: dict[str, torch.Tensor]) -> list[str]:
    """torchvision's V2 ``attn.qkv.bias`` (q, k, v) -> ``attn.q_bias`` and ``attn.v_bias``, in place; the keys split."""
    split = []
    for k in [k for k in sd if k.endswith("attn.qkv.bias")]:
        prefix = k[:-len("qkv.bias")]
        if prefix + "logit_scale" in sd:
            q, _, v = sd.pop(k).chunk(3)
            sd[prefix + "q_bias"], sd[prefix + "v_bias"] = q, v
            split.append(k)
    return split


def load_pretrained(model: nn.Module, source: str | os.PathLike | Mapping, *, fmt: str | None = None,
                    **kwargs) -> cc.LoadReport:
    """``core.load_pretrained`` for Swin V2 (any of the formats above; keyword arguments are core's)."""
    sd, fmt = cc.read_state_dict(source, fmt)
    split_qkv_bias(sd)
    report = cc.load_pretrained(model, sd, fmt="ours", **kwargs)
    report.format = fmt
    return report


def inflate_2d(model_3d: nn.Module, source: str | os.PathLike | Mapping) -> cc.LoadReport:
    """2D V2 weights (any format) into a 3D V2: patch kernel spread over time (Video Swin's rule), the position bias
    MLP given a zero weight for the time offset, so the bias of (dt, dh, dw) is the 2D bias of (dh, dw) for
    every dt; no table to resize. The head stays new. Build the 3D model with ``pretrained_window_size`` set
    to the 2D window (e.g. (8, 8, 8)) to keep the 2D offsets' scale when the spatial window differs."""
    sd = inflate_state_dict(source, model_3d)
    split_qkv_bias(sd)
    for k, v in sd.items():
        if k.endswith("cpb_mlp.0.weight") and v.shape[1] == 2:
            sd[k] = torch.cat([v.new_zeros(v.shape[0], 1), v], dim=1)
    report = cc.load_pretrained(model_3d, sd, fmt="ours", reset_head=True)
    report.inflated = True
    return report
