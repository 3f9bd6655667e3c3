"""Pictures of class-activation maps a person reads: the input beside its map and the overlay (a perceptual colour
map, the class and probability in the title), a clip's frames and maps in step, and a contact sheet."""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["COLORMAP", "colorize", "overlay", "display_size", "resize", "caption", "upscale", "colour_bar", "panels",
           "explain_figure", "clip_frames", "clip_sheet"]

# perceptual colour map (matplotlib's inferno: dark = little, yellow = most); the overlay keeps the input visible
# (greyed) and colours it with an opacity that grows with the map, so the low values leave the picture as it is.
COLORMAP = "inferno"


def colorize(cam: np.ndarray, name: str = COLORMAP) -> np.ndarray:
    """A map (H, W) in [0, 1] as (H, W, 3) uint8 RGB through a matplotlib colour map."""
    import matplotlib
    lut = (matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8)
    return lut[(np.clip(cam, 0, 1) * 255).astype(np.uint8)]


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.75, name: str = COLORMAP) -> np.ndarray:
    """The map over an (H, W, 3) uint8 RGB image: the image greyed to 70 %, the map's colour laid on with opacity
    ``alpha`` times the map's value (0 leaves the image unchanged), uint8."""
    cam = np.clip(cam, 0, 1)[..., None]
    grey = image.astype(np.float32).mean(-1, keepdims=True)
    base = 0.7 * (0.5 * image.astype(np.float32) + 0.5 * grey)
    a = alpha * np.sqrt(cam)                                    # a visible tint already at mid values
    return np.clip(base * (1 - a) + colorize(cam[..., 0], name).astype(np.float32) * a, 0, 255).astype(np.uint8)


