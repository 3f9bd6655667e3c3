"""Training curves from a run's metrics.jsonl: ``python -m core.tools.plot outputs/<run> [outputs/<other> ...]``.

Writes curves.png in the first run folder (or --out): training loss per logged interval, lr, and validation
top-1 (or ``--metric``, e.g. ``knn_top1``) per epoch, one line per run, so runs (e.g. Video Swin vs its
single-frame 2D baseline) compare at a glance.
"""
from __future__ import annotations

import argparse
import os
from typing import Sequence

from core.engine.curves import plot_runs


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders holding metrics.jsonl")
    parser.add_argument("--out", default="curves.png", help="PNG to write (default: curves.png here)")
    parser.add_argument("--metric", default="top1", help="per-epoch metric of the third panel, e.g. knn_top1")
    args = parser.parse_args(argv)
    missing = [r for r in args.runs if not os.path.isfile(os.path.join(r, "metrics.jsonl"))]
    if missing:
        parser.error(f"no metrics.jsonl in {', '.join(missing)} (give run folders that have trained)")
    print(plot_runs(args.runs, args.out, args.metric))


if __name__ == "__main__":
    main()
