"""Re-encode a video data set for training: short side scaled down, a keyframe every few frames (a random clip then
decodes from a nearby keyframe instead of seeking through seconds of video), relative paths and lists kept.

Sources are read, and every output is checked, through :mod:`core.video.decoders` (``decoder``: the one training
will use). Each output is written to a temporary name and renamed, so an interrupted run leaves no half file and a
rerun skips what is done. Unreadable, empty and too-short files are named and left out of the output lists.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import Pool
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .data import VIDEO_EXTENSIONS
from .decoders import Video, iter_frames, open_video

__all__ = ["Job", "Outcome", "PrepareReport", "scan_videos", "output_codec", "reencode", "prepare", "remove_orphans"]


@dataclass(frozen=True)
class Job:
    """One video: its path relative to the source root, and the encoding asked for."""
    rel: str
    src: str
    dst: str
    short_side: int
    keyint: int
    min_frames: int
    decoder: str = "decord"


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


def output_codec() -> str:
    """The encoder prepare writes with: libx264 where this PyAV has it, else mpeg4."""
    import av
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _open_source(job: Job) -> tuple[Video | None, Outcome | None]:
    """The source opened by the job's decoder, or the 'bad' outcome of a missing, empty, unreadable or short one."""
    if bad := _missing_or_empty(job):
        return None, bad
    try:
        video = open_video(job.src, decoder=job.decoder)
    except Exception as e:  # noqa: BLE001 -- each decoder raises its own error types
        return None, Outcome(job.rel, "bad", reason=_first_line(e))
    if video.num_frames < job.min_frames:
        return None, Outcome(job.rel, "bad", video.num_frames,
                             reason=f"{video.num_frames} frame(s), fewer than {job.min_frames}")
    return video, None


def _rate(fps: float) -> Fraction:
    """The output frame rate: the source's (e.g. 30000/1001), 30 when it is unknown."""
    return Fraction(fps).limit_denominator(1001) if fps > 0 else Fraction(30)


def reencode(job: Job) -> Outcome:
    """Decode ``job.src`` (with ``job.decoder``) and write it to ``job.dst`` (H.264, yuv420p, same frame rate, keyframe
    every ``keyint`` frames, short side scaled down to ``short_side``), atomically; a bad source gives a 'bad' outcome."""
    import av

    if bad := _outside(job):
        return bad
    if os.path.isfile(job.dst):
        return Outcome(job.rel, "exists")
    video, bad = _open_source(job)
    if video is None:
        return bad
    tmp = f"{job.dst}.{os.getpid()}.tmp"
    os.makedirs(os.path.dirname(job.dst) or ".", exist_ok=True)
    remove_orphans(job.dst)  # half files of a killed run
    frames, (h, w) = 0, (0, 0)
    rate = _rate(video.fps)
    step, codec = 1 / rate, output_codec()
    try:
        with av.open(tmp, mode="w", format="mp4") as out:
            vout = None
            for chunk in iter_frames(video):
                if vout is None:
                    h, w = _scaled(chunk.shape[1], chunk.shape[2], job.short_side)
                    vout = out.add_stream(codec, rate=rate)
                    vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
                    vout.codec_context.gop_size = job.keyint
                    if codec == "libx264":  # a closed GOP of keyint frames, no scene-cut keyframes in between
                        vout.options = {"crf": "18", "preset": "veryfast", "x264-params": f"keyint={job.keyint}:"
                                        f"min-keyint={job.keyint}:scenecut=0"}
                for rgb in chunk.numpy():
                    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(width=w, height=h,
                                                                                     format="yuv420p")
                    frame.pts, frame.time_base = frames, step  # numbered at the stream rate: monotonic timestamps
                    out.mux(vout.encode(frame))
                    frames += 1
            if vout is not None:
                out.mux(vout.encode())
    except Exception as e:  # noqa: BLE001 -- the decoders' and FFmpeg's error types
        _remove(tmp)
        return Outcome(job.rel, "bad", frames, reason=_first_line(e))
    finally:
        getattr(video, "close", lambda: None)()
    if frames < job.min_frames:
        _remove(tmp)
        return Outcome(job.rel, "bad", frames, reason=f"{frames} frame(s), fewer than {job.min_frames}")
    problem = _decoder_problem(tmp, job.decoder)
    if problem:
        _remove(tmp)
        return Outcome(job.rel, "bad", frames, (h, w), reason=problem)
    os.replace(tmp, job.dst)
    return Outcome(job.rel, "done", frames, (h, w))


def _decoder_problem(path: str, decoder: str) -> str:
    """Why ``decoder`` (the one training will use) cannot read a written file, or ''. decord 0.6.0 returns padded
    frames for some small widths (e.g. 16, 24, 48, 72 px) and then fails."""
    try:
        video = open_video(path, decoder=decoder)
        video.get(np.array([0, video.num_frames - 1]))
    except Exception as e:  # noqa: BLE001 -- DECORDError and friends
        other = "train with data.decoder=pyav" if decoder == "decord" else "another --decoder"
        return f"{decoder} cannot read the re-encoded file ({_first_line(e)[:120]}); use a larger --short-side, or {other}"
    return ""


def _probe(job: Job) -> Outcome:
    """What prepare would do with a file, without writing: its frame count and the size it would get."""
    video, bad = _open_source(job)
    if video is None:
        return bad
    frames, size = 0, (0, 0)
    try:
        for chunk in iter_frames(video):
            size = size if frames else _scaled(chunk.shape[1], chunk.shape[2], job.short_side)
            frames += len(chunk)
    except Exception as e:  # noqa: BLE001 -- the decoders' error types
        return Outcome(job.rel, "bad", frames, reason=_first_line(e))
    finally:
        getattr(video, "close", lambda: None)()
    return Outcome(job.rel, "scanned", frames, size)


def _outside(job: Job) -> Outcome | None:
    """The 'bad' outcome of a path that is not inside the source folder (its output would land outside ``out``)."""
    if os.path.isabs(job.rel) or os.path.normpath(job.rel).split(os.sep)[0] == "..":
        return Outcome(job.rel, "bad", reason="not under --root (a list path must be relative to it)")
    return None


def _missing_or_empty(job: Job) -> Outcome | None:
    """The 'bad' outcome of a source that is outside the source folder, missing or empty, else None."""
    if bad := _outside(job):
        return bad
    if not os.path.isfile(job.src):
        return Outcome(job.rel, "bad", reason="missing")
    if os.path.getsize(job.src) == 0:
        return Outcome(job.rel, "bad", reason="empty file")
    return None


def remove_orphans(path: str) -> list[str]:
    """Delete ``<path>.<pid>.tmp`` files left by killed runs (their process is gone); a live writer's file is kept."""
    gone = []
    for tmp in glob.glob(glob.escape(path) + ".*.tmp"):
        pid = tmp[len(path) + 1:-len(".tmp")]
        if pid.isdigit() and not _alive(int(pid)):
            _remove(tmp)
            gone.append(tmp)
    return gone


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a killed worker not yet reaped, a zombie, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def prepare(root: str | os.PathLike, out: str | os.PathLike, rels: Iterable[str], *, short_side: int = 320,
            keyint: int = 8, min_frames: int = 2, workers: int = 1, scan_only: bool = False,
            progress: bool = False, decoder: str = "decord") -> PrepareReport:
    """Re-encode (or, ``scan_only``, check) every relative path of ``rels`` from ``root`` into ``out``, reading and
    checking with ``decoder``."""
    jobs = [Job(r, os.path.join(root, r), os.path.join(out, r), short_side, keyint, min_frames, decoder)
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
