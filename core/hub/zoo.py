"""The model zoo table (docs/zoo.md), generated from the registry: ``python -m core.hub [--check]``."""
from __future__ import annotations

import argparse
from pathlib import Path

from .registry import Pretrained, get_pretrained, list_pretrained

FAMILIES = ("Swin", "Swin V2", "Swin-MLP", "Video Swin", "MoBY", "SimMIM")
SOURCES = {
    "microsoft/Swin-Transformer": "https://github.com/microsoft/Swin-Transformer/blob/main/MODELHUB.md",
    "SwinTransformer/Video-Swin-Transformer": "https://github.com/SwinTransformer/Video-Swin-Transformer",
    "SwinTransformer/Transformer-SSL": "https://github.com/SwinTransformer/Transformer-SSL",
    "microsoft/SimMIM": "https://github.com/microsoft/SimMIM",
    "torchvision": "https://pytorch.org/vision/stable/models.html",
}
ZOO = Path(__file__).resolve().parents[2] / "docs" / "zoo.md"
HEADER = """# Pretrained weights

Generated from `core/hub/entries.py` by `python -m core.hub` (a test checks that this file is current).
Python: `core.create_model("<name>", pretrained=True)` (or `core.create_model("<arch>", pretrained="<tag>")`),
`core.pretrained_cfg("<name>")`, `core.list_pretrained("swin_v2_*")`, `core.class_names("<label set>")`.
Files are cached in `$TORCH_HOME/hub/checkpoints` (Hugging Face hub entries: the hub's cache);
`SWIN_SUITE_WEIGHTS_MIRROR=http://host:port` fetches every url from that server instead, path kept.
Accuracy is the release's (top-1 / top-5, %); for a checkpoint without a classifier, that of its fine-tuned or
linear-probe model. *manual*: hosted on Google Drive, which no program can fetch: download it by hand and put it
at the cache path the error names (`core.hub.cache_path("<name>")`).
"""


def command(entry: Pretrained) -> str:
    """The one-line command that uses the weights."""
    if entry.task == "pretrain":
        return f"`--opt model.pretrained={entry.name}`"
    if entry.task == "video":
        return f"`python -m video_swin.predict CLIP --model {entry.name}`"
    return f"`python -m core.predict IMAGE --model {entry.name}`"


def _input(entry: Pretrained) -> str:
    size = "x".join(str(s) for s in entry.input_size[1:])
    if len(entry.input_size) == 4:
        size = f"{entry.input_size[1]}x{entry.frame_interval} frames, {'x'.join(map(str, entry.input_size[2:]))}"
        if entry.test_views:
            size += f", {entry.test_views} views"
    return size


def _model(entry: Pretrained) -> str:
    over = ", ".join(f"{k}={v}" for k, v in entry.overrides.items())
    return f"`{entry.model}`" + (f" ({over})" if over else "")


def _accuracy(entry: Pretrained) -> str:
    if entry.top1 is None:
        return "-"
    acc = f"{entry.top1}" + (f" / {entry.top5}" if entry.top5 is not None else "")
    return f"{acc} ({entry.metric})" if entry.metric else acc


def _source(entry: Pretrained) -> str:
    where = f"[{entry.source}]({SOURCES[entry.source]})" if entry.source in SOURCES else entry.source
    if entry.manual:
        where += f", [manual]({entry.url})"
    elif entry.url is None:
        where += f", HF hub `{entry.hf_hub_id}`"
    return where


def zoo_table() -> str:
    """Every registered entry as markdown, one table per family: accuracy, input, source, command."""
    names = list_pretrained()
    lines = [HEADER]
    for family in FAMILIES:
        entries = [get_pretrained(n) for n in names if get_pretrained(n).family == family]
        if not entries:
            continue
        lines += [f"## {family} ({len(entries)})", "",
                  "| name | model | input | classes | accuracy | source | use |", "|---|---|---|---|---|---|---|"]
        for e in entries:
            classes = f"{e.num_classes} ({e.labels})" if e.num_classes else "- (backbone)"
            lines.append(f"| `{e.name}` | {_model(e)} | {_input(e)} | {classes} | {_accuracy(e)} | {_source(e)} "
                         f"| {command(e)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write docs/zoo.md, or with --check say whether it is current."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--check", action="store_true", help="exit 1 if docs/zoo.md differs from the registry")
    p.add_argument("--out", type=Path, default=ZOO)
    args = p.parse_args(argv)
    text = zoo_table()
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        print(f"{args.out}: {'current' if current == text else 'stale: run python -m core.hub'}")
        return 0 if current == text else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(list_pretrained())} entries)")
    return 0

