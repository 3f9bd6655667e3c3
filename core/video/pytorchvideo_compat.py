"""pytorchvideo 0.1.5 on torchvision >= 0.17: the one alias its transforms need, and nothing else.

``pytorchvideo.transforms.augmentations`` does ``import torchvision.transforms.functional_tensor``, a module
torchvision renamed ``_functional_tensor`` in 0.17 (the only function pytorchvideo uses from it is ``affine``).
Without help ``import pytorchvideo.transforms`` fails with ``ModuleNotFoundError: No module named
'torchvision.transforms.functional_tensor'``. :func:`install` registers the new module under the old name in
``sys.modules``, only when the old name does not import. ``pytorchvideo.models`` and ``pytorchvideo.data`` import
without it; import ``pytorchvideo.transforms`` through :func:`import_pytorchvideo_transforms`.
"""
from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType

__all__ = ["OLD_NAME", "NEW_NAME", "install", "import_pytorchvideo_transforms"]

OLD_NAME = "torchvision.transforms.functional_tensor"
NEW_NAME = "torchvision.transforms._functional_tensor"


def install() -> bool:
    """Make ``import torchvision.transforms.functional_tensor`` work; True if this call added the alias.

    A no-op (False) where the old module imports (torchvision < 0.17) or is already in ``sys.modules``.
    """
    if OLD_NAME in sys.modules:
        return False
    try:
        importlib.import_module(OLD_NAME)
        return False
    except ModuleNotFoundError as e:
        if e.name != OLD_NAME:
            raise
    module = importlib.import_module(NEW_NAME)
    sys.modules[OLD_NAME] = module
    importlib.import_module("torchvision.transforms").functional_tensor = module
    return True


def import_pytorchvideo_transforms() -> ModuleType:
    """``pytorchvideo.transforms``, importable on the pinned torchvision (its import-time use of the deprecated
    ``torch.jit.script_method`` warns once per process otherwise: silenced here)."""
    install()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.script", category=FutureWarning)
        return importlib.import_module("pytorchvideo.transforms")
