"""Show where a video model looks: ``python -m video_swin.explain VIDEO [VIDEO ...] --checkpoint PATH --out DIR
[--method gradcam] [--target CLASS] [--stage N] [--view N] [--save-maps]``.

Each video is cut into the test views of the checkpoint's recipe (clips x crops, as ``video_swin.predict``); for
view ``--view`` (clip-major: view = clip * crops + crop) the class-activation map of the predicted class (or
``--target``) is computed by grad-cam over the whole clip, one map per frame (a token spans the temporal patch
size in frames), put back where the crop came from in the video's frames and written as ``<out>/<stem>.gif``
(or ``.mp4``), the heatmap over every frame of the clip, and ``<out>/<stem>.png``, a contact sheet of a few
frames. ``--save-maps`` also writes ``<out>/<stem>.npy``, float32 (T, H, W) in [0, 1] at the video's frame
size (zero outside the crop). A file that is missing or that decord cannot read is reported and the rest go on
(exit code 1 if any failed; 2 for an unusable checkpoint or option).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np
from PIL import Image
from torchvision import tv_tensors

from core.engine.config import ConfigError
from core.engine.inference import (
    ToolError,
    add_cam_args,
    add_model_args,
    check_cam_args,
    class_names,
    expand_inputs,
    model_from_args,
    output_stems,
    report_error,
    report_problems,
)
from core.nn.cam import caption, class_activation_maps, overlay, paste_back, upscale
from core.video.config import VideoConfig, parse_views
from core.video.data import VIDEO_EXTENSIONS, VideoDataset
from core.video.transforms import build_video_transform, test_view_box


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, folders or quoted globs")
    add_model_args(p, amp=False)  # gradients of the maps: fp32
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <stem>.gif / .mp4, .png (and .npy)")
    add_cam_args(p)
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line (default: the run's "
                                                                   "classes.txt beside the checkpoint)")
    p.add_argument("--views", default="", metavar="CLIPSxCROPS",
                   help="test views, e.g. 4x3 or 1x1 (default: the recipe's data.num_clips x data.num_crops)")
    p.add_argument("--view", type=int, default=0, help="which test view to explain, 0-based, clip-major")
    p.add_argument("--format", choices=("gif", "mp4"), default="gif", help="the animated heatmap's format")
    p.add_argument("--sheet-frames", type=int, default=4, help="frames on the contact sheet")
    p.add_argument("--save-maps", action="store_true", help="also write each clip's maps as <out>/<stem>.npy")
    return p.parse_args(argv)


def write_animation(path: str, frames: Sequence[np.ndarray], fmt: str, fps: int = 4) -> str:
    """Frames (H, W, 3) uint8 as ``path.gif`` (looping) or ``path.mp4``; returns the file written."""
    if fmt == "mp4":
        from core.video.synthetic import write_mp4
        stack = np.stack(frames)
        stack = stack[:, :stack.shape[1] // 2 * 2, :stack.shape[2] // 2 * 2]   # yuv420p wants even sizes
        write_mp4(path + ".mp4", stack, fps=fps)
        return path + ".mp4"
    first, *rest = [Image.fromarray(f) for f in frames]
    first.save(path + ".gif", save_all=True, append_images=rest, duration=int(1000 / fps), loop=0)
    return path + ".gif"


def contact_sheet(frames: Sequence[np.ndarray], names: Sequence[str], count: int, title: str) -> np.ndarray:
    """``count`` evenly spaced frames side by side, each captioned, under a title line."""
    picks = np.unique(np.linspace(0, len(frames) - 1, max(1, min(count, len(frames)))).round().astype(int))
    gap = np.zeros((frames[0].shape[0] + 14, 4, 3), np.uint8)
    row = [part for i in picks for part in (caption(frames[i], names[i]), gap)][:-1]
    return caption(np.concatenate(row, axis=1), title)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, VideoConfig)
        cfg, model = loaded.cfg, loaded.model
        if cfg.data.single_frame or model.ndim != 3:
            raise ConfigError(f"{args.checkpoint} is a 2D model on single frames: explain frames with core.explain")
        classes = class_names(loaded.num_classes, args.checkpoint, args.classes, saved=loaded.classes)
        stage, target = check_cam_args(args, model, classes)
        num_clips, num_crops = parse_views(args.views, cfg)
        if not 0 <= args.view < num_clips * num_crops:
            raise ConfigError(f"--view {args.view}: {num_clips}x{num_crops} test views are 0 to "
                              f"{num_clips * num_crops - 1}")
    except ToolError as e:
        return report_error(e)
    files, problems = expand_inputs(args.videos, VIDEO_EXTENSIONS)
    report_problems(problems)
    failed = len(problems)
    d = cfg.data
    sampler = VideoDataset([(f, 0) for f in files], classes, clip_len=d.clip_len, frame_interval=d.frame_interval,
                           num_clips=num_clips, test_mode=True, check_files=False, decoder=d.decoder)
    transform = build_video_transform("test", d.crop_size, None, num_crops)
    clip, crop = divmod(args.view, num_crops)
    os.makedirs(args.out, exist_ok=True)
    done = 0
    stems = output_stems(files)
    for path in files:
        try:
            raw = sampler.load_clips(path)[clip]                     # (T, C, H, W) uint8
        except Exception as e:  # noqa: BLE001 -- decord raises DECORDError / RuntimeError on broken files
            print(f"cannot read {path}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}",
                  file=sys.stderr)
            failed += 1
            continue
        x = transform(tv_tensors.Video(raw))[crop][None].to(device)   # (1, C, T, h, w)
        res = class_activation_maps(model, x, method=args.method, targets=target, stage=stage)
        cls, prob = res.targets[0], float(res.logits.softmax(-1)[0, res.targets[0]])
        size = tuple(raw.shape[-2:])
        resized, top, left = test_view_box(size, d.crop_size, num_crops, crop)
        maps = paste_back(res.maps[0].cpu(), resized, top, left, size).numpy()    # (T, H, W)
        frames = raw.permute(0, 2, 3, 1).numpy()
        if frames.shape[-1] == 1:
            frames = frames.repeat(3, -1)
        pictures = [upscale(overlay(f, m), 128) for f, m in zip(frames, maps)]
        stem = os.path.join(args.out, stems[path])
        label = f"{classes[cls]} {100 * prob:.0f}%"
        anim = write_animation(stem, pictures, args.format)
        names = [f"clip frame {i}" for i in range(len(pictures))]
        Image.fromarray(contact_sheet(pictures, names, args.sheet_frames,
                                      f"{args.method}, view {args.view}: {label}")).save(stem + ".png")
        if args.save_maps:
            np.save(stem + ".npy", maps.astype(np.float32))
        print(f"{path}: {label} -> {anim}, {stem}.png", flush=True)
        done += 1
    print(f"{done} video(s) explained with {args.method} at stage {stage}, view {args.view} of {num_clips}x"
          f"{num_crops}; {failed} could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
