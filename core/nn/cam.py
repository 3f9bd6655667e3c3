"""Class-activation maps for every Swin family (2D and 3D), computed by grad-cam (pytorch-grad-cam); the pictures a
person reads are :mod:`core.cam_pictures`.

The CAM methods are the library's; this module is the Swin plumbing around them:

- the target layer: a stage's output (the final norm for the last stage, what the head pools) or the input of its
  last block; by default the last stage but one (:func:`default_stage`): the last stage's tokens are mixed over the
  whole input (Swin-T's at 224 px is one 7x7 window) and localise worst;
- the reshape: our token maps are channels-last, (B, H', W', C) or (B, T', H', W', C); grad-cam wants
  (B, C, H, W). A clip's T' token frames are laid side by side along the width, (B, C, H', T'*W'), so every
  method sees the whole clip at once: one set of channel weights and one normalisation per clip, as a 3D CAM
  would have, while the methods written for 2D maps (Grad-CAM++, XGrad-CAM, ...) work unchanged;
- the way back to pixels and frames: grad-cam returns the map at token resolution (we keep it from resizing);
  a token of the stage covers ``stride`` pixels (patch size times the merges before it; for time, the temporal
  patch size), so the map is interpolated to tokens x stride, the padding cropped off, and blurred by a Gaussian
  of ``smooth`` tokens (default half a token: no token lattice, a few percent of the localisation given up).

The defaults (Grad-CAM for images, HiResCAM for clips, the last stage but one, half a token of smoothing) are the best
localising choices of ``python -m bench.explain`` on its localisation sets (results/explain/README.md). Each map is
scaled to [0, 1] per image or clip, as grad-cam does. Nothing here imports a command-line module.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["METHODS", "IMAGE_ONLY", "LAYERS", "DEFAULT_METHODS", "DEFAULT_METHOD", "DEFAULT_LAYER", "DEFAULT_SMOOTH",
           "CamResult", "class_activation_maps", "cam_method", "default_method", "default_stage", "stage_strides",
           "target_layer", "smooth_maps", "paste_back"]

# our name -> grad-cam class; the methods that take a target layer and a reshape (AblationCAM needs an ablation
# layer written for a model's layout, FullGrad every bias of a CNN, FinerCAM wraps another method, ShapleyCAM
# keeps the graph and reshapes inside itself)
METHODS: dict[str, str] = {
    "gradcam": "GradCAM", "gradcam++": "GradCAMPlusPlus", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
    "gradcamelementwise": "GradCAMElementWise", "layercam": "LayerCAM", "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM", "kpcacam": "KPCA_CAM", "scorecam": "ScoreCAM", "fem": "FEM",
    "randomcam": "RandomCAM",
}
# these multiply the input by each channel's map upsampled to the input: images only
IMAGE_ONLY = frozenset({"scorecam"})
# the target layers of a stage: its output (after the final norm for the last stage), or its last block's input
LAYERS = ("output", "block")
# the defaults: the best localising choice on bench.explain's localisation sets (results/explain/README.md)
DEFAULT_METHODS = {2: "gradcam", 3: "hirescam"}      # by the input's dimensions: images, clips
DEFAULT_METHOD = DEFAULT_METHODS[2]
DEFAULT_LAYER = "output"
DEFAULT_SMOOTH = 0.5


def _grad_cam_version() -> str:
    try:
        return importlib.metadata.version("grad-cam")
    except importlib.metadata.PackageNotFoundError:
        return "?"


def cam_method(name: str, ndim: int = 2) -> type:
    """The grad-cam class of a method name; ValueError listing the names when unknown or unusable for clips."""
    key = name.lower()
    if key not in METHODS:
        raise ValueError(f"unknown CAM method {name!r}; grad-cam {_grad_cam_version()} methods: "
                         f"{', '.join(METHODS)}")
    if ndim == 3 and key in IMAGE_ONLY:
        usable = [m for m in METHODS if m not in IMAGE_ONLY]
        raise ValueError(f"CAM method {name!r} perturbs the input image by image and works on images only; "
                         f"for clips: {', '.join(usable)}")
    import pytorch_grad_cam
    return getattr(pytorch_grad_cam, METHODS[key])


def stage_strides(model: nn.Module) -> list[tuple[int, ...]]:
    """Input pixels (frames, rows, columns) per token of each stage's output: the patch size times the merges."""
    stride = list(model.patch_size)
    out = [tuple(stride)]
    for _ in range(1, len(model.layers)):
        stride = [s * f for s, f in zip(stride, model.merge_factors)]
        out.append(tuple(stride))
    return out


def default_method(ndim: int) -> str:
    """The method used by default for 2D images (Grad-CAM) or 3D clips (HiResCAM): on bench.explain's localisation
    sets, the best localising of grad-cam's methods for each (results/explain/README.md)."""
    return DEFAULT_METHODS.get(ndim, DEFAULT_METHOD)