def display_size(shape: Sequence[int], min_side: int = 192, max_side: int = 320) -> tuple[int, int]:
    """(H, W) at which a picture of ``shape`` is shown: a whole multiple of it up to a short side of ``min_side``
    (small inputs keep crisp pixels), or scaled down to a long side of ``max_side``."""
    h, w = int(shape[0]), int(shape[1])
    if max(h, w) > max_side:
        k = max_side / max(h, w)
        return max(1, round(h * k)), max(1, round(w * k))
    k = max(1, min(-(-min_side // min(h, w)), max_side // max(h, w)))
    return h * k, w * k


def resize(image: np.ndarray, size: Sequence[int], smooth: bool) -> np.ndarray:
    """An (H, W[, 3]) array resized to ``size`` (H, W): nearest (pixels shown as they are) or bilinear."""
    from PIL import Image
    if tuple(image.shape[:2]) == tuple(size):
        return image
    if image.dtype != np.uint8:
        out = Image.fromarray(image.astype(np.float32)).resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(out, dtype=np.float32)
    method = Image.BILINEAR if smooth else Image.NEAREST
    return np.asarray(Image.fromarray(image).resize((size[1], size[0]), method))


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):        # an old Pillow or no FreeType: the small bitmap font
        return ImageFont.load_default()


def caption(image: np.ndarray, text: str, size: int = 13, below: bool = False) -> np.ndarray:
    """The picture with text (one line, or several split at newlines) on a black band above (or below) it, uint8
    RGB."""
    from PIL import Image, ImageDraw
    lines = text.split("\n")
    band = (size + 4) * len(lines) + 2
    out = Image.new("RGB", (image.shape[1], image.shape[0] + band))
    out.paste(Image.fromarray(image), (0, 0 if below else band))
    draw, font = ImageDraw.Draw(out), _font(size)
    for i, line in enumerate(lines):
        draw.text((3, (image.shape[0] if below else 0) + 2 + i * (size + 4)), line, fill=(255, 255, 255), font=font)
    return np.asarray(out)


def upscale(image: np.ndarray, min_size: int = 192) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor until the short side is at least ``min_size`` pixels."""
    k = max(1, -(-min_size // min(image.shape[:2])))
    return image.repeat(k, 0).repeat(k, 1) if k > 1 else image


def _hstack(parts: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    h = max(p.shape[0] for p in parts)
    sep = np.zeros((h, gap, 3), np.uint8)
    padded = [np.pad(p, ((0, h - p.shape[0]), (0, 0), (0, 0))) for p in parts]
    return np.concatenate([x for p in padded for x in (p, sep)][:-1], axis=1)


def _vstack(parts: Sequence[np.ndarray], gap: int = 6) -> np.ndarray:
    w = max(p.shape[1] for p in parts)
    sep = np.zeros((gap, w, 3), np.uint8)
    padded = [np.pad(p, ((0, 0), (0, w - p.shape[1]), (0, 0))) for p in parts]
    return np.concatenate([x for p in padded for x in (p, sep)][:-1], axis=0)


def colour_bar(width: int, name: str = COLORMAP) -> np.ndarray:
    """A horizontal key of the colour map, ``width`` pixels wide, labelled "less" and "more"."""
    from PIL import Image, ImageDraw
    bar = np.repeat(colorize(np.linspace(0, 1, width)[None], name), 8, axis=0)
    out = Image.new("RGB", (width, 24))
    out.paste(Image.fromarray(bar), (0, 0))
    draw, font = ImageDraw.Draw(out), _font(11)
    draw.text((2, 10), "less", fill=(200, 200, 200), font=font)
    draw.text((width - 30, 10), "more", fill=(200, 200, 200), font=font)
    return np.asarray(out)


def panels(image: np.ndarray, cam: np.ndarray, size: Sequence[int] | None = None) -> list[np.ndarray]:
    """[input, map, overlay] of an (H, W, 3) uint8 image and its (H, W) map, each at ``size`` (default:
    :func:`display_size`): the input's pixels nearest-neighbour, the map bilinear (no blocks)."""
    size = size or display_size(image.shape)
    big = resize(image, size, smooth=max(size) < max(image.shape[:2]))
    m = np.clip(resize(np.asarray(cam, np.float32), size, smooth=True), 0, 1)
    return [big, colorize(m), overlay(big, m)]


def explain_figure(image: np.ndarray, cam: np.ndarray, title: str, size: Sequence[int] | None = None) -> np.ndarray:
    """One picture: the input, the map alone and the map over the input, side by side under ``title`` (e.g. the
    class, its probability and how the map was made), with a key of the colours; uint8 RGB."""
    parts = panels(image, cam, size)
    names = ("input", "class-activation map", "map over the input")
    row = _hstack([caption(p, n, 12, below=True) for p, n in zip(parts, names)])
    key = np.zeros((24, row.shape[1], 3), np.uint8)
    bar = colour_bar(parts[1].shape[1])
    left = parts[0].shape[1] + 6
    key[:, left:left + bar.shape[1]] = bar
    return caption(_vstack([row, key], gap=2), title, 14)


def clip_frames(frames: Sequence[np.ndarray], maps: np.ndarray, title: str,
                size: Sequence[int] | None = None) -> list[np.ndarray]:
    """The animation of a clip: per frame, the frame, its map and the overlay side by side, titled and numbered, the
    frames and their maps in step; uint8 RGB pictures."""
    size = size or display_size(frames[0].shape, min_side=160, max_side=256)
    out = []
    for i, (f, m) in enumerate(zip(frames, maps)):
        row = _hstack(panels(f, m, size))
        out.append(caption(caption(row, f"frame {i + 1}/{len(frames)}: input, map, map over the input", 12,
                                   below=True), title, 14))
    return out


def clip_sheet(frames: Sequence[np.ndarray], maps: np.ndarray, count: int, title: str,
               size: Sequence[int] | None = None) -> np.ndarray:
    """A contact sheet: ``count`` evenly spaced frames in columns, the input above its map and the overlay, under a
    title; uint8 RGB."""
    size = size or display_size(frames[0].shape, min_side=128, max_side=192)
    picks = np.unique(np.linspace(0, len(frames) - 1, max(1, min(count, len(frames)))).round().astype(int))
    cols = []
    for i in picks:
        p = panels(frames[i], maps[i], size)
        cols.append(caption(_vstack([p[0], p[1], p[2]], gap=3), f"frame {i + 1}/{len(frames)}", 12))
    sheet = _hstack(cols)
    return caption(sheet, title + "\nrows: input, class-activation map, map over the input", 14)
