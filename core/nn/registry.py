"""Model registry: methods register their builders by name; create_model loads method packages on demand.

A package outside core declares the module that registers its models as an entry point of the group
``swin_suite.models`` (pyproject.toml), the standard plugin mechanism; core never names a method. The entry
point's name is a model-name prefix: ``create_model("video_swin_t")`` imports only the plugin with the
longest prefix of the name (all of them if none matches, or for :func:`list_models`).
"""
from __future__ import annotations

import importlib.metadata
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
_DEFAULTS: dict[str, dict] = {}
ENTRY_POINT_GROUP = "swin_suite.models"
_plugins_loaded = False


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a model builder under ``name``."""
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = fn
        return fn
    return wrap


def register_variants(variants: dict[str, dict], builder: Callable[..., nn.Module], defaults: dict | None = None) -> None:
    """Register each named variant as ``builder(**defaults, **variant, **overrides)``."""
    def make(name: str, cfg: dict) -> None:
        _DEFAULTS[name] = {**(defaults or {}), **cfg}

        @register_model(name)
        def build(**kwargs) -> nn.Module:
            return builder(**{**(defaults or {}), **cfg, **kwargs})
        build.__doc__ = f"{name}: {cfg}"
    for name, cfg in variants.items():
        make(name, cfg)


def load_plugins(name: str | None = None) -> None:
    """Import the ``swin_suite.models`` plugin for model ``name`` (the longest matching prefix), or all of them."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    eps = list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    if name is not None:
        hits = sorted((ep for ep in eps if name.startswith(ep.name)), key=lambda ep: len(ep.name), reverse=True)
        if hits:
            hits[0].load()
            if name in _MODELS:
                return
    for ep in eps:
        ep.load()
    _plugins_loaded = True


def list_models() -> list[str]:
    """Every registered name, those of the installed method packages included."""
    load_plugins()
    return sorted(_MODELS)


def model_defaults(name: str) -> dict:
    """The arguments a registered variant fixes (``{}`` for a builder registered without variants)."""
    load_plugins()
    return dict(_DEFAULTS.get(name, {}))


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override the variant's fields."""
    if name not in _MODELS:
        load_plugins(name)
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    try:
        return _MODELS[name](**kwargs)
    except TypeError as e:
        if "unexpected keyword argument" not in str(e):
            raise
        bad = str(e).rsplit("argument", 1)[-1].strip(" '")
        raise TypeError(f"create_model({name!r}): unknown argument {bad!r}; the Swin models take "
                        f"{', '.join(_ARGUMENTS)} (and a variant's own block arguments)") from None


_ARGUMENTS = ("embed_dim", "depths", "num_heads", "window_size", "patch_size", "merge_factors", "mlp_ratio",
              "qkv_bias", "drop_rate", "attn_drop_rate", "drop_path_rate", "head_drop_rate", "head_time_bins",
              "patch_norm", "in_chans", "num_classes", "compat", "attn_impl", "grad_checkpointing", "img_size")