def default_stage(model: nn.Module) -> int:
    """The stage explained by default: the last but one (the last for a one-stage model). The last stage's tokens
    have been mixed over the whole input (in Swin-T at 224 px it is a single 7x7 window) and localise worst."""
    return max(1, len(model.layers) - 1)


def _check_stage(model: nn.Module, stage: int | None) -> int:
    n = len(model.layers)
    stage = default_stage(model) if stage is None else stage
    if not 1 <= stage <= n:
        raise ValueError(f"stage {stage} is out of range: this model has stages 1 to {n}")
    return stage


def target_layer(model: nn.Module, stage: int | None = None, layer: str = DEFAULT_LAYER) -> nn.Module:
    """The layer whose output is explained: ``output``, the stage's output (the final norm for the last stage), or
    ``block``, the first norm of the stage's last block (pytorch-grad-cam's Swin tutorial layer: the input its token
    mixing sees; in Swin V2's post-norm blocks, the normalised token mixing); stage: 1-based, default
    :func:`default_stage`."""
    stage = _check_stage(model, stage)
    if layer == "output":
        return model.norm if stage == len(model.layers) else model.layers[stage - 1]
    if layer == "block":
        block = model.layers[stage - 1].blocks[-1]
        return getattr(block, "norm1", block)
    raise ValueError(f"unknown CAM layer {layer!r}; layers: {', '.join(LAYERS)}")


class _TokenLayout:
    """The reshape handed to grad-cam; remembers the token grid (T', H', W') it last saw."""

    def __init__(self) -> None:
        self.grid: tuple[int, ...] = ()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.grid = tuple(x.shape[1:-1])
        if x.ndim == 4:                                       # (B, H, W, C) -> (B, C, H, W)
            return x.permute(0, 3, 1, 2)
        b, t, h, w, c = x.shape                               # (B, T, H, W, C) -> (B, C, H, T*W): frames side by side
        return x.permute(0, 4, 2, 1, 3).reshape(b, c, h, t * w)


def _at_token_resolution(cls: type, layout: _TokenLayout) -> type:
    """The method's class returning maps at the token grid (we map tokens to pixels ourselves)."""
    def get_target_width_height(self, input_tensor: torch.Tensor) -> tuple[int, int]:
        h, w = layout.grid[-2], int(np.prod(layout.grid[:-2], dtype=np.int64)) * layout.grid[-1]
        return w, h
    return type(cls.__name__, (cls,), {"get_target_width_height": get_target_width_height})


