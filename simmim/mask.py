"""SimMIM's random masking: mask patches chosen at random, expanded to the model's patch grid.

    gen = MaskGenerator(input_size=192, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6)
    mask = gen()            # (48, 48) int64 0/1: ceil(36 * 0.6) = 22 mask patches of 8x8 model patches each
    masks = gen(16)         # (16, 48, 48), one independent mask per image

For clips, ``input_size=(T, H, W)`` and ``model_patch_size=(pt, ph, pw)`` give masks of shape (T/pt, H/ph, W/pw):
``mode="tube"`` (default) one spatial mask repeated on every temporal patch (a masked place is hidden in every
frame); ``mode="frame"`` an independent spatial mask per temporal patch (each with the same count), so a masked
place is usually visible in another frame and reconstruction becomes correspondence over time. For images the
two modes are the same. ``mask_last=K`` (clips) also hides the last K temporal patches entirely: they can only be
extrapolated from the earlier frames, which needs the direction and speed of the motion, not only
correspondence. Masks come from torch's RNG (or ``generator``), so they follow the run's seed and its
resume.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

__all__ = ["MaskGenerator", "MASK_MODES"]

MASK_MODES = ("tube", "frame")


def _pair(v: int | Sequence[int], n: int, name: str) -> tuple[int, ...]:
    t = (int(v),) * n if isinstance(v, int) else tuple(int(x) for x in v)
    if len(t) != n:
        raise ValueError(f"{name} = {v!r}: expected an int or {n} ints")
    return t


class MaskGenerator:
    """Random SimMIM masks (2D), tube or per-frame masks (3D) on the model's patch grid."""

    def __init__(self, input_size: int | Sequence[int] = 192, mask_patch_size: int = 32,
                 model_patch_size: int | Sequence[int] = 4, mask_ratio: float = 0.6, mode: str = "tube",
                 mask_last: int = 0) -> None:
        if not 0.0 < float(mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio = {mask_ratio}, expected a value in (0, 1)")
        if mode not in MASK_MODES:
            raise ValueError(f"mim.mask_mode = {mode!r}, expected one of {', '.join(MASK_MODES)}")
        ndim = 3 if (not isinstance(input_size, int) and len(input_size) == 3) else 2
        size = _pair(input_size, ndim, "input_size")
        patch = _pair(model_patch_size, ndim, "model_patch_size")
        spatial, sp_patch = size[-2:], patch[-2:]
        for s in spatial:
            if s % mask_patch_size:
                raise ValueError(f"input size {s} is not divisible by mask_patch_size = {mask_patch_size}")
        for p in sp_patch:
            if mask_patch_size % p:
                raise ValueError(f"mask_patch_size = {mask_patch_size} is not divisible by the model's patch "
                                  f"size {p}")
        if ndim == 3 and size[0] % patch[0]:
            raise ValueError(f"clip length {size[0]} is not divisible by the model's temporal patch size {patch[0]}")
        self.input_size, self.model_patch_size = size, patch
        self.mask_patch_size, self.mask_ratio = int(mask_patch_size), float(mask_ratio)
        self.rand_size = tuple(s // mask_patch_size for s in spatial)          # mask-patch grid
        self.scale = tuple(mask_patch_size // p for p in sp_patch)              # model patches per mask patch
        self.frames = size[0] // patch[0] if ndim == 3 else 0                   # temporal patches (tube length)
        self.token_count = math.prod(self.rand_size)
        self.mask_count = int(math.ceil(self.token_count * self.mask_ratio))
        if self.mask_count >= self.token_count:
            raise ValueError(f"mim.mask_ratio = {mask_ratio} masks all {self.token_count} mask patches "
                              f"(ceil({self.token_count} x {mask_ratio}) = {self.mask_count}): no visible patch is "
                              f"left; use a ratio <= {(self.token_count - 1) / self.token_count:.4g} or a smaller "
                              f"mim.mask_patch_size")
        if mask_last and not self.frames:
            raise ValueError(f"mim.mask_last = {mask_last} hides the last temporal patches of a clip, but the input "
                              f"is an image; set mim.mask_last=0")
        if not 0 <= mask_last < max(self.frames, 1):
            raise ValueError(f"mim.mask_last = {mask_last} hides all {self.frames} temporal patches (clip length "
                              f"{size[0]} / temporal patch {patch[0]}): nothing is left to predict them from; use "
                              f"0 to {self.frames - 1}")
        self.mode, self.mask_last = mode, int(mask_last)

    @property
    def grid(self) -> tuple[int, ...]:
        """Shape of one mask: the model's patch grid."""
        hw = tuple(r * s for r, s in zip(self.rand_size, self.scale))
        return (self.frames, *hw) if self.frames else hw

    def __call__(self, batch: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """One mask (``grid``) or ``batch`` of them, int64 0/1 (1 = masked)."""
        n = 1 if batch is None else int(batch)
        per_frame = bool(self.frames) and self.mode == "frame"
        rows = n * self.frames if per_frame else n                            # one spatial mask per row
        keys = torch.rand(rows, self.token_count, generator=generator)
        order = keys.argsort(dim=1)[:, :self.mask_count]                     # a uniform random subset per row
        coarse = torch.zeros(rows, self.token_count, dtype=torch.int64)
        coarse.scatter_(1, order, 1)
        m = coarse.view(rows, *self.rand_size)
        m = m.repeat_interleave(self.scale[0], 1).repeat_interleave(self.scale[1], 2)
        if per_frame:
            m = m.view(n, self.frames, *m.shape[1:])
        elif self.frames:
            m = m.unsqueeze(1).expand(n, self.frames, *m.shape[1:]).contiguous()
        if self.mask_last:
            m[:, self.frames - self.mask_last:] = 1
        return m[0] if batch is None else m

    def __repr__(self) -> str:
        return (f"MaskGenerator(input_size={self.input_size}, mask_patch_size={self.mask_patch_size}, "
                f"model_patch_size={self.model_patch_size}, mask_ratio={self.mask_ratio}, "
                f"{self.mask_count}/{self.token_count} mask patches{', ' + self.mode if self.frames else ''}"
                f"{f', last {self.mask_last} temporal patches' if self.mask_last else ''})")
