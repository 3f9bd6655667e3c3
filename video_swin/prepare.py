"""Re-encode a video data set for fast training: ``python -m video_swin.prepare --root SRC --out DST``.

    python -m video_swin.prepare --root /data/k400 --out /data/k400_320 --list train.txt val.txt --workers 16
    python -m video_swin.prepare --root /data/k400 --scan-only          # report what would be done, write nothing

Every readable video (those of the list files / official CSVs, else every video under SRC) is decoded and written to
the same relative path under DST as H.264 with its short side at most ``--short-side`` px and a keyframe every
``--keyint`` frames, so a training clip decodes small frames from a nearby keyframe. The list files are written to
DST without the bad entries (CSVs are copied: the reader drops missing files). Resumable: finished files are kept.
Unreadable, empty and too-short files are named; the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Sequence

from core.engine.files import atomic_write_text
from core.video.prepare import list_entries, prepare, scan_videos


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="source folder (class folders, or the root of the list files' paths)")
    p.add_argument("--out", default=None, help="output folder (required unless --scan-only)")
    p.add_argument("--list", nargs="*", default=[], metavar="FILE",
                   help="list files (path label) or official CSVs; default: every video under --root")
    p.add_argument("--short-side", type=int, default=320, help="scale down to this short side (0 = keep the size)")
    p.add_argument("--keyint", type=int, default=8, help="frames between keyframes")
    p.add_argument("--min-frames", type=int, default=2, help="shorter videos are reported as bad")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--scan-only", action="store_true", help="decode and report, write nothing")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if not os.path.isdir(args.root):
        p.error(f"--root {args.root}: not a folder")
    if not args.scan_only and not args.out:
        p.error("--out is required (or --scan-only)")
    if args.out and os.path.abspath(args.out) == os.path.abspath(args.root):
        p.error("--out must differ from --root (the sources are read while the outputs are written)")
    for name, value, low in (("--short-side", args.short_side, 0), ("--keyint", args.keyint, 1),
                             ("--min-frames", args.min_frames, 1), ("--workers", args.workers, 1)):
        if value < low:
            p.error(f"{name} {value}: expected >= {low}")
    missing = [f for f in args.list if not os.path.isfile(f)]
    if missing:
        p.error(f"--list: not a file: {', '.join(missing)}")
    return args


def _csv_paths(path: str, root: str) -> list[str]:
    """The files an official Kinetics CSV names, as they lie under root (``<label>/<youtube_id>_<start>_<end>.*``)."""
    from core.video.data import parse_kinetics_csv
    samples, _ = parse_kinetics_csv(path, root)
    return [os.path.relpath(s[0], root) for s in samples]


def check_settings(out: str, settings: dict) -> str:
    """'' when ``out`` is new or was prepared with the same settings (recorded in ``<out>/prepare.json``), else why
    not: a rerun must not mix files of two sizes."""
    path = os.path.join(out, "prepare.json")
    if not os.path.isfile(path):
        return ""
    with open(path) as f:
        old = json.load(f)
    changed = [f"--{k.replace('_', '-')} {old.get(k)} -> {v}" for k, v in settings.items() if old.get(k) != v]
    return (f"{out} was prepared with other settings ({'; '.join(changed)}): use another --out, or the same settings "
            f"to continue it") if changed else ""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = {"short_side": args.short_side, "keyint": args.keyint, "min_frames": args.min_frames}
    if args.out:
        problem = check_settings(args.out, settings)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 2
    lists = {f: (None if f.endswith(".csv") else list_entries(f)) for f in args.list}
    if lists:
        rels = [r for f, entries in lists.items() for r in (_csv_paths(f, args.root) if entries is None
                                                           else [e[0] for e in entries])]
    else:
        rels = scan_videos(args.root)
    report = prepare(args.root, args.out or "", rels, short_side=args.short_side, keyint=args.keyint,
                     min_frames=args.min_frames, workers=args.workers, scan_only=args.scan_only,
                     progress=not args.no_progress)
    bad = {o.rel for o in report.bad}
    if not args.scan_only:
        atomic_write_text(os.path.join(args.out, "prepare.json"), json.dumps(settings) + "\n")
        for f, entries in lists.items():
            dst = os.path.join(args.out, os.path.basename(f))
            if entries is None:
                shutil.copyfile(f, dst)
            else:
                atomic_write_text(dst, "".join(f"{p} {rest}".rstrip() + "\n" for p, rest in entries if p not in bad))
            classes = os.path.join(os.path.dirname(f), "classes.txt")
            if os.path.isfile(classes):
                shutil.copyfile(classes, os.path.join(args.out, "classes.txt"))
    sizes = sorted({o.size for o in report.outcomes if o.status in ("done", "scanned")})
    done = report.count("scanned") if args.scan_only else report.count("done")
    print(f"{'readable' if args.scan_only else 'prepared'} {done}, already done {report.count('exists')}, bad "
          f"{len(bad)} of {len(report.outcomes)} videos" + (f"; sizes (H, W) {sizes[:5]}" if sizes else ""))
    for o in report.bad:
        print(f"  bad: {os.path.join(args.root, o.rel)}: {o.reason}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
