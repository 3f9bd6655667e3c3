"""Swin-MLP models: core's Swin backbone built with :class:`SwinMLPBlock`, and the registered variants.

2D variants are the official ImageNet-1K ones (configs/swinmlp in microsoft/Swin-Transformer); "cN" is the
number of channels per head. The official base model has 4 heads at 128 channels, i.e. C32, registered as
``swin_mlp_b`` (alias ``swin_mlp_b_c32``). ``video_swin_mlp_t`` is the 3D counterpart of Video Swin-T (same
patch, window, merging and head; C24 heads): 47.5M params with the 400-class head, 28.3M of them in the
392-token spatial MLPs (``window_size=(4, 7, 7)`` gives 26.3M). There is no official 3D Swin-MLP.
"""
from __future__ import annotations

from core.nn.model import SwinTransformer
from core.nn.registry import register_variants

from .block import SwinMLPBlock

_TINY = dict(embed_dim=96, depths=(2, 2, 6, 2), window_size=8, drop_path_rate=0.2, img_size=256)
VARIANTS: dict[str, dict] = {
    "swin_mlp_t_c24": dict(_TINY, num_heads=(4, 8, 16, 32)),
    "swin_mlp_t_c12": dict(_TINY, num_heads=(8, 16, 32, 64)),
    "swin_mlp_t_c6": dict(_TINY, num_heads=(16, 32, 64, 128)),
    "swin_mlp_b": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), window_size=7,
                       drop_path_rate=0.5),
    # Video Swin-T's settings (patch 2x4x4, window 8x7x7, spatial-only merging, I3D head dropout 0.5, K400)
    "video_swin_mlp_t": dict(ndim=3, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32),
                             patch_size=(2, 4, 4), window_size=(8, 7, 7), merge_factors=(1, 2, 2),
                             head_drop_rate=0.5, num_classes=400, drop_path_rate=0.1),
}
VARIANTS["swin_mlp_b_c32"] = VARIANTS["swin_mlp_b"]


class SwinMLP(SwinTransformer):
    """The Swin backbone with the spatial-MLP block (its own class so its converter can be registered)."""

    def __init__(self, ndim: int = 2, **kwargs) -> None:
        super().__init__(ndim=ndim, block_fn=SwinMLPBlock, **kwargs)


def swin_mlp(ndim: int = 2, **kwargs) -> SwinMLP:
    """A Swin-MLP of any shape: ``SwinTransformer`` arguments, with the spatial-MLP block."""
    return SwinMLP(ndim=ndim, **kwargs)


register_variants(VARIANTS, swin_mlp, dict(ndim=2))
