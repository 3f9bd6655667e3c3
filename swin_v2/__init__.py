"""Swin Transformer V2 (2D and 3D) on the core blocks: res-post-norm, scaled cosine attention, log-spaced
continuous position bias, patch merging normalised after the reduction.

Importing the package registers swin_v2_t/s/b (window 8), swin_v2_t/s/b_w16, timm's swinv2_*_window{8,16}_256
names and video_swin_v2_t/s/b with core.create_model (entry points in pyproject.toml import it on demand).
"""
from .attention import ContinuousPositionBias, CosineWindowAttention, log_spaced_coords
from .block import SwinV2Block
from .convert import split_qkv_bias, zero_time_offset
from .model import VARIANTS, VARIANTS_3D, SwinTransformerV2, swin_v2

__all__ = ["ContinuousPositionBias", "CosineWindowAttention", "log_spaced_coords", "SwinV2Block", "VARIANTS",
           "VARIANTS_3D", "SwinTransformerV2", "swin_v2", "split_qkv_bias", "zero_time_offset"]
