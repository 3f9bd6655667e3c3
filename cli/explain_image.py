"""Show where an image model looks: ``swin-explain-image`` / ``python -m core.explain IMAGE [IMAGE ...] --checkpoint PATH
--out DIR [--method gradcam] [--target CLASS] [--stage N] [--layer output] [--smooth 0.5] [--save-maps]``.

Each image gets the evaluation preprocessing of the checkpoint's recipe (as ``core.predict``); the class-activation
map of the predicted class (or ``--target``, an index or a name) is computed by grad-cam on stage ``--stage``'s output
(default: the last stage but one, the best localising choice measured by ``bench.explain``), smoothed from the token
grid to pixels, put back onto the image at its own resolution and written as ``<out>/<stem>.png``: the image, the map
and the map over the image side by side, titled with the class, its probability and how the map was made.
``--save-maps`` also writes ``<out>/<stem>.npy``, the same map, float32 (H, W) in [0, 1]. Folders and quoted globs
are expanded; an unreadable image is reported and the rest go on (exit code 1 if any failed; 2 for an unusable
checkpoint or option).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from torchvision.datasets.folder import IMG_EXTENSIONS

from cli.kit import add_cam_args, add_model_args, check_cam_args, model_from_args, report_error, report_problems
from core.classification.config import ClassificationConfig
from core.classification.images import recipe_classes
from core.engine.config import ConfigError
from core.engine.inference import ToolError, class_names, expand_inputs, output_stems
from core.explainer import Explainer, InputError, add_map_args
from core.nn.cam import default_method

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or quoted globs")
    add_model_args(p, batch_size=16, amp=False)  # gradients of the maps: fp32
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <stem>.png (and <stem>.npy)")
    add_cam_args(p)
    add_map_args(p)
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line")
    p.add_argument("--save-maps", action="store_true", help="also write each map as <out>/<stem>.npy")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, ClassificationConfig)
        classes = class_names(loaded.num_classes, args.checkpoint, args.classes, recipe_classes(loaded.cfg),
                              loaded.classes)
        args.method = args.method or default_method(loaded.model.ndim)
        _, target = check_cam_args(args, loaded.model, classes)
        explainer = Explainer(loaded, classes, device, method=args.method, stage=args.stage, layer=args.layer,
                              smooth=args.smooth, target=target)
    except ValueError as e:
        return report_error(ConfigError(str(e)))
    except ToolError as e:
        return report_error(e)
    files, problems = expand_inputs(args.images, IMG_EXTENSIONS)
    report_problems(problems)
    failed, done, how = len(problems), 0, ""
    os.makedirs(args.out, exist_ok=True)
    stems = output_stems(files)
    for start in range(0, len(files), args.batch_size):
        for path, ex in zip(files[start:start + args.batch_size],
                            explainer.explain_images(files[start:start + args.batch_size])):
            if isinstance(ex, InputError):
                print(ex, file=sys.stderr)
                failed += 1
                continue
            ex.save(os.path.join(args.out, stems[path]), save_maps=args.save_maps)
            print(f"{path}: {ex.label} -> {os.path.join(args.out, stems[path])}.png", flush=True)
            done, how = done + 1, ex.how
    print(f"{done} image(s) explained{' with ' + how if how else ''}; {failed} could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
