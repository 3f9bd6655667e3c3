"""Swin features of an image folder: ``python -m core.extract_features --root DIR --checkpoint PATH --out DIR``.

Every image (a folder searched recursively, or ``--list FILE`` of paths) gets the evaluation preprocessing of
the checkpoint's recipe and goes through the model up to ``--stage`` (default: the last, after the final
norm, = ``forward_features``). ``<out>/features.npy`` holds one row per readable image, (N, C) with
``--pooling mean`` or (N, H', W', C) with ``--pooling none``; ``<out>/index.json`` names the image of each
row and the unreadable ones (reported, left out; exit code 1). Decoding runs in DataLoader workers.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader
from torchvision.datasets.folder import IMG_EXTENSIONS

from cli.kit import add_model_args, model_from_args, report_error
from core.classification.config import ClassificationConfig
from core.classification.images import ImageFiles, collate_images, image_transform
from core.engine.config import ConfigError
from core.engine.data import DataError
from core.engine.device import autocast, resolve_amp
from core.engine.files import atomic_target, write_json
from core.engine.inference import ToolError, check_stage, expand_inputs, stage_features


def image_list(list_file: str | None, root: str | None) -> tuple[list[str], list[tuple[str, str]]]:
    """Images of a list file (one path a line, relative to ``root`` or the list's folder) or of a folder tree."""
    if list_file:
        if not os.path.isfile(list_file):
            raise DataError(f"--list {list_file}: file not found")
        base = root or os.path.dirname(os.path.abspath(list_file))
        with open(list_file, encoding="utf-8") as f:
            items = [os.path.join(base, ln.strip()) for ln in f if ln.strip() and not ln.startswith("#")]
        return expand_inputs(items, IMG_EXTENSIONS)
    if root:
        if not os.path.isdir(root):
            raise DataError(f"--root {root}: not a folder")
        return expand_inputs([root], IMG_EXTENSIONS)
    raise ConfigError("give the images: --list FILE or --root DIR")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--list", default=None, metavar="FILE", help="one image path a line")
    p.add_argument("--root", default=None, metavar="DIR", help="folder searched recursively for images")
    add_model_args(p, batch_size=64)
    p.add_argument("--out", required=True, metavar="DIR", help="features.npy + index.json")
    p.add_argument("--stage", type=int, default=None, help="1-based stage (default: the last, after the final norm)")
    p.add_argument("--pooling", choices=("mean", "none"), default="mean")
    return p.parse_args(argv)


@torch.no_grad()
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        loaded, device = model_from_args(args, ClassificationConfig, need_head=False)
        stage = check_stage(args.stage, loaded.model)
        files, problems = image_list(args.list, args.root)
    except ToolError as e:
        return report_error(e)
    cfg = loaded.cfg
    failed = [{"image": item, "error": why} for item, why in problems]
    loader = DataLoader(ImageFiles(files, image_transform(cfg), cfg.data.in_chans), batch_size=args.batch_size,
                        num_workers=args.workers, collate_fn=collate_images)
    amp = resolve_amp(cfg.train.amp, device)
    rows, kept = [], []
    for batch in loader:
        failed += [{"image": files[i], "error": e} for i, e in sorted(batch["errors"].items())]
        if batch["x"] is not None:
            with autocast(device, amp):
                rows.append(stage_features(loaded.model, batch["x"].to(device), stage, args.pooling).float().cpu())
            kept += batch["index"].tolist()
    for f in failed:
        print(f"cannot read {f['image']}: {f['error']}", file=sys.stderr)
    feats = torch.cat(rows).numpy() if rows else np.zeros((0, loaded.model.num_features), np.float32)
    with atomic_target(os.path.join(args.out, "features.npy")) as tmp, open(tmp, "wb") as fh:
        np.save(fh, feats)
    write_json(os.path.join(args.out, "index.json"),
               {"checkpoint": args.checkpoint, "model": cfg.model.name, "recipe": loaded.recipe, "stage": stage,
                "pooling": args.pooling, "img_size": cfg.data.img_size, "shape": list(feats.shape),
                "images": [files[i] for i in kept], "failed": failed})
    print(f"{len(kept)} image(s) -> {os.path.join(args.out, 'features.npy')} {tuple(feats.shape)}; "
          f"{len(failed)} could not be read", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
