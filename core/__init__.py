"""The shared core of the Swin family: N-d windows, masks, attention, blocks, the backbone and its training engine."""
from .convert import convert_state_dict, detect_format, load_pretrained
from .hub import class_names, create_model, list_pretrained, pretrained_cfg  # create_model: pretrained=... too
from .nn.cache import cache_info, set_cache_limit
from .nn.model import VARIANTS_2D, SwinTransformer
from .nn.registry import list_models, register_model

__all__ = ["create_model", "list_models", "register_model", "SwinTransformer", "VARIANTS_2D",
           "list_pretrained", "pretrained_cfg", "class_names",
           "load_pretrained", "convert_state_dict", "detect_format",
           "set_cache_limit", "cache_info"]
