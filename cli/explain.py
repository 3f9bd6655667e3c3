"""Show where a video model looks: ``swin-explain`` / ``python -m video_swin.explain VIDEO [VIDEO ...] --checkpoint PATH
--out DIR [--method gradcam] [--target CLASS] [--stage N] [--layer output] [--smooth 0.5] [--view N] [--save-maps]``.

Each video is cut into the test views of the checkpoint's recipe (clips x crops, as ``video_swin.predict``); for
view ``--view`` (clip-major: view = clip * crops + crop) the class-activation map of the predicted class (or
``--target``) is computed by grad-cam over the whole clip on stage ``--stage``'s output (default: the last stage but
one, the best localising choice measured by ``bench.explain``), one map per frame (a token spans the temporal patch
size in frames), smoothed from the token grid to pixels and put back where the crop came from in the video's frames.
Written: ``<out>/<stem>.gif`` (or ``.mp4``), an animation of the clip's frames beside their maps and the maps over
them, in step, and ``<out>/<stem>.png``, a contact sheet of ``--sheet-frames`` frames (input, map, overlay), both
titled with the class, its probability and how the maps were made. ``--save-maps`` also writes ``<out>/<stem>.npy``,
the same maps, float32 (T, H, W) in [0, 1] at the video's frame size (zero outside the crop). A file that is missing
or that the decoder cannot read is reported and the rest go on (exit code 1 if any failed; 2 for an unusable
checkpoint or option).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from cli.kit import add_cam_args, add_model_args, check_cam_args, model_from_args, report_error, report_problems
from core.engine.config import ConfigError
from core.engine.inference import ToolError, class_names, expand_inputs, output_stems
from core.explainer import Explainer, InputError, add_map_args
from core.nn.cam import default_method
from core.video.config import VideoConfig, parse_views
from core.video.data import VIDEO_EXTENSIONS


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, folders or quoted globs")
    add_model_args(p, amp=False)  # gradients of the maps: fp32
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <stem>.gif / .mp4, .png (and .npy)")
    add_cam_args(p)
    add_map_args(p)
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line (default: the run's "
                                                                   "classes.txt beside the checkpoint)")
    p.add_argument("--views", default="", metavar="CLIPSxCROPS",
                   help="test views, e.g. 4x3 or 1x1 (default: the recipe's data.num_clips x data.num_crops)")
    p.add_argument("--view", type=int, default=0, help="which test view to explain, 0-based, clip-major")
    p.add_argument("--format", choices=("gif", "mp4"), default="gif", help="the animation's format")
    p.add_argument("--sheet-frames", type=int, default=4, help="frames on the contact sheet")
    p.add_argument("--save-maps", action="store_true", help="also write each clip's maps as <out>/<stem>.npy")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, VideoConfig)
        cfg, model = loaded.cfg, loaded.model
        if cfg.data.single_frame or model.ndim != 3:
            raise ConfigError(f"{args.checkpoint} is a 2D model on single frames: explain frames with core.explain")
        classes = class_names(loaded.num_classes, args.checkpoint, args.classes, saved=loaded.classes)
        args.method = args.method or default_method(model.ndim)
        _, target = check_cam_args(args, model, classes)
        num_clips, num_crops = parse_views(args.views, cfg)
        if not 0 <= args.view < num_clips * num_crops:
            raise ConfigError(f"--view {args.view}: {num_clips}x{num_crops} test views are 0 to "
                              f"{num_clips * num_crops - 1}")
        explainer = Explainer(loaded, classes, device, method=args.method, stage=args.stage, layer=args.layer,
                              smooth=args.smooth, target=target, views=(num_clips, num_crops), view=args.view)
    except ValueError as e:
        return report_error(ConfigError(str(e)))
    except ToolError as e:
        return report_error(e)
    files, problems = expand_inputs(args.videos, VIDEO_EXTENSIONS)
    report_problems(problems)
    failed, done, how = len(problems), 0, ""
    os.makedirs(args.out, exist_ok=True)
    stems = output_stems(files)
    for path in files:
        try:
            ex = explainer.explain_video(path)
        except InputError as e:
            print(e, file=sys.stderr)
            failed += 1
            continue
        stem = os.path.join(args.out, stems[path])
        anim = ex.save(stem, args.format, args.sheet_frames, args.save_maps)[0]
        print(f"{path}: {ex.label} -> {anim}, {stem}.png", flush=True)
        done, how = done + 1, ex.how
    print(f"{done} video(s) explained{' with ' + how if how else ''}, view {args.view} of {num_clips}x{num_crops}; "
          f"{failed} could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
