"""Model registry: methods register their builders by name; create_model imports a method package on demand."""
from __future__ import annotations

import importlib
from typing import Callable

import torch.nn as nn

_MODELS: dict[str, Callable[..., nn.Module]] = {}
# name prefix -> package that registers it on import (core never imports method packages at import time)
_LAZY_PACKAGES = {"video_swin_mlp": "swin_mlp", "video_swin": "video_swin", "swin_mlp": "swin_mlp"}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator: register a model builder under ``name``."""
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _MODELS[name] = fn
        return fn
    return wrap


def register_variants(variants: dict[str, dict], builder: Callable[..., nn.Module], defaults: dict | None = None) -> None:
    """Register each named variant as ``builder(**defaults, **variant, **overrides)``."""
    def make(name: str, cfg: dict) -> None:
        @register_model(name)
        def build(**kwargs) -> nn.Module:
            return builder(**{**(defaults or {}), **cfg, **kwargs})
        build.__doc__ = f"{name}: {cfg}"
    for name, cfg in variants.items():
        make(name, cfg)


def list_models() -> list[str]:
    """Names registered so far (plus those of every method package, once imported)."""
    for package in set(_LAZY_PACKAGES.values()):
        try:
            importlib.import_module(package)
        except ImportError:
            pass
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model; keyword arguments override the variant's fields."""
    if name not in _MODELS:
        for prefix, package in _LAZY_PACKAGES.items():
            if name.startswith(prefix):
                importlib.import_module(package)
                break
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)
