"""Swin-MLP (2D and 3D): the Swin backbone with window attention replaced by a per-head spatial MLP.

Importing the package registers swin_mlp_t_c24 / _c12 / _c6, swin_mlp_b (= swin_mlp_b_c32) and
video_swin_mlp_t with core.create_model (an entry point in pyproject.toml imports it on demand).
"""
from .block import SwinMLPBlock, shift_padding, spatial_mlp_macs
from .convert import embed_shrunk_windows, embed_window
from .model import VARIANTS, SwinMLP, swin_mlp

__all__ = ["SwinMLPBlock", "shift_padding", "spatial_mlp_macs", "SwinMLP", "swin_mlp", "VARIANTS",
           "embed_shrunk_windows", "embed_window"]