def _to_pixels(maps: torch.Tensor, grid: tuple[int, ...], stride: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """(B, H', T'*W') token maps -> (B, [T,] H, W): each token spread over its stride, padding cropped off."""
    b = maps.shape[0]
    if len(grid) == 3:
        t, h, w = grid
        maps = maps.reshape(b, h, t, w).permute(0, 2, 1, 3)
    full = [n * s for n, s in zip(grid, stride)]
    mode = "trilinear" if len(grid) == 3 else "bilinear"
    up = F.interpolate(maps[:, None].float(), size=full, mode=mode, align_corners=False)[:, 0]
    short = [max(0, want - have) for want, have in zip(size, full)]    # a layout that drops the remainder
    if any(short):
        pad = [p for s in reversed(short) for p in (0, s)]
        up = F.pad(up[:, None], pad, mode="replicate")[:, 0]
    index = (slice(None),) + tuple(slice(0, n) for n in size)
    return up[index].clamp_(0, 1).contiguous()


@dataclass
class CamResult:
    """Maps (B, [T,] H, W) in [0, 1] at the input's resolution, the logits (B, classes) and each map's class, and
    how they were made (method, stage, layer, smoothing in tokens)."""
    maps: torch.Tensor
    logits: torch.Tensor
    targets: list[int]
    method: str = ""
    stage: int = 0
    layer: str = DEFAULT_LAYER
    smooth: float = DEFAULT_SMOOTH

    def describe(self) -> str:
        """``gradcam, stage 1, smoothed 0.5 token``: what a caption says about the maps."""
        smooth = f", smoothed {self.smooth:g} token" if self.smooth else ""
        layer = "" if self.layer == DEFAULT_LAYER else f" ({self.layer})"
        return f"{self.method}, stage {self.stage}{layer}{smooth}"


def class_activation_maps(model: nn.Module, x: torch.Tensor, *, method: str | None = None,
                          targets: int | Sequence[int] | None = None, stage: int | None = None,
                          layer: str = DEFAULT_LAYER, smooth: float = DEFAULT_SMOOTH) -> CamResult:
    """Class-activation maps of a batch for any registered Swin family (2D images or 3D clips).

    ``method``: grad-cam's method (default: :func:`default_method`, Grad-CAM for images, HiResCAM for clips);
    ``targets``: the class each map explains, one for all or one per item (default: the predicted class);
    ``stage``: 1-based stage explained (default: :func:`default_stage`, the last stage but one);
    ``layer``: ``output`` (the stage's output; after the final norm for the last stage) or ``block`` (the input of
    the stage's last block, after its first norm); ``smooth``: the Gaussian that takes the map from the token grid
    to pixels, its sigma in tokens of the stage (0: none, the map interpolated between token centres only).
    The defaults are the best localising choice of ``bench.explain`` (results/explain/README.md).
    The model is run in eval mode in float32 with gradients on; its training flag and grads are restored.
    """
    ndim = x.ndim - 2
    method = method or default_method(ndim)
    cls = cam_method(method, ndim)
    stage = _check_stage(model, stage)
    if smooth < 0:
        raise ValueError(f"smooth = {smooth}: expected a sigma >= 0 in tokens (0 = no smoothing)")
    num_classes = model.num_classes
    if targets is not None:
        items = [int(targets)] * x.shape[0] if isinstance(targets, (int, np.integer)) else [int(t) for t in targets]
        if len(items) != x.shape[0]:
            raise ValueError(f"{len(items)} targets for a batch of {x.shape[0]}")
        bad = [t for t in items if not 0 <= t < num_classes]
        if bad:
            raise ValueError(f"target class {bad[0]} is out of range: this model has classes 0 to {num_classes - 1}")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layout = _TokenLayout()
    was_training = model.training
    cam = _at_token_resolution(cls, layout)(model=model, target_layers=[target_layer(model, stage, layer)],
                                            reshape_transform=layout)
    try:
        with torch.enable_grad():
            chosen = None if targets is None else [ClassifierOutputTarget(t) for t in items]
            maps = cam(input_tensor=x.float(), targets=chosen)
        logits = cam.outputs.detach().float()
    finally:
        cam.activations_and_grads.release()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    items = logits.argmax(-1).tolist() if targets is None else items
    maps = torch.from_numpy(np.nan_to_num(np.asarray(maps, dtype=np.float32), nan=0.0))
    stride = stage_strides(model)[stage - 1][-len(layout.grid):]
    out = smooth_maps(_to_pixels(maps, layout.grid, stride, x.shape[2:]), [smooth * s for s in stride[-2:]])
    return CamResult(out.to(x.device), logits, items, method.lower(), stage, layer, float(smooth))


def smooth_maps(maps: torch.Tensor, sigma: Sequence[float]) -> torch.Tensor:
    """Maps (B, [T,] H, W) blurred in each frame by a Gaussian of ``sigma`` (rows, columns) pixels (replicated
    borders), then each image's or clip's map scaled back to a peak of 1; unchanged where sigma is 0."""
    if not any(s > 0 for s in sigma):
        return maps
    flat = maps.reshape(-1, 1, *maps.shape[-2:]).float()
    for axis, s in zip((2, 3), sigma):
        if s <= 0:
            continue
        half = max(1, int(3 * s + 0.5))
        half = min(half, flat.shape[axis] - 1) if flat.shape[axis] > 1 else 0
        if half == 0:
            continue
        t = torch.arange(-half, half + 1, dtype=torch.float32)
        kernel = torch.exp(-t * t / (2 * s * s))
        kernel = (kernel / kernel.sum()).view(1, 1, -1, 1) if axis == 2 else (kernel / kernel.sum()).view(1, 1, 1, -1)
        pad = (0, 0, half, half) if axis == 2 else (half, half, 0, 0)
        flat = F.conv2d(F.pad(flat, pad, mode="replicate"), kernel)
    out = flat.reshape(maps.shape)
    peak = out.flatten(1).amax(1).clamp_min(1e-12).view(-1, *[1] * (maps.ndim - 1))
    return (out / peak).clamp_(0, 1)


def paste_back(maps: torch.Tensor, resized: Sequence[int], top: int, left: int,
               size: Sequence[int]) -> torch.Tensor:
    """Maps (..., h, w) of a crop at (top, left) of a resized picture (H', W') -> (..., H, W) of the original
    picture: zero outside the crop, bilinear back to ``size``."""
    h, w = maps.shape[-2:]
    canvas = maps.new_zeros(*maps.shape[:-2], *resized)
    canvas[..., top:top + h, left:left + w] = maps[..., :resized[0] - top, :resized[1] - left]
    if tuple(resized) == tuple(size):
        return canvas
    flat = canvas.reshape(-1, 1, *resized)
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False).clamp_(0, 1)
    return out.reshape(*maps.shape[:-2], *size)


# ------------------------------------------------------------------------------------------------ pictures
# What a person reads: the input beside its map and the overlay, at a size where pixels are visible. The map uses a
