"""Classify videos: ``python -m video_swin.predict VIDEO [VIDEO ...] --checkpoint PATH [--topk 5] [--views 4x3]``.

Each video is cut into the test views of the checkpoint's recipe (clips x crops; clip length, frame interval,
crop size and normalisation from its saved config) and the view-averaged class probabilities are printed,
one line per video, with names from ``--classes`` or the run's classes.txt. A folder is searched for videos,
a quoted glob is expanded; a file that is missing or that decord cannot read is reported and the rest go on
(exit code 1 if any failed; 2 for an unusable checkpoint or option). Decoding runs in DataLoader workers.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any, Sequence

from torch.utils.data import DataLoader

from cli.kit import add_model_args, format_top, model_from_args, positive_int, report_error, report_problems
from core.engine.device import resolve_amp
from core.engine.files import write_json
from core.engine.inference import ToolError, class_names, expand_inputs, topk_rows
from core.video.config import VideoConfig, parse_views
from core.video.data import (
    VIDEO_EXTENSIONS,
    BrokenVideoWarning,
    collate_videos,
)
from core.video.views import classify, view_dataset


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("videos", nargs="+", metavar="VIDEO", help="video files, folders or quoted globs")
    add_model_args(p, batch_size=1)  # videos per forward pass, each of clips x crops views
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line (default: the run's "
                                                                   "classes.txt beside the checkpoint)")
    p.add_argument("--topk", type=positive_int, default=5)
    p.add_argument("--views", default="", metavar="CLIPSxCROPS",
                   help="test views, e.g. 4x3 or 1x1 (default: the recipe's data.num_clips x data.num_crops)")
    p.add_argument("--out", default="", metavar="JSON", help="also write the results (top-k and all scores) here")
    return p.parse_args(argv)




def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, VideoConfig)
        cfg = loaded.cfg
        classes = class_names(loaded.num_classes, args.checkpoint, args.classes, saved=loaded.classes)
        num_clips, num_crops = parse_views(args.views, cfg)
    except ToolError as e:
        return report_error(e)
    files, problems = expand_inputs(args.videos, VIDEO_EXTENSIONS)
    report_problems(problems)
    results: list[dict[str, Any]] = []
    failed = [{"video": item, "error": why} for item, why in problems]
    if files:
        ds = view_dataset(files, cfg, classes, num_clips, num_crops)
        loader = DataLoader(ds, batch_size=args.batch_size, num_workers=args.workers, collate_fn=collate_videos,
                            pin_memory=device.type == "cuda")
        with warnings.catch_warnings():  # reported below, once, with the reason
            warnings.simplefilter("ignore", BrokenVideoWarning)
            scores, errors = classify(loaded.model, loader, device, resolve_amp(cfg.train.amp, device),
                                      cfg.data.single_frame)
        for i, path in enumerate(files):
            if i in errors:
                print(f"cannot read {path}: {errors[i]}", file=sys.stderr)
                failed.append({"video": path, "error": errors[i]})
                continue
            top = topk_rows(scores[i], classes, args.topk)
            print(format_top(path, top), flush=True)
            results.append({"video": path, "top": top, "scores": scores[i].tolist()})
    print(f"{len(results)} video(s) classified with {num_clips}x{num_crops} views of {cfg.data.clip_len}x"
          f"{cfg.data.frame_interval} frames at {cfg.data.crop_size}px; {len(failed)} could not be read",
          file=sys.stderr)
    if args.out:
        write_json(args.out, {"checkpoint": args.checkpoint, "model": cfg.model.name, "recipe": loaded.recipe,
                              "views": f"{num_clips}x{num_crops}", "clip_len": cfg.data.clip_len,
                              "frame_interval": cfg.data.frame_interval, "crop_size": cfg.data.crop_size,
                              "results": results, "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
