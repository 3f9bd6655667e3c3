"""Official Swin-MLP checkpoints (microsoft/Swin-Transformer ``swin_mlp_*.pth``) into our models.

The official layout is that of official Swin (merging at the end of stage i, ``head.weight``) with
``layers.i.blocks.j.spatial_mlp.{weight,bias}`` in place of attention, so ``core.load_pretrained`` already
loads it: core's ``from_official`` moves the merging and the head and the spatial-MLP keys pass unchanged.

One case needs more: the official classifier builds a stage whose map is smaller than the window with a
smaller window (``min(H, W)``), so such a checkpoint holds a smaller ``spatial_mlp`` there. Our blocks keep the
window and zero-pad the map at its end, which is the same as using the top-left block of a bigger weight:
:func:`embed_window` places the small weight there (exact, for the square single-window maps this happens at);
:func:`embed_shrunk_windows` is the family's converter, registered with ``core.convert`` when the package is
imported, so ``core.load_pretrained`` reads such checkpoints.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from core.convert import register_converter

from .model import SwinMLP


def embed_window(weight: torch.Tensor, bias: torch.Tensor, old: Sequence[int], new: Sequence[int]
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial-MLP weight (nH*n, n, 1) and bias (nH*n,) of window ``old`` -> window ``new`` (each axis >= old).

    Token p of the old window becomes the token at the same offset from the new window's origin; rows and
    columns of the other (padding) tokens are zero.
    """
    n_old, n_new = math.prod(old), math.prod(new)
    if len(old) != len(new) or any(o > w for o, w in zip(old, new)):
        raise ValueError(f"cannot embed a spatial MLP of window {tuple(old)} into window {tuple(new)}")
    if weight.shape[1:] != (n_old, 1) or weight.shape[0] % n_old or bias.shape != (weight.shape[0],):
        raise ValueError(f"spatial_mlp weight {tuple(weight.shape)} / bias {tuple(bias.shape)} do not fit window "
                         f"{tuple(old)}: expected (nH*{n_old}, {n_old}, 1) and (nH*{n_old},)")
    heads = weight.shape[0] // n_old
    idx = torch.arange(n_new).view(tuple(new))[tuple(slice(0, o) for o in old)].flatten()
    w = weight.new_zeros(heads, n_new, n_new)
    w[:, idx[:, None], idx[None, :]] = weight.view(heads, n_old, n_old)
    b = bias.new_zeros(heads, n_new)
    b[:, idx] = bias.view(heads, n_old)
    return w.view(heads * n_new, n_new, 1), b.flatten()


def _square_window(n: int, ndim: int) -> tuple[int, ...] | None:
    side = round(n ** (1.0 / ndim))
    return (side,) * ndim if side ** ndim == n else None


def embed_shrunk_windows(model: nn.Module, sd: dict[str, torch.Tensor]) -> list[str]:
    """Spatial MLPs of a shrunk (smaller, square) window embedded into the model's window, in place; the keys."""
    target = model.state_dict()
    embedded = []
    for k, v in list(sd.items()):
        bias_key = k[:-len("weight")] + "bias"
        if not k.endswith("spatial_mlp.weight") or k not in target or v.shape == target[k].shape \
                or bias_key not in sd:
            continue
        new = model.get_submodule(k[:-len(".spatial_mlp.weight")]).window_size
        old = _square_window(v.shape[1], len(new))
        if old is not None and all(o <= w for o, w in zip(old, new)) and v.shape[0] // v.shape[1] == \
                target[k].shape[0] // target[k].shape[1]:
            sd[k], sd[bias_key] = embed_window(v, sd[bias_key], old, new)
            embedded.append(k)
    return embedded


register_converter(SwinMLP, prepare=embed_shrunk_windows)
