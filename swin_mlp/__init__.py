"""Swin-MLP (2D and 3D): the Swin backbone with window attention replaced by a per-head spatial MLP.

Importing the package registers swin_mlp_t_c24 / _c12 / _c6, swin_mlp_b (= swin_mlp_b_c32) and
video_swin_mlp_t with core.create_model (which imports it on demand for those names).
"""
from .block import SwinMLPBlock, shift_padding, spatial_mlp_macs
from .model import INPUT_SIZE, VARIANTS, swin_mlp
from .convert import embed_window, load_pretrained

__all__ = ["SwinMLPBlock", "shift_padding", "spatial_mlp_macs", "swin_mlp", "VARIANTS", "INPUT_SIZE",
           "embed_window", "load_pretrained"]
