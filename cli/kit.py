"""The commands' kit: the options every inference tool shares (--checkpoint / --model, --opt, --device, --amp,
--workers, the CAM options), one-line error reports and the printed rows; the loading itself is library code
(:mod:`core.engine.inference`)."""
from __future__ import annotations

import argparse
import sys
from typing import Any, Iterable, Sequence

import torch
import torch.nn as nn

from core.engine.config import ConfigError
from core.engine.inference import LoadedModel, check_stage, check_target, load_for_inference, pick_device
from core.engine.launch import error_kind

__all__ = ["add_model_args", "add_amp_arg", "add_cam_args", "check_cam_args", "model_from_args", "model_opts",
           "positive_int", "format_top", "report_error", "report_problems"]


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--topk 0`` or ``-1`` is refused in one line)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def format_top(path: str, top: Sequence[dict[str, Any]]) -> str:
    """One line: ``path: cls 93.2%, cls 4.1%, ...``."""
    return f"{path}: " + ", ".join(f"{t['class']} {100 * t['prob']:.1f}%" for t in top)


def add_model_args(p: Any, batch_size: int | None = None, amp: bool = True) -> None:
    """--checkpoint, --model, --opt, --device, --workers of every tool, --amp of those that autocast, and
    --batch-size when given a default."""
    p.add_argument("--checkpoint", default=None, help="ours (a run's best.pth / last.pth), official, timm or "
                                                       "torchvision weights; leave out with --model <arch>.<tag>")
    p.add_argument("--model", default=None, metavar="NAME",
                   help="registered weights <arch>.<tag> (downloaded and cached; core.list_pretrained() lists them), "
                        "or the model name when the checkpoint holds no recipe (official / timm / torchvision files)")
    p.add_argument("--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override recipe values, e.g. data.crop_size=256 (any config field)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    if amp:
        add_amp_arg(p)
    p.add_argument("--workers", type=int, default=2, help="DataLoader decoding workers (per process)")
    if batch_size is not None:
        p.add_argument("--batch-size", type=int, default=batch_size, help="items per forward pass")


def report_problems(problems: Iterable[tuple[str, str]]) -> None:
    """One ``cannot read ITEM: WHY`` line on stderr per input that could not be found or opened."""
    for item, why in problems:
        print(f"cannot read {item}: {why}", file=sys.stderr)


def model_from_args(args: Any, schema: type, device: torch.device | None = None,
                    **kwargs: Any) -> tuple[LoadedModel, torch.device]:
    """:func:`load_model` from the parsed :func:`add_model_args` options, on the device they name; ``--model
    <arch>.<tag>`` without ``--checkpoint``: the registered weights with their recipe and class names."""
    device = device or pick_device(args.device)
    loaded, args.checkpoint = load_for_inference(args.checkpoint, schema, model=args.model, opts=model_opts(args),
                                                 device=device, **kwargs)
    return loaded, device


def add_amp_arg(p: Any) -> None:
    """--amp: the autocast precision of a tool (sets train.amp; :func:`model_opts`)."""
    p.add_argument("--amp", default=None, choices=["auto", "none", "bf16", "fp16"],
                   help="autocast precision (default: the checkpoint's train.amp; auto = bf16 where the device "
                        "has native bf16)")


def model_opts(args: Any) -> list[str]:
    """The recipe overrides of :func:`add_model_args` options: ``--opt`` and ``--amp`` (as ``train.amp``)."""
    return [*args.opt, f"train.amp={args.amp}"] if getattr(args, "amp", None) else list(args.opt)


def report_error(e: Exception) -> int:
    """Print a tool error as one line (config / checkpoint / data) and return exit code 2."""
    print(f"{error_kind(e)} error: {e}", file=sys.stderr)
    return 2


def add_cam_args(p: argparse.ArgumentParser) -> None:
    """The class-activation-map tools' --method, --target and --stage."""
    from core.nn.cam import METHODS
    p.add_argument("--method", default="gradcam", help=f"grad-cam method: {', '.join(METHODS)}")
    p.add_argument("--target", default=None, metavar="CLASS", help="class to explain, index or name "
                                                                     "(default: the predicted one)")
    p.add_argument("--stage", type=int, default=None, help="stage whose output is explained, 1-based "
                                                           "(default: the last, after the final norm)")


def check_cam_args(args: argparse.Namespace, model: nn.Module, classes: Sequence[str]) -> tuple[int, int | None]:
    """(stage, target) of :func:`add_cam_args`, each checked against the model and its classes (ConfigError)."""
    from core.nn.cam import cam_method
    try:
        cam_method(args.method, model.ndim)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    return check_stage(args.stage, model), check_target(args.target, classes)
