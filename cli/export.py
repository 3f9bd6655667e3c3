"""Export a trained model: ``python -m core.export [MODEL] --checkpoint PATH --format onnx|pt2|timm|hf
[--input 1 3 224 224] [--dynamic-batch]``.

A checkpoint of ours names its model and its input size in its saved recipe: MODEL and --input default to them
(``data.crop_size`` or ``data.img_size``, and ``data.clip_len`` for clips); other checkpoints need MODEL, and
--input defaults to 224 (clips: 32 x 224 x 224).

onnx / pt2 trace the model at the given input size (torch.onnx / torch.export) after one eager call at that
size: the shifted-window masks, relative position indices and each block's folded attention bias (position bias
+ mask) are stored in the graph as constants (no ops that build them), so the exported model accepts exactly
that spatial size (and channel count); the batch size too, unless --dynamic-batch.
timm / hf write the weights in timm's or transformers' layout (2D Swin), for users of those libraries.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from core.export import FORMATS, SUFFIX, export, export_model


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=None, help="registered model name, e.g. swin_t, video_swin_t, "
                                                          "swin_mlp_t_c24 (default: the checkpoint's recipe's)")
    p.add_argument("--checkpoint", required=True, help="weights: ours (a run's best.pth), timm, torchvision, official, "
                                                      "transformers")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--input", type=int, nargs="+", default=None,
                   help="input shape B C H W (video: B C T H W) the graph is traced at (onnx, pt2); default: the "
                        "size the checkpoint's recipe trained at, else 1 3 224 224")
    p.add_argument("--dynamic-batch", action="store_true", help="any batch size (onnx, pt2)")
    p.add_argument("--kwargs", default=None, help="create_model overrides as a YAML mapping "
                                                  "(default: model.kwargs of the checkpoint's recipe)")
    p.add_argument("--out", default=None, help="output file (default: beside the checkpoint, <model>_<format>.<suffix>)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        model, args.model, recipe_shape = export_model(args.model, args.checkpoint, args.kwargs)
        args.input = args.input or recipe_shape
        out = Path(args.out or Path(args.checkpoint).with_name(f"{args.model}_{args.format}{SUFFIX[args.format]}"))
        export(model, args.format, out, args.input, args.dynamic_batch)
    except (ValueError, KeyError, OSError, RuntimeError) as e:
        print(f"error: {e}".splitlines()[0], file=sys.stderr)
        return 2
    print(f"wrote {out} ({args.format}; input {' x '.join(map(str, args.input))}"
          f"{', any batch' if args.dynamic_batch and args.format in ('onnx', 'pt2') else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
