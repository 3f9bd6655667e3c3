"""Features of whole videos: ``python -m video_swin.extract_features --root DIR --checkpoint PATH --out DIR``.

Clips of ``--clip-len`` frames (every ``--frame-interval``-th frame) slide over each video, clip k starting at
frame k * ``--stride``; each clip is resized (short side) and centre-cropped to the recipe's crop size,
normalised as in training, and run through the model up to ``--stage`` (default: the last, after the final
norm, = ``forward_features``). One ``.npy`` per video: (clips, C) with ``--pooling mean`` (the mean over the
clip's T' x H' x W' tokens), (clips, T', H', W', C) with ``--pooling none``; ``index.json`` lists them with the
settings. Videos stream in chunks of ``--chunk`` clips decoded in DataLoader workers, so memory is bounded by
the chunk, not the video; the decoder is the recipe's ``data.decoder`` (``--opt data.decoder=pyav`` to change it).
``--list`` reads a list file as training does (:mod:`core.video.lists`; paths may hold spaces, labels are optional).
Existing outputs are skipped (resumable); under torchrun the list is sharded.
Unreadable or missing files are reported and left out (exit code 1); the rest go on.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from cli.kit import add_model_args, model_from_args, report_error, report_problems
from core.engine import distributed as du
from core.engine.config import ConfigError
from core.engine.device import resolve_amp
from core.engine.files import write_json
from core.engine.inference import ToolError, check_stage
from core.video.config import VideoConfig
from core.video.data import (
    default_stride,
)
from core.video.decoders import check_decoder
from core.video.features import INDEX, SlidingClips, check_index, describe_output, extract, plan


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = p.add_argument_group("videos (one of --list / --root; with both, list paths are relative to --root)")
    src.add_argument("--list", default=None, metavar="FILE", help="one video path a line (a trailing label is ignored)")
    src.add_argument("--root", default=None, metavar="DIR", help="folder searched recursively for videos")
    add_model_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="one .npy per video (same relative path) + index.json")
    p.add_argument("--clip-len", type=int, default=None, help="frames per clip (default: the recipe's data.clip_len)")
    p.add_argument("--frame-interval", type=int, default=None,
                   help="take every n-th frame (default: the recipe's data.frame_interval)")
    p.add_argument("--stride", type=int, default=None,
                   help="frames between clip starts (default: half a clip's span, clip_len * frame_interval / 2)")
    p.add_argument("--stage", type=int, default=None, help="1-based stage (default: the last, after the final norm)")
    p.add_argument("--pooling", choices=("mean", "none"), default="mean")
    p.add_argument("--chunk", type=int, default=8, help="clips decoded and run together (bounds memory)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        info = du.init_distributed(args.device)
    except RuntimeError as e:
        return report_error(ConfigError(str(e)))
    try:
        return _run(args, info)
    except ToolError as e:
        return report_error(e)
    finally:
        du.cleanup()


def _run(args: argparse.Namespace, info: du.DistInfo) -> int:
    loaded, _ = model_from_args(args, VideoConfig, info.device, need_head=False)
    d = loaded.cfg.data
    clip_len, interval = args.clip_len or d.clip_len, args.frame_interval or d.frame_interval
    stride = args.stride or default_stride(clip_len, interval)
    stage = check_stage(args.stage, loaded.model)
    try:
        check_decoder(d.decoder)
    except (ImportError, ValueError) as e:
        raise ConfigError(str(e)) from None
    for name, v in (("--clip-len", clip_len), ("--frame-interval", interval), ("--stride", stride),
                    ("--chunk", args.chunk)):
        if v < 1:
            raise ConfigError(f"{name} = {v}, expected >= 1")
    settings = {"model": loaded.cfg.model.name, "clip_len": clip_len, "frame_interval": interval, "stride": stride,
                "stage": stage, "pooling": args.pooling, "crop_size": d.crop_size}
    job = plan(args.out, args.list, args.root)
    old = check_index(args.out, settings)
    todo = [i for i, o in enumerate(job.outputs) if not os.path.isfile(o)]
    mine = todo[info.rank::info.world_size]
    if info.is_main:
        report_problems(job.problems)
        print(f"{len(job.videos)} videos, {len(job.videos) - len(todo)} already done, {len(todo)} to extract"
              + (f" over {info.world_size} processes" if info.distributed else ""), flush=True)
    ds = SlidingClips([job.videos[i] for i in mine], clip_len, interval, stride, args.chunk, d.crop_size,
                      decoder=d.decoder)
    res = extract(loaded.model, ds, [job.outputs[i] for i in mine], info.device, stage=stage, pooling=args.pooling,
                  workers=args.workers, amp_dtype=resolve_amp(loaded.cfg.train.amp, info.device),
                  single_frame=d.single_frame)
    for f in res["failed"]:
        print(f"cannot read {f['video']}: {f['error']}", file=sys.stderr)
    parts = du.all_gather_object({k: res[k] for k in ("records", "failed", "clips", "seconds")})
    if info.is_main:
        new = {r["features"]: r for p in parts for r in p["records"]}
        known = {os.path.join(args.out, r["features"]): r for r in old.get("videos", [])}
        records = []
        for v, o in zip(job.videos, job.outputs):
            if o in new or o in known or os.path.isfile(o):
                r = new.get(o) or known.get(o) or describe_output(v, o, d.decoder)
                records.append({**r, "features": os.path.relpath(o, args.out)})
        failed = [{"video": i, "error": w} for i, w in job.problems] + [f for p in parts for f in p["failed"]]
        write_json(os.path.join(args.out, INDEX), {**settings, "checkpoint": args.checkpoint, "recipe": loaded.recipe,
                                                  "clip_starts": "clip k starts at frame k * stride",
                                                  "videos": records, "failed": failed})
        secs = max(p["seconds"] for p in parts)
        done = sum(len(p["records"]) for p in parts)
        per = f" ({' + '.join(str(len(p['records'])) for p in parts)} per process)" if info.distributed else ""
        print(f"extracted {done} videos{per}, {sum(p['clips'] for p in parts)} clips in {secs:.1f}s; "
              f"{len(failed)} unreadable; {len(records)} listed in {os.path.join(args.out, INDEX)}", flush=True)
        return 1 if failed else 0
    return 1 if res["failed"] or job.problems else 0


if __name__ == "__main__":
    sys.exit(main())
