"""Primitives and the backbone: N-d windows, masks, relative positions, attention, blocks, stages, the model,
the registry."""
from .model import VARIANTS_2D, SwinTransformer
from .registry import create_model, list_models, register_model

__all__ = ["SwinTransformer", "VARIANTS_2D", "create_model", "list_models", "register_model"]
