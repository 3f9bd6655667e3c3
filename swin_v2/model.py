"""Swin V2 models: core's Swin backbone with :class:`SwinV2Block` and patch merging normalised after the
reduction, and the registered variants.

2D: swin_v2_t/s/b at 256 with window 8 (torchvision's names; timm's swinv2_{tiny,small,base}_window8_256) and
_w16 (timm's swinv2_*_window16_256), with the official recipes' drop path rates; timm's names are aliases.
3D: video_swin_v2_t/s/b, Video Swin's settings (patch 2x4x4, window 8x7x7, spatial-only merging, I3D head).
A model pretrained with another window keeps its offsets' scale with ``pretrained_window_size`` (all stages,
int or per axis) or ``pretrained_window_sizes`` (one per stage, timm's argument, e.g. (12, 12, 12, 6)).
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import torch
import torch.nn as nn

from core.nn.layers import PatchMerging
from core.nn.model import SwinTransformer
from core.nn.registry import register_variants
from core.nn.window import to_tuple

from .block import SwinV2Block


class SwinTransformerV2(SwinTransformer):
    """Swin V2 of any shape: ``SwinTransformer`` arguments, plus the pretrained window(s) of the position bias and
    ``zero_init_post_norm`` (the official/timm init of the res-post-norms: zero, so each block starts as identity;
    default False, torchvision's init)."""

    def __init__(self, ndim: int = 2, pretrained_window_size: int | Sequence[int] = 0,
                 pretrained_window_sizes: Sequence[int | Sequence[int]] | None = None,
                 zero_init_post_norm: bool = False, **kwargs) -> None:
        super().__init__(ndim=ndim, block_fn=SwinV2Block, merge_layer=partial(PatchMerging, norm_after=True),
                         pretrained_window_size=pretrained_window_size, **kwargs)
        if pretrained_window_sizes is not None:
            if len(pretrained_window_sizes) != len(self.layers):
                raise ValueError(f"pretrained_window_sizes needs one entry per stage ({len(self.layers)}), "
                                 f"got {tuple(pretrained_window_sizes)}")
            for stage, size in zip(self.layers, pretrained_window_sizes):
                for block in stage.blocks:
                    block.attn.cpb_mlp.pretrained_window_size = to_tuple(size, ndim, "pretrained_window_sizes")
        if zero_init_post_norm:
            for stage in self.layers:
                for block in stage.blocks:
                    for norm in (block.norm1, block.norm2):
                        nn.init.zeros_(norm.weight)
                        nn.init.zeros_(norm.bias)

    @torch.jit.ignore
    def no_weight_decay(self) -> set[str]:
        """The position bias MLPs and the attention temperatures (as the official recipe)."""
        return {n for n, _ in self.named_parameters() if "cpb_mlp" in n or "logit_scale" in n}


def swin_v2(ndim: int = 2, **kwargs) -> SwinTransformerV2:
    """A Swin V2 of any shape (``SwinTransformerV2`` arguments)."""
    return SwinTransformerV2(ndim=ndim, **kwargs)


_T = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2)
_S = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3)
_B = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.5)
VARIANTS: dict[str, dict] = {}
for short, long, cfg in (("t", "tiny", _T), ("s", "small", _S), ("b", "base", _B)):
    VARIANTS[f"swin_v2_{short}"] = VARIANTS[f"swinv2_{long}_window8_256"] = dict(cfg, window_size=8, img_size=256)
    VARIANTS[f"swin_v2_{short}_w16"] = VARIANTS[f"swinv2_{long}_window16_256"] = dict(cfg, window_size=16, img_size=256)

VIDEO_DEFAULTS = dict(ndim=3, patch_size=(2, 4, 4), window_size=(8, 7, 7), merge_factors=(1, 2, 2),
                      head_drop_rate=0.5, num_classes=400)
VARIANTS_3D: dict[str, dict] = {
    "video_swin_v2_t": dict(VIDEO_DEFAULTS, **_T) | dict(drop_path_rate=0.1),
    "video_swin_v2_s": dict(VIDEO_DEFAULTS, **_S) | dict(drop_path_rate=0.2),
    "video_swin_v2_b": dict(VIDEO_DEFAULTS, **_B) | dict(drop_path_rate=0.3),
}

register_variants(VARIANTS, swin_v2, dict(ndim=2))
register_variants(VARIANTS_3D, swin_v2)
