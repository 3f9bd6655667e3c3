"""Video Swin Transformer for Kinetics-400: registers video_swin_t/s/b/l in core.create_model."""
from .model import VARIANTS_3D

__all__ = ["VARIANTS_3D"]
