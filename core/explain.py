"""Show where an image model looks: ``python -m core.explain IMAGE [IMAGE ...] --checkpoint PATH --out DIR
[--method gradcam] [--target CLASS] [--stage N] [--save-maps]``.

Each image gets the evaluation preprocessing of the checkpoint's recipe (as ``core.predict``); the class-activation
map of the predicted class (or ``--target``, an index or a name) is computed by grad-cam on the final norm (or on
stage ``--stage``), mapped back onto the image at its own resolution and written as ``<out>/<stem>.png``, the
heatmap over the picture with the class named; ``--save-maps`` also writes ``<out>/<stem>.npy``, float32 (H, W)
in [0, 1]. Folders and quoted globs are expanded; an unreadable image is reported and the rest go on (exit code
1 if any failed; 2 for an unusable checkpoint or option).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.datasets.folder import IMG_EXTENSIONS

from .classification.config import ClassificationConfig
from .classification.images import eval_crop_box, image_transform, recipe_classes
from .engine.inference import (
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
from .nn.cam import caption, class_activation_maps, overlay, paste_back, upscale

__all__ = ["main"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders or quoted globs")
    add_model_args(p, batch_size=16, amp=False)  # gradients of the maps: fp32
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <stem>.png (and <stem>.npy)")
    add_cam_args(p)
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line")
    p.add_argument("--save-maps", action="store_true", help="also write each map as <out>/<stem>.npy")
    return p.parse_args(argv)


def read_image(path: str, channels: int) -> tuple[Image.Image, np.ndarray]:
    """(the image in the model's mode, its RGB pixels (H, W, 3) uint8); raises on an unreadable file."""
    with Image.open(path) as im:
        im.load()
        model_input = im.convert({1: "L", 3: "RGB"}.get(channels, "RGB"))
        return model_input, np.asarray(im.convert("RGB"))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, ClassificationConfig)
        cfg, model = loaded.cfg, loaded.model
        classes = class_names(loaded.num_classes, args.checkpoint, args.classes, recipe_classes(cfg), loaded.classes)
        stage, target = check_cam_args(args, model, classes)
    except ToolError as e:
        return report_error(e)
    files, problems = expand_inputs(args.images, IMG_EXTENSIONS)
    report_problems(problems)
    failed = len(problems)
    transform = image_transform(cfg)
    os.makedirs(args.out, exist_ok=True)
    done = 0
    stems = output_stems(files)
    for start in range(0, len(files), args.batch_size):
        batch = []
        for path in files[start:start + args.batch_size]:
            try:
                im, rgb = read_image(path, cfg.data.in_chans)
                batch.append((path, transform(im), rgb))
            except Exception as e:  # noqa: BLE001 -- PIL raises many kinds on broken files
                print(f"cannot read {path}: {type(e).__name__}: {(str(e).strip().splitlines() or [''])[0]}",
                      file=sys.stderr)
                failed += 1
        if not batch:
            continue
        x = torch.stack([b[1] for b in batch]).to(device)
        res = class_activation_maps(model, x, method=args.method, targets=target, stage=stage)
        probs = res.logits.softmax(-1).cpu()
        for (path, _, rgb), m, cls, p in zip(batch, res.maps.cpu(), res.targets, probs):
            resized, top, left = eval_crop_box(cfg, rgb.shape[:2])
            full = paste_back(m, resized, top, left, rgb.shape[:2]).numpy()
            stem = os.path.join(args.out, stems[path])
            label = f"{classes[cls]} {100 * float(p[cls]):.0f}%"
            Image.fromarray(caption(upscale(overlay(rgb, full)), f"{args.method}: {label}")).save(stem + ".png")
            if args.save_maps:
                np.save(stem + ".npy", full.astype(np.float32))
            print(f"{path}: {label} -> {stem}.png", flush=True)
            done += 1
    print(f"{done} image(s) explained with {args.method} at stage {stage}; {failed} could not be read",
          file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
