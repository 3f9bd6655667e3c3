"""Classify images: ``python -m core.predict IMAGE [IMAGE ...] --checkpoint PATH [--topk 5] [--out JSON]``.

Each image gets the evaluation preprocessing of the checkpoint's recipe (resize, centre crop, normalisation
from its saved config; the digits recipe resizes the whole image as its data set does) and the top-k classes
are printed with their probabilities, one line per image. Names come from ``--classes``, a classes.txt beside
the checkpoint, or the recipe's data (digits, the ImageFolder's class folders). Folders and quoted globs are
expanded; an unreadable image is reported and the rest go on (exit code 1 if any failed).
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

import torch
from torch.utils.data import DataLoader
from torchvision.datasets.folder import IMG_EXTENSIONS

from cli.kit import add_model_args, format_top, model_from_args, positive_int, report_error, report_problems
from core.classification.config import ClassificationConfig
from core.classification.images import ImageFiles, collate_images, image_transform, recipe_classes
from core.engine.device import autocast, resolve_amp
from core.engine.files import write_json
from core.engine.inference import ToolError, class_names, expand_inputs, topk_rows

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or quoted globs")
    add_model_args(p, batch_size=32)
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line")
    p.add_argument("--topk", type=positive_int, default=5)
    p.add_argument("--out", default="", metavar="JSON", help="also write the results (top-k and all scores) here")
    return p.parse_args(argv)


@torch.no_grad()
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, ClassificationConfig)
        cfg = loaded.cfg
        classes = class_names(loaded.num_classes, args.checkpoint, args.classes, recipe_classes(cfg), loaded.classes)
    except ToolError as e:
        return report_error(e)
    files, problems = expand_inputs(args.images, IMG_EXTENSIONS)
    failed = [{"image": item, "error": why} for item, why in problems]
    report_problems(problems)
    scores: dict[int, torch.Tensor] = {}
    errors: dict[int, str] = {}
    loader = DataLoader(ImageFiles(files, image_transform(cfg), cfg.data.in_chans), batch_size=args.batch_size,
                        num_workers=args.workers, collate_fn=collate_images)
    amp = resolve_amp(cfg.train.amp, device)
    for batch in loader:
        errors.update(batch["errors"])
        if batch["x"] is not None:
            with autocast(device, amp):
                p = loaded.model(batch["x"].to(device)).float().softmax(-1).cpu()
            scores.update(zip(batch["index"].tolist(), p))
    results = []
    for i, path in enumerate(files):
        if i in errors:
            print(f"cannot read {path}: {errors[i]}", file=sys.stderr)
            failed.append({"image": path, "error": errors[i]})
            continue
        top = topk_rows(scores[i], classes, args.topk)
        print(format_top(path, top))
        results.append({"image": path, "top": top, "scores": scores[i].tolist()})
    print(f"{len(results)} image(s) classified at {cfg.data.img_size}px; {len(failed)} could not be read",
          file=sys.stderr)
    if args.out:
        write_json(args.out, {"checkpoint": args.checkpoint, "model": cfg.model.name, "recipe": loaded.recipe,
                              "classes": classes, "results": results, "failed": failed})
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
