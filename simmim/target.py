"""What the decoder regresses at the masked positions (``mim.target``), and the trivial predictor it is scored
against.

- ``pixels``: the normalised input (SimMIM); trivial predictor: each image's (clip's) mean colour.
- ``norm_pixels``: the input normalised per mask unit (MAE's ``norm_pix_loss``): over the channels and pixels of
  one mask patch (images: mask_patch x mask_patch; clips: temporal patch x mask_patch x mask_patch),
  ``(x - mean) / sqrt(var + 1e-6)``; appearance (a unit's colour and contrast) is taken out; trivial predictor: 0.
- ``frame_diff`` (clips only): at frame t the temporal difference ``x[t + 1] - x[t]``; the last frame has no
  successor and is left out of the loss; trivial predictor: 0 (no motion).
- ``flow`` (clips only): at frame t the dense optical flow (dx, dy) in pixels to frame t + 1, from OpenCV's
  Farneback or DIS estimator (``mim.flow_estimator``, ``core.video.flow``): the direction of motion at every
  pixel, as masked motion encoding; two channels; the last frame is left out; trivial predictor: 0 (no motion).
- ``pixels_flow`` (clips only): both, as five channels (the pixels, then the flow), each term with its own
  validity (the flow's last frame is left out); trivial predictor: the mean colour and no motion.

    y, valid = make_target(x, "norm_pixels", unit=(2, 8, 8))   # valid: None or a (1, 1, T, 1, 1) 0/1 weight
"""
from __future__ import annotations

from typing import Sequence

import torch

__all__ = ["TARGETS", "MOTION_TARGETS", "DESCRIPTIONS", "check_target", "target_channels", "patch_normalise",
           "frame_diff", "make_target", "trivial_prediction", "prediction_as_pixels"]

TARGETS = ("pixels", "norm_pixels", "frame_diff", "flow", "pixels_flow")
MOTION_TARGETS = ("frame_diff", "flow", "pixels_flow")  # clips of 2 frames or more only
# how reports name each target's error and its trivial predictor
DESCRIPTIONS = {"pixels": ("masked-pixel", "mean colour"), "norm_pixels": ("masked norm-pixel", "zero"),
                "frame_diff": ("masked frame-difference", "zero"), "flow": ("masked flow", "zero"),
                "pixels_flow": ("masked pixel and flow", "mean colour and zero")}


def check_target(target: str, input_size: Sequence[int]) -> None:
    """A start-up error for a target that does not fit the input (``input_size`` = (H, W) or (T, H, W))."""
    if target not in TARGETS:
        raise ValueError(f"mim.target = {target!r}, expected one of {', '.join(TARGETS)}")
    if target in MOTION_TARGETS:
        if len(input_size) != 3:
            raise ValueError(f"mim.target = {target} needs clips (a video_* model and a clip data set); this "
                             f"model takes images: use pixels or norm_pixels")
        if input_size[0] < 2:
            raise ValueError(f"mim.target = {target} needs at least 2 frames, data.clip_len = {input_size[0]}")


def target_channels(target: str, in_chans: int) -> int:
    """Channels the decoder predicts: 2 for ``flow`` (dx, dy), the input's + 2 for ``pixels_flow``, else the
    input's."""
    return {"flow": 2, "pixels_flow": in_chans + 2}.get(target, in_chans)


def _unit_stats(x: torch.Tensor, unit: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """(mean, var, block shape) of ``x`` (B, C, *dims) over the channels and pixels of each block of ``unit``."""
    b, c, *dims = x.shape
    if len(unit) != len(dims) or any(d % u for d, u in zip(dims, unit)):
        raise ValueError(f"input of shape {tuple(x.shape)} does not split into blocks of {tuple(unit)}")
    n = len(dims)
    shape = [b, c]
    for d, u in zip(dims, unit):
        shape += [d // u, u]
    blocks = x.reshape(shape)                                         # (B, C, g0, u0, g1, u1, ...)
    red = (1, *(3 + 2 * i for i in range(n)))                         # channels and in-block axes
    return blocks.mean(dim=red, keepdim=True), blocks.var(dim=red, keepdim=True, unbiased=False), shape


def patch_normalise(x: torch.Tensor, unit: Sequence[int], eps: float = 1e-6) -> torch.Tensor:
    """``x`` (B, C, *dims) normalised to zero mean and unit variance over the channels and pixels of each block of
    ``unit`` pixels (one block per mask unit; dims must be multiples of ``unit``)."""
    mean, var, shape = _unit_stats(x, unit)
    return ((x.reshape(shape) - mean) / (var + eps).sqrt()).reshape(x.shape)


def prediction_as_pixels(pred: torch.Tensor, x: torch.Tensor, target: str, unit: Sequence[int],
                         eps: float = 1e-6) -> torch.Tensor | None:
    """A prediction in the input's (normalised) pixel space, for pictures: ``norm_pixels`` takes the true unit's
    mean and spread (as MAE's demo); ``frame_diff`` has no pixel form (None)."""
    if target == "pixels":
        return pred
    if target == "pixels_flow":
        return pred[:, :x.shape[1]]
    if target == "norm_pixels":
        mean, var, shape = _unit_stats(x, unit)
        return (pred.reshape(shape) * (var + eps).sqrt() + mean).reshape(x.shape)
    return None


def frame_diff(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(x[:, :, t + 1] - x[:, :, t] at frame t, zero at the last frame; the (1, 1, T, 1, 1) 0/1 validity weight)."""
    y = torch.zeros_like(x)
    y[:, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    valid = torch.ones(1, 1, x.shape[2], 1, 1, dtype=x.dtype, device=x.device)
    valid[:, :, -1] = 0
    return y, valid


def make_target(x: torch.Tensor, target: str, unit: Sequence[int], flow_estimator: str = "farneback"
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(the regression target, same shape as ``x``; a weight broadcastable to it, None = every position)."""
    if target == "pixels":
        return x, None
    if target == "norm_pixels":
        return patch_normalise(x, unit), None
    if target == "frame_diff":
        return frame_diff(x)
    if target in ("flow", "pixels_flow"):
        from core.video.flow import clip_flow
        flow, valid = clip_flow(x, flow_estimator)
        if target == "flow":
            return flow, valid
        per_channel = torch.cat([torch.ones_like(valid).expand(1, x.shape[1], *valid.shape[2:]),
                                 valid.expand(1, 2, *valid.shape[2:])], 1)   # (1, C + 2, T, 1, 1)
        return torch.cat([x, flow.to(x.dtype)], 1), per_channel
    raise ValueError(f"mim.target = {target!r}, expected one of {', '.join(TARGETS)}")


def trivial_prediction(x: torch.Tensor, target: str, y: torch.Tensor | None = None) -> torch.Tensor:
    """What ``skill`` is measured against: the mean colour of each image / clip (pixels), else zeros shaped as
    the target ``y`` (default: as ``x``)."""
    if target in ("pixels", "pixels_flow"):
        colour = x.mean(dim=tuple(range(2, x.ndim)), keepdim=True).expand_as(x)
        if target == "pixels":
            return colour
        return torch.cat([colour, torch.zeros_like(y[:, x.shape[1]:])], 1)
    return torch.zeros_like(x if y is None else y)
