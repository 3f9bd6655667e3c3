"""Predict and explain one input at a time: the top classes and the class-activation map of an image or a video file,
with the pictures a person reads (``core.nn.cam``'s figure, animation and contact sheet).

    explainer = Explainer.from_checkpoint("outputs/run/best.pth")     # an image or a video model, on the CPU or GPU
    ex = explainer.explain("clip.mp4")                                 # Explanation, or InputError with a message
    ex.top          # [{"class", "index", "prob"}, ...]: the top-5
    ex.maps         # (H, W) or (T, H, W) float32 in [0, 1] at the file's size (zero outside the evaluation crop)
    ex.save("out/clip")                                                # out/clip.png (+ .gif for a clip)

An image model reads an image with its recipe's evaluation transform; a video model reads one view of a video
(the recipe's sampling; clip-major view ``view`` of ``views`` clips x crops). Across kinds: a video model explains an
image as a still clip (the image repeated for the clip's frames), an image model explains a video frame by frame
(``frames`` frames spread over it, their probabilities averaged). ``core.explain``, ``video_swin.explain`` and the
demo page (``core.demo_app``) are built on this; nothing here imports a command-line module.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from .cam_pictures import clip_frames, clip_sheet, explain_figure
from .nn.cam import (
    DEFAULT_LAYER,
    DEFAULT_SMOOTH,
    LAYERS,
    CamResult,
    cam_method,
    class_activation_maps,
    paste_back,
    target_layer,
)

__all__ = ["InputError", "Explanation", "Explainer", "write_animation", "add_map_args", "IMAGE_EXTENSIONS",
           "VIDEO_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp")


class InputError(ValueError):
    """A file that cannot be explained, with the reason in words a person reads."""


@dataclass
class Explanation:
    """One explained input: the top classes, the explained class, its maps at the input's size, the input's pictures
    (H, W, 3) or frames (T, H, W, 3) uint8, and the seconds the prediction and the maps took."""
    path: str
    kind: str                          # "image" or "video" (how it is shown)
    top: list[dict[str, Any]]
    target: int
    label: str                         # "<class> 93.1%"
    maps: np.ndarray
    pixels: np.ndarray
    how: str                           # the CAM's settings, as CamResult.describe() says them
    seconds: float
    note: str = ""                     # e.g. "a still image, read as a clip of 8 frames"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return f"{self.label}  ({self.how})"

    def figure(self, sheet_frames: int = 4) -> np.ndarray:
        """The picture: input | map | overlay for an image, a contact sheet of ``sheet_frames`` frames for a clip."""
        if self.kind == "image":
            return explain_figure(self.pixels, self.maps, self.title)
        return clip_sheet(self.pixels, self.maps, sheet_frames, self.title)

    def animation(self) -> list[np.ndarray]:
        """The clip's frames beside their maps and overlays, in step (a clip only)."""
        return clip_frames(self.pixels, self.maps, self.title)

    def save(self, stem: str, fmt: str = "gif", sheet_frames: int = 4, save_maps: bool = False,
             fps: int = 4) -> list[str]:
        """Write ``stem.png`` (the figure or contact sheet), for a clip ``stem.gif`` / ``.mp4`` (the animation),
        and with ``save_maps`` ``stem.npy`` (the maps, float32); the files written."""
        Image.fromarray(self.figure(sheet_frames)).save(stem + ".png")
        out = [stem + ".png"]
        if self.kind == "video":
            out.insert(0, write_animation(stem, self.animation(), fmt, fps))
        if save_maps:
            np.save(stem + ".npy", self.maps.astype(np.float32))
            out.append(stem + ".npy")
        return out


