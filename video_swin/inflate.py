"""Inflate 2D ImageNet Swin weights (ours, timm, official, torchvision) into a 3D Video Swin, as the paper does."""
from __future__ import annotations

import os
from typing import Mapping

import torch

from core.convert import LoadReport, infer_table_window, load_pretrained, read_state_dict
from core.model import SwinTransformer
from core.position import resize_bias_table


def inflate_state_dict(source: str | os.PathLike | Mapping, model_3d: SwinTransformer) -> dict[str, torch.Tensor]:
    """2D weights (file or state dict, any supported format) in 3D shapes: patch kernel repeated over time and
    divided by the temporal patch, bias table resized to the spatial window and repeated over time offsets."""
    sd, _ = read_state_dict(source)
    t_patch = model_3d.patch_size[0]
    window = model_3d.window_size
    out = {}
    for k, v in sd.items():
        if k == "patch_embed.proj.weight" and v.ndim == 4:
            v = v.unsqueeze(2).repeat(1, 1, t_patch, 1, 1) / t_patch
        elif k.endswith("relative_position_bias_table"):
            old = infer_table_window(v, window[1:])
            if old is None:
                raise ValueError(f"{k}: {tuple(v.shape)} is not the table of a square 2D window")
            v = resize_bias_table(v, old, window[1:]).repeat(2 * window[0] - 1, 1)
        elif k.startswith("head."):
            continue  # the video head is new (400 classes, and a new data set)
        out[k] = v
    return out


def inflate_2d(model_3d: SwinTransformer, source: str | os.PathLike | Mapping) -> LoadReport:
    """Load 2D ImageNet weights (file or state dict, any supported format) into a 3D model; the head is kept."""
    report = load_pretrained(model_3d, inflate_state_dict(source, model_3d), fmt="ours", reset_head=True)
    report.inflated = True
    return report
