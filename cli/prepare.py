"""Re-encode a video data set for fast training: ``python -m video_swin.prepare --root SRC --out DST``.

    python -m video_swin.prepare --root /data/k400 --out /data/k400_320 --list train.txt val.txt --workers 16
    python -m video_swin.prepare --root /data/k400 --scan-only          # report what would be done, write nothing

Every readable video (those of the list files / official CSVs, else every video under SRC) is decoded by
``--decoder`` and written to the same relative path under DST as H.264 with its short side at most ``--short-side``
px and a keyframe every ``--keyint`` frames, so a training clip decodes small frames from a nearby keyframe; the same
decoder checks that it reads each output. The list files are written to DST without the bad entries (CSVs are
copied: the reader drops missing files); a list none of whose videos could be prepared is an error, not an empty
file. Resumable: finished files are kept. The settings go to DST/prepare.json before the first video is written, so
a rerun (also of a killed run) with other settings is refused. Unreadable, empty and too-short files are named; the
exit code is then 1; an empty or malformed list file is an error (exit 2) before anything is written.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Sequence

from core.engine.files import atomic_write_text
from core.video.data import VIDEO_EXTENSIONS
from core.video.decoders import DECODERS, check_decoder
from core.video.lists import ListEntry, ListFileError, annotation_paths, is_csv, read_list_file
from core.video.prepare import PrepareReport, output_codec, prepare, scan_videos

SETTINGS = "prepare.json"
_FLAGS = ("short_side", "keyint", "min_frames")  # settings given as --short-side etc.; the others are the machine's


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", required=True, help="source folder (class folders, or the root of the list files' paths)")
    p.add_argument("--out", default=None, help="output folder (required unless --scan-only)")
    p.add_argument("--list", nargs="*", default=[], metavar="FILE",
                   help="list files (path label; the path may contain spaces) or official CSVs; default: every video "
                        "under --root")
    p.add_argument("--short-side", type=int, default=320, help="scale down to this short side (0 = keep the size)")
    p.add_argument("--keyint", type=int, default=8, help="frames between keyframes")
    p.add_argument("--min-frames", type=int, default=2, help="shorter videos are reported as bad")
    p.add_argument("--decoder", choices=sorted(DECODERS), default="decord",
                   help="reads the sources and checks every output: the data.decoder training will use")
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
    names = [os.path.basename(f) for f in args.list]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        p.error(f"--list: two files named {twice[0]} (both would be written to --out as {twice[0]})")
    return args


def check_settings(out: str, settings: dict) -> str:
    """'' when ``out`` holds no video yet or was prepared with the same settings (recorded in ``<out>/prepare.json``
    before its first video), else why not: a rerun must not mix files of two sizes."""
    path = os.path.join(out, SETTINGS)
    video = _first_video(out)
    if video is None:
        return ""
    if not os.path.isfile(path):
        return (f"{out} holds videos (e.g. {video}) but no {SETTINGS}: its settings are unknown, so a run into it "
                f"could mix two sizes; use another --out")
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError) as e:
        return f"{path} is unreadable ({e}) and {out} holds videos: use another --out"
    changed = [f"{'--' + k.replace('_', '-') if k in _FLAGS else k} {old[k]} -> {v}" for k, v in settings.items()
               if k in old and old[k] != v]
    return (f"{out} was prepared with other settings ({'; '.join(changed)}): use another --out, or the same settings "
            f"to continue it") if changed else ""


def _first_video(folder: str) -> Path | None:
    """A video file under ``folder`` (None when there is none, or no folder)."""
    if not os.path.isdir(folder):
        return None
    return next((q for q in Path(folder).rglob("*") if q.suffix.lower() in VIDEO_EXTENSIONS and q.is_file()), None)


def read_lists(files: Sequence[str], root: str) -> tuple[dict[str, list[ListEntry] | None], list[str]]:
    """The entries of each list file (None for a CSV) and every path they name, relative to root."""
    lists: dict[str, list[ListEntry] | None] = {}
    rels: list[str] = []
    for f in files:
        lists[f] = None if is_csv(f) else read_list_file(f, labels=False)
        rels += annotation_paths(f, root) if lists[f] is None else [e.path for e in lists[f]]
    return lists, rels


def write_lists(lists: dict[str, list[ListEntry] | None], root: str, out: str, report: PrepareReport) -> list[str]:
    """Each list file into ``out`` without its bad entries (a CSV copied); returns the errors: a list none of whose
    videos was prepared is not written."""
    bad, errors = {o.rel for o in report.bad}, []
    for f, entries in lists.items():
        dst = os.path.join(out, os.path.basename(f))
        rels = annotation_paths(f, root) if entries is None else [e.path for e in entries]
        if all(r in bad for r in rels):
            errors.append(f"none of the {len(rels)} videos of {f} could be prepared: {dst} not written")
            continue
        if entries is None:
            shutil.copyfile(f, dst)
        else:
            atomic_write_text(dst, "".join(e.text + "\n" for e in entries if e.path not in bad))
        classes = os.path.join(os.path.dirname(f), "classes.txt")
        if os.path.isfile(classes):
            shutil.copyfile(classes, os.path.join(out, "classes.txt"))
    return errors


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        check_decoder(args.decoder)
        lists, rels = read_lists(args.list, args.root)
    except (ImportError, ListFileError, OSError) as e:
        return _error(str(e))
    if not args.list:
        rels = scan_videos(args.root)
        if not rels:
            return _error(f"no video ({', '.join(VIDEO_EXTENSIONS)}) under {args.root}")
    settings = {"short_side": args.short_side, "keyint": args.keyint, "min_frames": args.min_frames,
                "codec": output_codec()}
    if args.out:
        problem = check_settings(args.out, settings)
        if problem:
            return _error(problem)
    if not args.scan_only:  # recorded before the first video: a killed run's folder is checked like a finished one's
        os.makedirs(args.out, exist_ok=True)
        atomic_write_text(os.path.join(args.out, SETTINGS), json.dumps(settings) + "\n")
    report = prepare(args.root, args.out or "", rels, short_side=args.short_side, keyint=args.keyint,
                     min_frames=args.min_frames, workers=args.workers, scan_only=args.scan_only,
                     progress=not args.no_progress, decoder=args.decoder)
    bad = report.bad
    errors = [] if args.scan_only else write_lists(lists, args.root, args.out, report)
    sizes = sorted({o.size for o in report.outcomes if o.status in ("done", "scanned")})
    done = report.count("scanned") if args.scan_only else report.count("done")
    print(f"{'readable' if args.scan_only else 'prepared'} {done}, already done {report.count('exists')}, bad "
          f"{len(bad)} of {len(report.outcomes)} videos" + (f"; sizes (H, W) {sizes[:5]}" if sizes else ""))
    for o in bad:
        print(f"  bad: {os.path.join(args.root, o.rel)}: {o.reason}", file=sys.stderr)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if bad or errors else 0


if __name__ == "__main__":
    sys.exit(main())
