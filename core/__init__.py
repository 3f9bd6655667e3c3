"""The shared core of the Swin family: N-d windows, masks, attention, blocks, the backbone and its training engine."""
from .nn.registry import create_model, list_models, register_model
from .nn.model import SwinTransformer, VARIANTS_2D
from .convert import load_pretrained, convert_state_dict, detect_format

__all__ = ["create_model", "list_models", "register_model", "SwinTransformer", "VARIANTS_2D",
           "load_pretrained", "convert_state_dict", "detect_format"]
