"""Pretrained weights by name (``<arch>.<tag>``): the registry of released files, their download into torch.hub's
cache, class names of their label sets, ``create_model(..., pretrained=...)`` and the zoo table."""
from .files import cache_dir, cache_path, download, fetch, mirrored, read_checkpoint
from .labels import LABEL_SETS, class_names, imagenet_22k_synsets, imagenet_22k_to_1k
from .models import create_model, load_weights
from .registry import (
                       HubError,
                       Pretrained,
                       UnknownPretrained,
                       archs,
                       get_pretrained,
                       list_pretrained,
                       pretrained_cfg,
                       register_pretrained,
)
from .zoo import zoo_table

__all__ = ["create_model", "load_weights", "list_pretrained", "pretrained_cfg", "get_pretrained", "archs",
           "register_pretrained", "Pretrained", "HubError", "UnknownPretrained", "download", "fetch", "mirrored",
           "cache_dir", "cache_path", "read_checkpoint", "class_names", "LABEL_SETS", "imagenet_22k_synsets",
           "imagenet_22k_to_1k", "zoo_table"]
