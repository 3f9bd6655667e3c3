"""Video Swin Transformer for Kinetics-400: registers video_swin_t/s/b/l in core.create_model."""
from pathlib import Path

from .model import VARIANTS_3D

DEFAULT_CONFIG = str(Path(__file__).resolve().parent.parent / "configs" / "video_swin" / "tiny_moving_shapes.yaml")

__all__ = ["VARIANTS_3D", "DEFAULT_CONFIG"]
