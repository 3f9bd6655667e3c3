"""SimMIM as an engine task: mask patches, encode with a mask token, regress the raw pixels of the masked ones
(or another target of them: ``simmim.target``, ``mim.target``).

The task holds the plain backbone (``encoder``, the checkpoint's ``model``: a headless Swin / Swin-MLP / Video
Swin that ``core.load_pretrained`` loads into a classifier), the mask token (1, 1, C) and the decoder. The mask
token is substituted right after the patch embedding (and its norm), the final norm is kept.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
from timm.layers import trunc_normal_

from core.convert import register_layout
from core.engine import ConfigError, build_model
from core.engine import distributed as du
from core.engine.device import autocast, to_device
from core.engine.task import EvalEnv, Task
from core.nn.layers import channels_first
from core.video.flow import ESTIMATORS

from .decoder import build_decoder, encoder_stride
from .mask import MaskGenerator
from .target import DESCRIPTIONS, TARGETS, check_target, make_target, target_channels, trivial_prediction

__all__ = ["SimMIM", "simmim_loss", "pixel_mask", "batch_inputs", "TARGETS"]


def pixel_mask(mask: torch.Tensor, patch_size: tuple[int, ...]) -> torch.Tensor:
    """(B, *grid) patch mask -> (B, 1, *pixels) pixel mask."""
    m = mask
    for axis, p in enumerate(patch_size):
        m = m.repeat_interleave(p, axis + 1)
    return m.unsqueeze(1)


LOSSES = ("l1", "l2")


def pixel_error(d: torch.Tensor, loss: str = "l1") -> torch.Tensor:
    """Elementwise |d| (``l1``, SimMIM) or d^2 (``l2``, MAE)."""
    return d.abs() if loss == "l1" else d.square()


def simmim_loss(x: torch.Tensor, x_rec: torch.Tensor, mask_px: torch.Tensor, loss: str = "l1") -> torch.Tensor:
    """L1 (SimMIM) or squared error (``l2``, MAE) on masked pixels only: sum / (masked pixel count + 1e-5) /
    channels."""
    err = pixel_error(x_rec - x, loss)
    m = mask_px.to(err.dtype)
    if m.shape[1] > 1:  # a weight per channel (pixels_flow: the flow's last frame is left out)
        return (err * m).sum() / (m.sum() + 1e-5)
    return (err * m).sum() / (m.sum() + 1e-5) / x.shape[1]


def batch_inputs(batch: Any) -> torch.Tensor | None:
    """The images / clips of a batch: (x, y) tuples, a bare tensor, or the video loader's dicts (None = all
    unreadable). Multi-view evaluation items (B, V, C, T, H, W) are flattened to B * V clips."""
    if isinstance(batch, dict):
        x = batch["video"]
    elif isinstance(batch, (list, tuple)):
        x = batch[0]
    else:
        x = batch
    if x is not None and x.ndim == 6:
        x = x.flatten(0, 1)
    return x


class SimMIM(Task):
    """Masked image (and video) modelling on a Swin backbone (Xie et al., 2022)."""

    backbone_attr = "encoder"
    best_metric = "skill"

    def __init__(self, encoder: nn.Module, mask_generator: MaskGenerator, decoder_stride: int = 0,
                 target: str = "pixels", loss: str = "l1", flow_estimator: str = "farneback") -> None:
        super().__init__()
        check_target(target, mask_generator.input_size)
        if loss not in LOSSES:
            raise ValueError(f"mim.loss = {loss!r}, expected one of {', '.join(LOSSES)}")
        if getattr(encoder, "num_classes", 0):
            raise ValueError(f"the SimMIM encoder must be headless (model.num_classes = 0), got "
                              f"num_classes = {encoder.num_classes}")
        stride = encoder_stride(encoder)
        if decoder_stride and decoder_stride != stride[-1]:
            raise ValueError(f"mim.decoder_stride = {decoder_stride} does not match the backbone's stride "
                              f"{stride[-1]} (patch {encoder.patch_size[-1]} x {len(encoder.depths) - 1} "
                              f"patch mergings); set it to {stride[-1]} or 0")
        if tuple(mask_generator.model_patch_size) != tuple(encoder.patch_size):
            raise ValueError(f"the mask generator's model_patch_size = {mask_generator.model_patch_size} differs "
                              f"from the backbone's patch_size = {encoder.patch_size}")
        for s, st in zip(mask_generator.input_size, stride):
            if s % st:
                raise ValueError(f"input size {s} is not divisible by the backbone's stride {st} "
                                  f"(input size {mask_generator.input_size}, stride {stride})")
        self.encoder = encoder
        self.mask_generator = mask_generator
        self.stride = stride
        self.in_chans = encoder.in_chans
        self.mask_token = nn.Parameter(torch.zeros(1, 1, encoder.embed_dim))
        trunc_normal_(self.mask_token, std=0.02)
        self.decoder = build_decoder(encoder.num_features, stride, target_channels(target, self.in_chans))
        self.eval_seed = 0
        if flow_estimator not in ESTIMATORS:
            raise ValueError(f"mim.flow_estimator = {flow_estimator!r}, expected one of {', '.join(ESTIMATORS)}")
        self.target, self.loss, self.flow_estimator = target, loss, flow_estimator
        g = mask_generator  # norm_pixels' unit: one mask patch (clips: x one temporal patch)
        self.target_unit = ((g.model_patch_size[0],) if g.frames else ()) + (g.mask_patch_size,) * 2

    # ------------------------------------------------------------------------------------------- model
    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Features (B, C, *grid') of ``x`` with the masked patch embeddings replaced by the mask token."""
        enc = self.encoder
        enc.check_input(x)
        z = enc.patch_embed(x)                                            # (B, *grid, C), after its norm
        if tuple(z.shape[1:-1]) != tuple(mask.shape[1:]):
            raise ValueError(f"mask of shape {tuple(mask.shape[1:])} does not fit the patch grid "
                             f"{tuple(z.shape[1:-1])} of an input of shape {tuple(x.shape[2:])}")
        w = mask.unsqueeze(-1).to(z.dtype)
        z = z * (1.0 - w) + self.mask_token.to(z.dtype) * w              # token broadcast over batch and grid
        z = enc.pos_drop(z)
        for layer in enc.layers:
            z = layer(z)
        return channels_first(enc.norm(z))

    def reconstruct(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The predicted target (B, 3, *input): pixels in the normalised space of ``x``; flow (B, 2, *input)."""
        return self.decoder(self.encode(x, mask))

    def target_of(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the regression target of ``x``, the pixel weight: 1 on masked positions that carry a target)."""
        y, valid = make_target(x.float(), self.target, self.target_unit, self.flow_estimator)
        m = pixel_mask(mask, self.encoder.patch_size).to(y.dtype)
        return y, m if valid is None else m * valid

    def forward(self, batch: Any) -> dict[str, torch.Tensor]:
        x = batch_inputs(batch)
        if x is None:  # every clip unreadable: the trainer makes the zero step
            return None
        mask = self.mask_generator(x.shape[0]).to(x.device)
        x_rec = self.reconstruct(x, mask)
        y, m = self.target_of(x, mask)
        return {"loss": simmim_loss(y, x_rec.float(), m, self.loss)}

    # ------------------------------------------------------------------------------------------- engine hooks
    def no_weight_decay(self) -> set[str]:
        return super().no_weight_decay() | {"mask_token"}

    def group_id(self, name: str) -> int:
        """The mask token sits with the patch embedding (group 0); the decoder in the last group."""
        return 0 if name == "mask_token" else super().group_id(name)

    @torch.no_grad()
    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        """Masked-target error (``mim.loss``: L1, or the squared error as ``mse``) on ``loader`` with fixed masks,
        against the trivial predictor (``pixels``: each image's mean colour; ``norm_pixels``, ``frame_diff``: zero).

        ``skill`` = 1 - l1 / l1_trivial (0: no better than the trivial predictor; 0.5: half its error).
        """
        if loader is None:
            return {}
        self.eval()
        gen = torch.Generator().manual_seed(self.eval_seed)
        # per part (all channels; pixels_flow: also the flow's two): model error sum, trivial error sum, count
        parts = {"": slice(None)} | ({"flow_": slice(-2, None)} if self.target == "pixels_flow" else {})
        stats = torch.zeros(len(parts), 3, dtype=torch.float64)
        for batch in loader:
            x = batch_inputs(batch)
            if x is None:
                continue
            x = to_device(x, env.device).float()
            mask = self.mask_generator(x.shape[0], generator=gen).to(env.device)
            with autocast(env.device, env.amp_dtype):
                x_rec = self.reconstruct(x, mask)
            y, m = self.target_of(x, mask)
            err = pixel_error(x_rec.float() - y, self.loss) * m
            trivial = pixel_error(trivial_prediction(x, self.target, y) - y, self.loss) * m
            m = m.expand_as(y)
            for i, c in enumerate(parts.values()):
                stats[i] += torch.tensor([float(err[:, c].sum()), float(trivial[:, c].sum()), float(m[:, c].sum())],
                                         dtype=torch.float64)
        if du.is_dist():
            stats = du.all_reduce_sum(stats.to(env.device)).cpu()
        key = "l1" if self.loss == "l1" else "mse"
        out = {}
        for (prefix, _), (e, b, n) in zip(parts.items(), stats.tolist()):
            l1, base = e / max(n, 1.0), b / max(n, 1.0)
            out |= {f"{prefix}{key}": l1, f"{prefix}{key}_trivial": base,
                    f"{prefix}skill": 1.0 - l1 / base if base > 0 else 0.0}
        if self.target == "pixels":
            out[f"{key}_mean_colour"] = out[f"{key}_trivial"]
        return out

    def describe(self, metrics: dict[str, float]) -> str:
        what, trivial = DESCRIPTIONS[self.target]
        key = "l1" if self.loss == "l1" else "mse"
        flow = f", flow alone skill {metrics['flow_skill']:.3f}" if "flow_skill" in metrics else ""
        hint = ""
        if self.target in ("flow", "pixels_flow") and metrics.get("flow_skill", metrics.get("skill", 1.0)) < 0.02:
            hint = ("; no better than predicting no motion yet: if it stays so, sample frames closer together "
                    "(data.frame_interval) so that things move a few pixels at most between them, and for small "
                    "things over a plain background use smaller patches (model.kwargs patch_size)")
        return (f"{what} {key.upper()} {metrics.get(key, float('nan')):.4f} vs {trivial} "
                f"{metrics.get(f'{key}_trivial', float('nan')):.4f} (skill {metrics.get('skill', float('nan')):.3f}"
                f"{flow}){hint}")


def build_simmim(cfg: Any, initial_weights: bool = True) -> SimMIM:
    """The headless encoder (model.*), the mask generator (mim.*, data.img_size / clip_len) and the task."""
    encoder = build_model(cfg, 0, initial_weights=initial_weights)
    try:  # the model's own checks name the mim.* fields; here they become config errors
        gen = MaskGenerator(cfg.data.input_size, cfg.mim.mask_patch_size, encoder.patch_size, cfg.mim.mask_ratio,
                            cfg.mim.mask_mode, cfg.mim.mask_last)
        task = SimMIM(encoder, gen, cfg.mim.decoder_stride, cfg.mim.target, cfg.mim.loss,
                      cfg.mim.flow_estimator)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    task.eval_seed = cfg.mim.eval_seed
    return task

def _is_simmim(keys: list[str]) -> bool:
    """Official SimMIM: the encoder with its mask token, and the decoder."""
    return any(k.startswith("decoder.") or k == "encoder.mask_token" for k in keys)


register_layout("simmim", _is_simmim, drop=("mask_token",))
