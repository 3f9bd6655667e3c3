"""The shared core of the Swin family: N-d windows, masks, attention, blocks, the backbone and its training engine."""
from .convert import convert_state_dict, detect_format, load_pretrained
from .nn.model import VARIANTS_2D, SwinTransformer
from .nn.registry import create_model, list_models, register_model

__all__ = ["create_model", "list_models", "register_model", "SwinTransformer", "VARIANTS_2D",
           "load_pretrained", "convert_state_dict", "detect_format"]
