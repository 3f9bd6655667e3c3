"""SimMIM's pictures: a checkpoint's task, an input image or clip, and the figure of masks and reconstructions
(the command: ``cli/visualize.py``)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from core.engine.checkpoint import CheckpointError, load_checkpoint
from core.engine.config import ConfigError, config_from_dict
from core.engine.data import DataError

from .config import SimMIMConfig
from .mask import MaskGenerator
from .target import DESCRIPTIONS, prediction_as_pixels, trivial_prediction
from .task import SimMIM, pixel_mask

__all__ = ["load_task", "load_input", "reconstruction_figure"]

_VIDEO_MEAN = (123.675, 116.28, 103.53)  # the video transforms' normalisation (0-255 pixels)
_VIDEO_STD = (58.395, 57.12, 57.375)


def load_task(path: str, size: Sequence[int] | None = None) -> tuple[SimMIM, SimMIMConfig]:
    """The SimMIM task of a checkpoint, its masks made for ``size`` (default: the recipe's input size)."""
    from .task import build_simmim
    ckpt = load_checkpoint(path)
    if "config" not in ckpt or "task" not in ckpt:
        raise CheckpointError(f"{path} is not a SimMIM training checkpoint (no config / task entries)")
    d = dict(ckpt["config"])
    d.pop("_schema_", None)
    cfg = config_from_dict(d, SimMIMConfig)
    cfg.model.pretrained = ""
    if size:
        cfg.data.img_size = int(size[0])
    task = build_simmim(cfg, initial_weights=False)
    if size:
        input_size = (*cfg.data.input_size[:-2], *size)
        task.mask_generator = MaskGenerator(input_size, cfg.mim.mask_patch_size, task.encoder.patch_size,
                                            cfg.mim.mask_ratio, cfg.mim.mask_mode, cfg.mim.mask_last)
    task.load_split_state(ckpt["model"], ckpt["task"])
    return task.eval(), cfg


def _resize_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(N, C, H, W) float: resize to cover ``size`` keeping the aspect ratio, then centre crop."""
    h, w = x.shape[-2:]
    s = max(size[0] / h, size[1] / w)
    nh, nw = max(size[0], round(h * s)), max(size[1], round(w * s))
    x = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - size[0]) // 2, (nw - size[1]) // 2
    return x[..., top:top + size[0], left:left + size[1]]


def _clip_frames(path: str, clip_len: int, frame_interval: int, decoder: str) -> torch.Tensor:
    """The first clip of a video (frame k * frame_interval, looped) as uint8 (T, 3, H, W), read by ``decoder``."""
    from core.video.decoders import check_decoder, open_video
    try:
        check_decoder(decoder)
    except (ImportError, ValueError) as e:
        raise ConfigError(str(e)) from None
    try:
        video = open_video(path, decoder=decoder)
        if video.num_frames < 1:
            raise ValueError("no frames")
        return video.get(np.arange(clip_len) * frame_interval % video.num_frames).permute(0, 3, 1, 2)
    except Exception as e:  # noqa: BLE001 -- each decoder raises its own error types
        raise DataError(f"cannot decode {path} ({decoder}): {e}") from None


def load_input(path: str, cfg: SimMIMConfig, size: Sequence[int],
               decoder: str | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x normalised (1, 3, [T,] H, W), mean, std) from an image, a video (read by ``decoder``, default the recipe's
    data.decoder) or ``photo:<name>``."""
    from core.video.data import VIDEO_EXTENSIONS
    d = cfg.data
    if d.is_video != path.lower().endswith(VIDEO_EXTENSIONS):
        raise DataError(f"{path}: the checkpoint's model takes {'clips' if d.is_video else 'images'}")
    if d.is_video:
        frames = _clip_frames(path, d.clip_len, d.frame_interval, decoder or d.decoder).float()  # (T, 3, H, W)
        mean, std = torch.tensor(_VIDEO_MEAN), torch.tensor(_VIDEO_STD)
        x = _resize_crop(frames, size).clamp(0, 255).permute(1, 0, 2, 3)[None]           # (1, 3, T, H, W)
        view = (1, 3, 1, 1, 1)
    else:
        if path.startswith("photo:"):
            from sklearn.datasets import load_sample_images
            imgs = {os.path.splitext(os.path.basename(f))[0]: im for f, im in
                    zip(load_sample_images().filenames, load_sample_images().images)}
            if path[6:] not in imgs:
                raise DataError(f"{path}: expected one of {['photo:' + k for k in imgs]}")
            arr = imgs[path[6:]]
        else:
            from PIL import Image
            try:
                with Image.open(path) as im:
                    arr = np.asarray(im.convert("RGB"))
            except OSError as e:
                raise DataError(f"cannot read image {path}: {e}") from None
        img = torch.from_numpy(np.array(arr)).permute(2, 0, 1).float()[None] / 255.0
        mean, std = torch.tensor(d.mean), torch.tensor(d.std)
        x = _resize_crop(img, size).clamp(0, 1)
        view = (1, 3, 1, 1)
    return (x - mean.view(view)) / std.view(view), mean.view(view), std.view(view)


@torch.no_grad()
def reconstruction_figure(task: SimMIM, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, out: str,
                          seed: int = 0, frames: int = 4, title: str = "") -> dict[str, float]:
    """Write the picture; returns the masked-target L1 of the model and of the trivial predictor (the mean colour
    for pixels, zero otherwise), in normalised units."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask = task.mask_generator(1, generator=torch.Generator().manual_seed(seed))
    pred = task.reconstruct(x, mask).float()
    y, w = task.target_of(x, mask)
    n = max(float(w.expand_as(y).sum()), 1.0)
    l1 = float(((pred - y).abs() * w).sum()) / n
    base = float(((trivial_prediction(x, task.target, y) - y).abs() * w).sum()) / n
    m = pixel_mask(mask, task.encoder.patch_size).float()      # the masked region (frame_diff: also the last frame)
    scale = 255.0 if x.ndim == 5 else 1.0
    show = lambda t: ((t * std + mean) / scale).clamp(0, 1)[0]  # noqa: E731
    grey = (torch.full_like(x, 0.5 * scale) - mean) / std      # mid-grey in normalised units
    rec = prediction_as_pixels(pred, x, task.target, task.target_unit)
    if task.target in ("flow", "pixels_flow"):  # colour wheel (hue = direction, brightness = speed), masked
        from core.video.flow import flow_to_rgb
        fy, fp, fw = y[:, -2:], pred[:, -2:], w[:, -1:]
        top = float(fy.norm(dim=1).max())
        cols = {"original": show(x), "masked input": show(x * (1 - m) + grey * m),
                "true flow (hue: direction)": flow_to_rgb(fy[0] * fw[0], top),
                "predicted flow (brightness: speed)": flow_to_rgb(fp[0] * fw[0], top)}
    elif rec is None:  # frame_diff: the true and the predicted difference around grey, in the masked patches
        cols = {"original": show(x), "masked input": show(x * (1 - m) + grey * m),
                "true difference": show(grey + y * m), "predicted difference": show(grey + pred * m)}
    else:
        cols = {"original": show(x), "masked input": show(x * (1 - m) + grey * m),
                "reconstruction": show(x * (1 - m) + rec * m), "prediction": show(rec)}
    if x.ndim == 5:  # (3, T, H, W): a few frames as rows
        t_idx = np.linspace(0, x.shape[2] - 1, min(frames, x.shape[2])).round().astype(int)
        rows = [{k: v[:, t] for k, v in cols.items()} for t in t_idx]
        labels = [f"frame {t}" for t in t_idx]
    else:
        rows, labels = [cols], [""]
    h, w = x.shape[-2:]
    fig, axes = plt.subplots(len(rows), 4, figsize=(4 * 2.6 * w / max(h, w) + 0.4, len(rows) * 2.6 * h / max(h, w) + 0.6),
                             squeeze=False)
    for r, (row, label) in enumerate(zip(rows, labels)):
        for c, (name, img) in enumerate(row.items()):
            ax = axes[r, c]
            ax.imshow(img.permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=9)
            if c == 0 and label:
                ax.set_ylabel(label, fontsize=8)
    g = task.mask_generator
    trivial = DESCRIPTIONS[task.target][1]
    fig.suptitle(f"{title}{' - ' if title else ''}{g.mask_count}/{g.token_count} mask patches of {g.mask_patch_size} px"
                 f"{', ' + g.mode if g.frames else ''}"
                 f"{f', the last {g.mask_last} of {g.frames} temporal patches whole' if g.mask_last else ''}"
                 f"; masked {task.target} L1 {l1:.3f} ({trivial} {base:.3f})",
                 fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return {"l1": l1, "l1_trivial": base, "l1_mean_colour": base}


