"""Dense optical flow of clips from a classical estimator (no learned weights), for targets that carry the
direction of motion at every pixel (``mim.target: flow``, as masked motion encoding): OpenCV's Farneback
(polynomial expansion) or DIS (dense inverse search, its ultrafast preset, with variational refinement).

    flow, valid = clip_flow(x)          # x (B, C, T, H, W) any affine colour scale -> (B, 2, T, H, W) px per frame
    flow, valid = clip_flow(x, "dis")
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["clip_flow", "flow_to_rgb", "levels", "FARNEBACK", "ESTIMATORS"]

ESTIMATORS = ("farneback", "dis")

# pyramid scale, window, iterations, poly_n, poly_sigma; the pyramid's levels follow the frame size (levels())
FARNEBACK = dict(pyr_scale=0.5, winsize=9, iterations=3, poly_n=5, poly_sigma=1.1, flags=0)


def levels(height: int, width: int) -> int:
    """Pyramid levels down to about 8 px: 2 for 32-px frames (motion up to about 4 px a frame), 4 for 224."""
    return max(1, int(math.log2(max(min(height, width), 8) / 8)))


def _grey_uint8(x: torch.Tensor) -> np.ndarray:
    """(B, C, T, H, W) float -> (B, T, H, W) uint8: the channel mean, stretched to 0..255 per clip."""
    g = x.detach().float().mean(dim=1)
    lo = g.flatten(1).amin(1).view(-1, 1, 1, 1)
    hi = g.flatten(1).amax(1).view(-1, 1, 1, 1)
    g = (g - lo) / (hi - lo).clamp_min(1e-6) * 255.0
    return g.round().clamp(0, 255).to(torch.uint8).cpu().numpy()


def _pair_flow(estimator: str, height: int, width: int):
    """``flow(prev, next) -> (H, W, 2)`` for two uint8 grey frames."""
    import cv2

    if estimator == "farneback":
        n = levels(height, width)
        return lambda a, b: cv2.calcOpticalFlowFarneback(a, b, None, levels=n, **FARNEBACK)
    if estimator == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        return lambda a, b: dis.calc(a, b, None)
    raise ValueError(f"flow estimator {estimator!r}, expected one of {', '.join(ESTIMATORS)}")


def clip_flow(x: torch.Tensor, estimator: str = "farneback") -> tuple[torch.Tensor, torch.Tensor]:
    """(flow from frame t to t + 1 at frame t as (dx, dy) in pixels, zero at the last frame; the (1, 1, T, 1, 1)
    0/1 validity weight, 0 at the last frame), on ``x``'s device in float32."""
    if x.ndim != 5 or x.shape[2] < 2:
        raise ValueError(f"optical flow needs clips (B, C, T >= 2, H, W), got shape {tuple(x.shape)}")
    grey = _grey_uint8(x)
    b, t, h, w = grey.shape
    pair_flow = _pair_flow(estimator, h, w)
    out = np.zeros((b, t, h, w, 2), np.float32)
    for i in range(b):
        for j in range(t - 1):
            out[i, j] = pair_flow(grey[i, j], grey[i, j + 1])
    flow = torch.from_numpy(out).permute(0, 4, 1, 2, 3).to(x.device)
    valid = torch.ones(1, 1, t, 1, 1, device=x.device)
    valid[:, :, -1] = 0
    return flow, valid


def flow_to_rgb(flow: torch.Tensor, max_magnitude: float | None = None) -> torch.Tensor:
    """(2, *dims) flow -> (3, *dims) colours in [0, 1], the usual colour wheel: hue = direction, brightness =
    speed / ``max_magnitude`` (default: the largest speed shown); still pixels are black."""
    from matplotlib.colors import hsv_to_rgb

    f = flow.detach().float().cpu()
    mag = f.norm(dim=0)
    top = float(max_magnitude or mag.max()) or 1.0
    hue = (torch.atan2(-f[1], -f[0]) / (2 * torch.pi) + 0.5) % 1.0
    hsv = torch.stack([hue, torch.ones_like(hue), (mag / top).clamp(0, 1)], -1).numpy()
    return torch.from_numpy(hsv_to_rgb(hsv)).movedim(-1, 0).float()