def write_animation(stem: str, frames: Sequence[np.ndarray], fmt: str = "gif", fps: int = 4) -> str:
    """Frames (H, W, 3) uint8 as ``stem.gif`` (looping) or ``stem.mp4``; returns the file written."""
    if fmt == "mp4":
        from .video.synthetic import write_mp4
        stack = np.stack(frames)
        stack = stack[:, :stack.shape[1] // 2 * 2, :stack.shape[2] // 2 * 2]   # yuv420p wants even sizes
        write_mp4(stem + ".mp4", stack, fps=fps)
        return stem + ".mp4"
    first, *rest = [Image.fromarray(f) for f in frames]
    first.save(stem + ".gif", save_all=True, append_images=rest, duration=int(1000 / fps), loop=0)
    return stem + ".gif"


def add_map_args(p: Any) -> None:
    """The explain tools' --layer and --smooth, and --method left to ``core.nn.cam.default_method`` (Grad-CAM for
    images, HiResCAM for clips) unless given."""
    p.set_defaults(method=None)
    p.add_argument("--layer", default=DEFAULT_LAYER, choices=LAYERS,
                   help="the stage's output (after the final norm for the last stage) or its last block's input")
    p.add_argument("--smooth", type=float, default=DEFAULT_SMOOTH, metavar="SIGMA",
                   help="Gaussian from the token grid to pixels, sigma in tokens (0: none)")


def _reason(e: BaseException) -> str:
    return f"{type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}"


def _file_kind(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in IMAGE_EXTENSIONS:
        return "image"
    try:                                                    # no telling extension: an image if PIL knows it
        with Image.open(path):
            return "image"
    except Exception:  # noqa: BLE001 -- anything PIL cannot open is tried as a video
        return "video"


class Explainer:
    """A loaded model (:class:`core.engine.inference.LoadedModel`) ready to explain files.

    ``method``, ``stage``, ``layer``, ``smooth``: the CAM's settings (``core.nn.cam`` defaults; the method by the
    input: Grad-CAM for images, HiResCAM for clips); ``target``: the
    class explained (default: the predicted one); ``views``/``view``: the test views of a video and the one
    explained; ``frames``: frames of a video read by an image model; ``max_bytes``: larger files are refused.
    """

    def __init__(self, loaded: Any, classes: Sequence[str], device: torch.device | str = "cpu", *,
                 method: str | None = None, stage: int | None = None, layer: str = DEFAULT_LAYER,
                 smooth: float = DEFAULT_SMOOTH, target: int | None = None, topk: int = 5,
                 views: tuple[int, int] = (1, 1), view: int = 0, frames: int = 8, max_bytes: int = 0) -> None:
        self.loaded, self.model, self.cfg = loaded, loaded.model, loaded.cfg
        self.classes, self.device = list(classes), torch.device(device)
        self.cam = dict(method=method, stage=stage, layer=layer, smooth=smooth)
        self.target, self.topk, self.frames, self.max_bytes = target, topk, frames, max_bytes
        self.views, self.view = views, view
        self.is_video = getattr(self.model, "ndim", 2) == 3 and not getattr(self.cfg.data, "single_frame", False)
        if method:
            cam_method(method, getattr(self.model, "ndim", 2))            # unusable settings: ValueError now
        target_layer(self.model, stage, layer)
        if smooth < 0:
            raise ValueError(f"--smooth {smooth}: expected a sigma >= 0 in tokens (0 = no smoothing)")
        if self.is_video:
            from .video.transforms import build_video_transform
            self.video_transform = build_video_transform("test", self.cfg.data.crop_size, None, views[1])
        else:
            from .classification.images import image_transform
            self.image_transform = image_transform(self.cfg)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | None, *, model: str | None = None, device: str = "auto",
                        opts: Sequence[str] = (), classes_file: str | None = None, **kw: Any) -> Explainer:
        """Load an image or a video model (its recipe tells which) from ``checkpoint``, or registered weights
        ``model`` = ``<arch>.<tag>``; ToolError (one line) when it cannot be used."""
        from .engine.inference import class_names, load_for_inference, pick_device
        schema, dev = _schema_of(checkpoint, model), pick_device(device)
        loaded, checkpoint = load_for_inference(checkpoint, schema, model=model, opts=opts, device=dev)
        if schema.__name__ == "VideoConfig":
            names = class_names(loaded.num_classes, checkpoint, classes_file, saved=loaded.classes)
        else:
            from .classification.images import recipe_classes
            names = class_names(loaded.num_classes, checkpoint, classes_file, recipe_classes(loaded.cfg),
                                loaded.classes)
        return cls(loaded, names, dev, **kw)

    # -------------------------------------------------------------------------------------------- entry points
    def explain(self, path: str) -> Explanation:
        """An image or a video file, whichever it is; InputError with the reason when it cannot be read."""
        self._check_file(path)
        kind = _file_kind(path)
        if kind == "image":
            return self.explain_images([path])[0] if not self.is_video else self._still_clip(path)
        return self.explain_video(path) if self.is_video else self._frame_by_frame(path)

    def explain_images(self, paths: Sequence[str]) -> list[Explanation | InputError]:
        """Images in one batch through an image model; an unreadable one comes back as its InputError."""
        t0 = time.perf_counter()
        read: list[tuple[int, np.ndarray, torch.Tensor]] = []
        out: list[Any] = [None] * len(paths)
        for i, path in enumerate(paths):
            try:
                im, rgb = self._read_image(path)
                read.append((i, rgb, self.image_transform(im)))
            except InputError as e:
                out[i] = e
        if read:
            res = self._cam(torch.stack([r[2] for r in read]))
            probs = res.logits.softmax(-1).cpu()
            seconds = (time.perf_counter() - t0) / len(read)
            from .classification.images import eval_crop_box
            for (i, rgb, _), m, cls, p in zip(read, res.maps.cpu(), res.targets, probs):
                resized, top, left = eval_crop_box(self.cfg, rgb.shape[:2])
                full = paste_back(m, resized, top, left, rgb.shape[:2]).numpy()
                out[i] = self._explanation(paths[i], "image", p, cls, full, rgb, res, seconds)
        return out

    def explain_video(self, path: str) -> Explanation:
        """One view of a video through a video model: a map per frame of the clip, put back in the video's frames."""
        from torchvision import tv_tensors

        from .video.transforms import test_view_box
        t0 = time.perf_counter()
        raw = self._read_clip(path)                                         # (T, C, H, W) uint8
        crop = self.view % self.views[1]
        x = self.video_transform(tv_tensors.Video(raw))[crop][None].to(self.device)
        res = self._cam(x)
        d = self.cfg.data
        size = tuple(raw.shape[-2:])
        resized, top, left = test_view_box(size, d.crop_size, self.views[1], crop)
        maps = paste_back(res.maps[0].cpu(), resized, top, left, size).numpy()
        frames = raw.permute(0, 2, 3, 1).numpy()
        frames = frames.repeat(3, -1) if frames.shape[-1] == 1 else frames
        return self._explanation(path, "video", res.logits.softmax(-1)[0].cpu(), res.targets[0], maps, frames, res,
                                 time.perf_counter() - t0)

    # ------------------------------------------------------------------------------------------------ the rest
    def _cam(self, x: torch.Tensor) -> CamResult:
        return class_activation_maps(self.model, x.to(self.device), targets=self.target, **self.cam)

    def _explanation(self, path: str, kind: str, probs: torch.Tensor, cls: int, maps: np.ndarray,
                     pixels: np.ndarray, res: CamResult, seconds: float, note: str = "") -> Explanation:
        from .engine.inference import topk_rows
        top = topk_rows(probs, self.classes, self.topk)
        return Explanation(path, kind, top, cls, f"{self.classes[cls]} {100 * float(probs[cls]):.1f}%", maps, pixels,
                           res.describe(), seconds, note)

    def _check_file(self, path: str) -> None:
        if not os.path.isfile(path):
            raise InputError(f"cannot read {path}: file not found")
        size = os.path.getsize(path)
        if self.max_bytes and size > self.max_bytes:
            raise InputError(f"{path} is {size / 2 ** 20:.1f} MB; files up to {self.max_bytes / 2 ** 20:.0f} MB are "
                             f"taken")
        if size == 0:
            raise InputError(f"cannot read {path}: the file is empty")

    def _read_image(self, path: str) -> tuple[Image.Image, np.ndarray]:
        """(the image in the model's mode, its RGB pixels (H, W, 3) uint8)."""
        channels = getattr(self.cfg.data, "in_chans", 3)
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert({1: "L", 3: "RGB"}.get(channels, "RGB")), np.asarray(im.convert("RGB"))
        except Exception as e:  # noqa: BLE001 -- PIL raises many kinds on broken files
            raise InputError(f"cannot read {path}: {_reason(e)}") from None

    def _sampler(self, num_clips: int):
        from .video.data import VideoDataset
        d = self.cfg.data
        return VideoDataset([], self.classes, clip_len=d.clip_len, frame_interval=d.frame_interval,
                            num_clips=num_clips, test_mode=True, check_files=False, decoder=d.decoder)

    def _open_video(self, path: str) -> Any:
        """The video opened by the recipe's decoder (decord for an image model's recipe); at least 2 frames."""
        from .video.decoders import open_video
        try:
            video = open_video(path, decoder=getattr(self.cfg.data, "decoder", "decord"))
        except Exception as e:  # noqa: BLE001 -- decord raises DECORDError / RuntimeError on broken files
            raise InputError(f"cannot read {path}: {_reason(e)}") from None
        if video.num_frames < 2:
            raise InputError(f"{path} has {video.num_frames} frame(s): a video needs at least 2 "
                             f"(give a still picture as an image)")
        return video

    def _read_clip(self, path: str) -> torch.Tensor:
        """The explained view's clip (T, C, H, W) uint8."""
        sampler = self._sampler(self.views[0])
        video = self._open_video(path)
        try:
            clips = video.get(sampler.frame_indices(video.num_frames))
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot read {path}: {_reason(e)}") from None
        return clips[self.view // self.views[1]].permute(0, 3, 1, 2)

    def _still_clip(self, path: str) -> Explanation:
        """An image through a video model: the image repeated for the clip's frames; the frames' mean map."""
        from torchvision import tv_tensors

        from .video.transforms import test_view_box
        t0 = time.perf_counter()
        _, rgb = self._read_image(path)
        t = self.cfg.data.clip_len
        raw = torch.from_numpy(np.array(rgb)).permute(2, 0, 1)[None].repeat(t, 1, 1, 1)
        x = self.video_transform(tv_tensors.Video(raw))[self.views[1] // 2][None]
        res = self._cam(x)
        resized, top, left = test_view_box(rgb.shape[:2], self.cfg.data.crop_size, self.views[1], self.views[1] // 2)
        m = res.maps[0].mean(0)
        full = paste_back(m / m.max().clamp_min(1e-12), resized, top, left, rgb.shape[:2]).cpu().numpy()
        return self._explanation(path, "image", res.logits.softmax(-1)[0].cpu(), res.targets[0], full, rgb, res,
                                 time.perf_counter() - t0, note=f"a still image, read by this video model as a clip "
                                                                f"of {t} identical frames")

    def _frame_by_frame(self, path: str) -> Explanation:
        """A video through an image model: ``frames`` frames spread over it, each classified and explained, the
        probabilities averaged (the explained class: the average's top, or ``target``)."""
        from .classification.images import eval_crop_box
        t0 = time.perf_counter()
        video = self._open_video(path)
        inds = np.unique(np.linspace(0, video.num_frames - 1, min(self.frames, video.num_frames)).round().astype(int))
        try:
            frames = video.get(inds[None])[0].numpy()                    # (T, H, W, C)
        except Exception as e:  # noqa: BLE001
            raise InputError(f"cannot read {path}: {_reason(e)}") from None
        frames = frames.repeat(3, -1) if frames.shape[-1] == 1 else frames
        mode = {1: "L", 3: "RGB"}.get(getattr(self.cfg.data, "in_chans", 3), "RGB")
        x = torch.stack([self.image_transform(Image.fromarray(f).convert(mode)) for f in frames])
        with torch.no_grad():
            probs = self.model(x.to(self.device)).float().softmax(-1).mean(0).cpu()
        cls = int(probs.argmax()) if self.target is None else self.target
        res = class_activation_maps(self.model, x.to(self.device), targets=cls, **self.cam)
        resized, top, left = eval_crop_box(self.cfg, frames.shape[1:3])
        maps = paste_back(res.maps.cpu(), resized, top, left, frames.shape[1:3]).numpy()
        return self._explanation(path, "video", probs, cls, maps, frames, res, time.perf_counter() - t0,
                                 note=f"read frame by frame by this image model: {len(inds)} frames, their "
                                      f"probabilities averaged")


def _schema_of(checkpoint: str | None, model: str | None) -> type:
    """The recipe schema of a checkpoint (its saved config has clips or not), or of registered weights / a model
    name (a video model or not)."""
    from .classification.config import ClassificationConfig
    from .video.config import VideoConfig
    if checkpoint:
        from .engine.checkpoint import load_checkpoint
        from .engine.config import load_config
        saved = load_checkpoint(checkpoint).get("config")
        if isinstance(saved, dict):
            return VideoConfig if "clip_len" in (saved.get("data") or {}) else ClassificationConfig
        beside = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), "config.yaml")
        if os.path.isfile(beside):
            return VideoConfig if isinstance(load_config(beside), VideoConfig) else ClassificationConfig
        return VideoConfig if (model or "").startswith("video_") else ClassificationConfig
    if model and "." in model:
        from .hub import get_pretrained
        try:
            return VideoConfig if len(get_pretrained(model).input_size) == 4 else ClassificationConfig
        except ValueError:
            pass
    return VideoConfig if (model or "").startswith("video_") else ClassificationConfig
