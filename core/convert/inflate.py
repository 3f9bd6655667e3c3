"""2D weights in 3D shapes, as Video Swin inflates ImageNet Swin: ``load_pretrained(video_model, path, inflate=True)``."""
from __future__ import annotations

from typing import Mapping, Sequence

import torch

from ..nn.position import infer_table_window, resize_bias_table

StateDict = dict[str, torch.Tensor]


def inflate_state_dict(sd: Mapping[str, torch.Tensor], patch_size: Sequence[int], window_size: Sequence[int]
                       ) -> StateDict:
    """Our-layout 2D weights for a 3D model: patch kernel repeated over time and divided by the temporal patch, bias
    tables resized to the spatial window and repeated over the time offsets; the head is dropped (new classes)."""
    t_patch, window = patch_size[0], tuple(window_size)
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
            continue
        out[k] = v
    return out
