"""Class-activation maps for every Swin family (2D and 3D), computed by grad-cam (pytorch-grad-cam).

The CAM methods are the library's; this module is the Swin plumbing around them:

- the target layer: the final norm (the last stage, what the head pools) or the output of a chosen stage;
- the reshape: our token maps are channels-last, (B, H', W', C) or (B, T', H', W', C); grad-cam wants
  (B, C, H, W). A clip's T' token frames are laid side by side along the width, (B, C, H', T'*W'), so every
  method sees the whole clip at once: one set of channel weights and one normalisation per clip, as a 3D CAM
  would have, while the methods written for 2D maps (Grad-CAM++, XGrad-CAM, ...) work unchanged;
- the way back to pixels and frames: grad-cam returns the map at token resolution (we keep it from resizing);
  a token of the stage covers ``stride`` pixels (patch size times the merges before it; for time, the temporal
  patch size), so the map is interpolated to tokens x stride and the padding cropped off.

Each map is scaled to [0, 1] per image or clip, as grad-cam does. Nothing here imports a command-line module.
"""
from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["METHODS", "IMAGE_ONLY", "CamResult", "class_activation_maps", "cam_method", "stage_strides",
           "target_layer", "paste_back", "overlay", "upscale", "caption"]

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


def _check_stage(model: nn.Module, stage: int | None) -> int:
    n = len(model.layers)
    stage = n if stage is None else stage
    if not 1 <= stage <= n:
        raise ValueError(f"stage {stage} is out of range: this model has stages 1 to {n}")
    return stage


def target_layer(model: nn.Module, stage: int | None = None) -> nn.Module:
    """The layer whose output is explained: the final norm for the last stage (default), else stage ``stage``."""
    stage = _check_stage(model, stage)
    return model.norm if stage == len(model.layers) else model.layers[stage - 1]


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
    """Maps (B, [T,] H, W) in [0, 1] at the input's resolution, the logits (B, classes) and each map's class."""
    maps: torch.Tensor
    logits: torch.Tensor
    targets: list[int]


def class_activation_maps(model: nn.Module, x: torch.Tensor, *, method: str = "gradcam",
                          targets: int | Sequence[int] | None = None, stage: int | None = None) -> CamResult:
    """Class-activation maps of a batch for any registered Swin family (2D images or 3D clips).

    ``targets``: the class each map explains, one for all or one per item (default: the predicted class);
    ``stage``: 1-based stage whose output is explained (default: the last, after the final norm).
    The model is run in eval mode in float32 with gradients on; its training flag and grads are restored.
    """
    ndim = x.ndim - 2
    cls = cam_method(method, ndim)
    stage = _check_stage(model, stage)
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
    cam = _at_token_resolution(cls, layout)(model=model, target_layers=[target_layer(model, stage)],
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
    out = _to_pixels(maps, layout.grid, stage_strides(model)[stage - 1][-len(layout.grid):], x.shape[2:])
    return CamResult(out.to(x.device), logits, items)


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
def overlay(image: np.ndarray, cam: np.ndarray, image_weight: float = 0.5) -> np.ndarray:
    """The map as a heatmap over an (H, W, 3) uint8 RGB image (grad-cam's show_cam_on_image), uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image
    return show_cam_on_image(image.astype(np.float32) / 255, np.clip(cam, 0, 1), use_rgb=True,
                             image_weight=image_weight)


def upscale(image: np.ndarray, min_size: int = 192) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor until the short side is at least ``min_size`` pixels."""
    k = max(1, -(-min_size // min(image.shape[:2])))
    return image.repeat(k, 0).repeat(k, 1) if k > 1 else image


def caption(image: np.ndarray, text: str) -> np.ndarray:
    """The picture with a line of text on a black band above it (PIL's default font), uint8 RGB."""
    from PIL import Image, ImageDraw
    band = 14
    out = Image.new("RGB", (image.shape[1], image.shape[0] + band))
    out.paste(Image.fromarray(image), (0, band))
    ImageDraw.Draw(out).text((2, 1), text, fill=(255, 255, 255))
    return np.asarray(out)
