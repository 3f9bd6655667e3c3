"""SimMIM: masked image (and video) modelling on Swin, Swin-MLP and Video Swin, then fine-tuning."""
from .mask import MaskGenerator
from .task import SimMIM, simmim_loss

__all__ = ["MaskGenerator", "SimMIM", "simmim_loss"]
