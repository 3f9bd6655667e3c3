"""Serve a demo page on this machine: ``python -m video_swin.demo --checkpoint RUN/best.pth [--port 7860]`` (or
``--model <arch>.<tag>``, registered weights; the command is :mod:`cli.demo`).

Open http://127.0.0.1:7860, drop a video or an image, and the page shows the top-5 classes with their names, the
class-activation map of the first (an animation of a clip's frames beside their maps, or the picture) and the time it
took. An image or a video model, on the CPU or the GPU (``--device``), in this one process. A file it cannot read,
a video of one frame or a file over ``--max-mb`` gives a message on the page and the server keeps serving.
Needs Gradio: ``pip install .[demo]``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from cli.kit import add_model_args, report_error
from core.demo_app import DEFAULT_PORT, process_age, require_gradio, serve
from core.engine.config import ConfigError
from core.engine.inference import ToolError
from core.explainer import Explainer
from core.nn.cam import DEFAULT_LAYER, DEFAULT_SMOOTH, LAYERS


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_args(p, amp=False)
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="the page's port on localhost")
    p.add_argument("--host", default="127.0.0.1", help="the address served (default: this machine only)")
    p.add_argument("--max-mb", type=int, default=200, help="larger uploads are refused with a message")
    p.add_argument("--classes", default=None, metavar="FILE", help="class names, one a line")
    p.add_argument("--method", default=None, help="grad-cam method of the maps (default: gradcam for images, "
                                                   "hirescam for clips)")
    p.add_argument("--stage", type=int, default=None, help="stage explained (default: the last but one)")
    p.add_argument("--layer", default=DEFAULT_LAYER, choices=LAYERS, help="the stage's output or its last block")
    p.add_argument("--smooth", type=float, default=DEFAULT_SMOOTH, help="Gaussian sigma in tokens (0: none)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require_gradio()
    except ImportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        explainer = Explainer.from_checkpoint(args.checkpoint, model=args.model, device=args.device, opts=args.opt,
                                              classes_file=args.classes, method=args.method, stage=args.stage,
                                              layer=args.layer, smooth=args.smooth)
    except ValueError as e:
        return report_error(ConfigError(str(e)))
    except ToolError as e:
        return report_error(e)
    page = serve(explainer, args.port, args.host, args.max_mb, block=False)
    age = process_age()
    ready = f"ready {age:.1f} s after the command started; " if age is not None else ""
    print(f"{explainer.cfg.model.name} ({'video' if explainer.is_video else 'image'} model, "
          f"{len(explainer.classes)} classes) on {explainer.device}; serving http://{args.host}:{args.port} "
          f"({ready}Ctrl-C stops)", flush=True)
    try:
        page.block_thread()
    except KeyboardInterrupt:
        page.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
