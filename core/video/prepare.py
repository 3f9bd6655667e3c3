"""Re-encode a video data set for training: short side scaled down, a keyframe every few frames (a random clip then
decodes from a nearby keyframe instead of seeking through seconds of video), relative paths and lists kept.

Each output is written to a temporary name and renamed, so an interrupted run leaves no half file and a rerun skips
what is done. Unreadable, empty and too-short files are named and left out of the output lists.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import Pool
from pathlib import Path
from typing import Iterable, Sequence

from .data import VIDEO_EXTENSIONS

__all__ = ["Job", "Outcome", "PrepareReport", "list_entries", "scan_videos", "reencode", "prepare"]


@dataclass(frozen=True)
class Job:
    """One video: its path relative to the source root, and the encoding asked for."""
    rel: str
    src: str
    dst: str
    short_side: int
    keyint: int
    min_frames: int


@dataclass
class Outcome:
    rel: str
    status: str            # "done", "exists", "bad", "scanned"
    frames: int = 0
    size: tuple[int, int] = (0, 0)  # (H, W) written (or found)
    reason: str = ""


@dataclass
class PrepareReport:
    """What a prepare run did: per file, and the bad ones with their reasons."""
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def bad(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "bad"]


def list_entries(list_file: str | os.PathLike) -> list[tuple[str, str]]:
    """(relative path, the rest of the line) of an mmaction2 list file (``path label``; '#' lines skipped)."""
    out = []
    for line in Path(list_file).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            path, _, rest = line.strip().partition(" ")
            out.append((path, rest))
    return out


def scan_videos(root: str | os.PathLike, extensions: Sequence[str] = VIDEO_EXTENSIONS) -> list[str]:
    """Every video file under ``root`` (class folders or any tree), as sorted relative paths."""
    root = Path(root)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def _scaled(h: int, w: int, short_side: int) -> tuple[int, int]:
    """(H, W) with the short side at most ``short_side``, even (yuv420p), aspect kept."""
    s = min(1.0, short_side / min(h, w)) if short_side > 0 else 1.0
    return max(2, round(h * s / 2) * 2), max(2, round(w * s / 2) * 2)


def _first_line(e: BaseException) -> str:
    msg = str(e).strip().splitlines()
    return f"{type(e).__name__}: {msg[0] if msg else ''}"


def reencode(job: Job) -> Outcome:
    """Decode ``job.src`` and write it to ``job.dst`` (H.264, yuv420p, same frame rate, keyframe every
    ``keyint`` frames, short side scaled down to ``short_side``), atomically; a bad source gives a 'bad' outcome."""
    import av
    import av.error

    if os.path.isfile(job.dst):
        return Outcome(job.rel, "exists")
    if bad := _missing_or_empty(job):
        return bad
    tmp = f"{job.dst}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(job.dst) or ".", exist_ok=True)
    frames = 0
    try:
        with av.open(job.src) as src:
            if not src.streams.video:
                return Outcome(job.rel, "bad", reason="no video stream")
            vin = src.streams.video[0]
            rate = vin.average_rate or vin.guessed_rate or 30
            h, w = _scaled(vin.codec_context.height, vin.codec_context.width, job.short_side)
            codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
            with av.open(tmp, mode="w", format="mp4") as out:
                vout = out.add_stream(codec, rate=rate)
                vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
                vout.codec_context.gop_size = job.keyint
                if codec == "libx264":  # a closed GOP of keyint frames, no scene-cut keyframes in between
                    vout.options = {"crf": "18", "preset": "veryfast", "x264-params": f"keyint={job.keyint}:"
                                    f"min-keyint={job.keyint}:scenecut=0"}
                step = Fraction(1) / Fraction(rate)
                for frame in src.decode(vin):
                    frame = frame.reformat(width=w, height=h, format="yuv420p")
                    frame.pts, frame.time_base = frames, step  # numbered at the stream rate: monotonic timestamps
                    out.mux(vout.encode(frame))
                    frames += 1
                out.mux(vout.encode())
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as e:
        _remove(tmp)
        return Outcome(job.rel, "bad", frames, reason=_first_line(e))
    if frames < job.min_frames:
        _remove(tmp)
        return Outcome(job.rel, "bad", frames, reason=f"{frames} frame(s), fewer than {job.min_frames}")
    problem = _decord_problem(tmp)
    if problem:
        _remove(tmp)
        return Outcome(job.rel, "bad", frames, (h, w), reason=problem)
    os.replace(tmp, job.dst)
    return Outcome(job.rel, "done", frames, (h, w))


def _decord_problem(path: str) -> str:
    """Why decord (the default training decoder) cannot read a written file, or '' (also when it is not installed).
    decord 0.6.0 returns padded frames for some small widths (e.g. 16, 24, 48, 72 px) and then fails."""
    try:
        import decord
    except ImportError:
        return ""
    try:
        vr = decord.VideoReader(path, num_threads=1, ctx=decord.cpu(0))
        vr.get_batch([0, len(vr) - 1])
    except Exception as e:  # noqa: BLE001 -- DECORDError and friends
        return (f"decord cannot read the re-encoded file ({_first_line(e)[:120]}); use a larger --short-side, or "
                f"train with data.decoder=pyav")
    return ""


def _probe(job: Job) -> Outcome:
    """What prepare would do with a file, without writing: its frame count and the size it would get."""
    import av
    import av.error
    if bad := _missing_or_empty(job):
        return bad
    try:
        with av.open(job.src) as src:
            if not src.streams.video:
                return Outcome(job.rel, "bad", reason="no video stream")
            vin = src.streams.video[0]
            frames = sum(1 for _ in src.decode(vin))
            size = _scaled(vin.codec_context.height, vin.codec_context.width, job.short_side)
    except (av.error.FFmpegError, OSError, ValueError, RuntimeError) as e:
        return Outcome(job.rel, "bad", reason=_first_line(e))
    if frames < job.min_frames:
        return Outcome(job.rel, "bad", frames, reason=f"{frames} frame(s), fewer than {job.min_frames}")
    return Outcome(job.rel, "scanned", frames, size)


def _missing_or_empty(job: Job) -> Outcome | None:
    """The 'bad' outcome of a source that is missing or empty, else None."""
    if not os.path.isfile(job.src):
        return Outcome(job.rel, "bad", reason="missing")
    if os.path.getsize(job.src) == 0:
        return Outcome(job.rel, "bad", reason="empty file")
    return None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def prepare(root: str | os.PathLike, out: str | os.PathLike, rels: Iterable[str], *, short_side: int = 320,
            keyint: int = 8, min_frames: int = 2, workers: int = 1, scan_only: bool = False,
            progress: bool = False) -> PrepareReport:
    """Re-encode (or, ``scan_only``, check) every relative path of ``rels`` from ``root`` into ``out``."""
    jobs = [Job(r, os.path.join(root, r), os.path.join(out, r), short_side, keyint, min_frames)
            for r in dict.fromkeys(rels)]
    fn = _probe if scan_only else reencode
    report = PrepareReport()
    from tqdm import tqdm
    bar = tqdm(total=len(jobs), desc="scan" if scan_only else "prepare", disable=not progress, mininterval=1.0)
    if workers > 1 and len(jobs) > 1:
        with Pool(workers) as pool:
            for o in pool.imap_unordered(fn, jobs):
                report.outcomes.append(o)
                bar.update(1)
    else:
        for job in jobs:
            report.outcomes.append(fn(job))
            bar.update(1)
    bar.close()
    report.outcomes.sort(key=lambda o: o.rel)
    return report
