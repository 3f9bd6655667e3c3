"""Video Swin Transformer: the core's N-d Swin with 3D settings (patch 2x4x4, window 8x7x7, spatial-only merging)."""
from __future__ import annotations

from core.nn.model import SwinTransformer
from core.nn.registry import register_variants

VIDEO_DEFAULTS = dict(ndim=3, patch_size=(2, 4, 4), window_size=(8, 7, 7), merge_factors=(1, 2, 2),
                      head_drop_rate=0.5, num_classes=400)
VARIANTS_3D: dict[str, dict] = {
    "video_swin_t": dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.1),
    "video_swin_s": dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2),
    "video_swin_b": dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32), drop_path_rate=0.3),
    "video_swin_l": dict(embed_dim=192, depths=(2, 2, 18, 2), num_heads=(6, 12, 24, 48), drop_path_rate=0.3),
}


register_variants(VARIANTS_3D, SwinTransformer, VIDEO_DEFAULTS)
