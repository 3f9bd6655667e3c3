"""Swin V2 checkpoints (timm ``swinv2_*``, torchvision ``swin_v2_t/s/b``, official microsoft/Swin-Transformer V2)
into our models, and 2D -> 3D inflation.

timm's layout and key names are ours (``attn.q_bias``, ``attn.v_bias``, ``attn.logit_scale``, ``attn.cpb_mlp.*``)
and the official one differs from it as for Swin V1, so ``core.load_pretrained`` already places both (it moves
the official merging and head and drops the ``relative_coords_table`` / ``relative_position_index`` /
``attn_mask`` buffers). torchvision stores one ``attn.qkv.bias`` whose key third it zeroes at every forward:
the family's converter splits it into the q and v biases. Inflated 2D weights give the position-bias MLP a zero
weight for the time offset. Registered with ``core.convert`` when the package is imported.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from core.convert import register_converter

from .model import SwinTransformerV2


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


def zero_time_offset(model: nn.Module, sd: dict[str, torch.Tensor]) -> list[str]:
    """Inflated 2D weights: the bias MLP's first layer gains a zero column for the time offset, so the bias of
    (dt, dh, dw) is the 2D bias of (dh, dw) for every dt; no table to resize. Build the 3D model with
    ``pretrained_window_size`` set to the 2D window to keep the 2D offsets' scale when the window differs."""
    for k, v in sd.items():
        if k.endswith("cpb_mlp.0.weight") and v.shape[1] == 2:
            sd[k] = torch.cat([v.new_zeros(v.shape[0], 1), v], dim=1)
    return []


def _prepare(model: nn.Module, sd: dict[str, torch.Tensor]) -> list[str]:
    split_qkv_bias(sd)
    return []  # keys renamed, no table resized


register_converter(SwinTransformerV2, prepare=_prepare, inflate=zero_time_offset)
