"""Soak modes over files and epochs: ``predict`` / ``extract`` over thousands of generated mp4 clips, ``train``
over many epochs with DataLoader workers. Run through ``python -m bench.soak --modes predict extract train``.

``predict`` and ``extract`` go through the tools' own code paths (``video_swin.predict``: expand_inputs,
view_dataset, a DataLoader with workers, classify; ``video_swin.extract_features``: plan, SlidingClips,
extract, one .npy per clip) over ``--clips`` moving-shapes mp4s (generated once into ``--data-dir``), with a
checkpoint of the embedded tiny recipe (``--checkpoint``, else one epoch trained into ``--data-dir``). A forward
hook on the model's patch embedding counts forward passes (one per clip here) and samples, every ``--every``
of them, the main process's RSS, peak RSS and open file descriptors and those of each DataLoader worker (the
children of this process). ``train`` runs ``video_swin.train`` (the embedded tiny recipe, ``--epochs``,
``--num-train`` clips, ``--workers`` DataLoader workers) with a callback that samples the workers during each
epoch (after every optimizer step) and the main process at each epoch's end.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import torch

TINY_OPTS = ["train.progress=false", "train.tensorboard=false", "train.curves=false", "optim.lr=0.01"]


# ------------------------------------------------------------------------------------------- process memory
def proc_memory(pid: int | str = "self") -> dict[str, float] | None:
    """RSS and peak RSS (MB), PSS (MB, where smaps_rollup exists) and open fds of a process; None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        out = {"rss_mb": int(fields["VmRSS"].split()[0]) / 1024, "hwm_mb": int(fields["VmHWM"].split()[0]) / 1024,
               "fds": len(os.listdir(f"/proc/{pid}/fd"))}
    except (OSError, KeyError, ValueError):
        return None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            pss = next((line for line in f if line.startswith("Pss:")), None)
        if pss:
            out["pss_mb"] = int(pss.split()[1]) / 1024
    except OSError:
        pass
    return out


def _cmdline(pid: int | str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def child_pids(parent: int | None = None, forked_only: bool = True) -> list[int]:
    """Processes whose parent is ``parent`` (default: this one): with ``forked_only`` those running its command
    line, i.e. the DataLoader workers (not multiprocessing's resource tracker, which is spawned)."""
    parent = os.getpid() if parent is None else parent
    cmd = _cmdline(parent) if forked_only else None
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and (cmd is None or _cmdline(name) == cmd):
            out.append(int(name))
    return sorted(out)


def sample(n: int) -> dict[str, Any]:
    """This process and its children now, tagged with the count ``n`` (clips or epochs)."""
    main = proc_memory() or {}
    workers = [{"pid": p, **m} for p in child_pids() if (m := proc_memory(p)) is not None]
    return {"n": n, **main, "workers": workers}


def _r(x: Any) -> Any:
    return round(x, 1) if isinstance(x, float) else x


def growth_row(samples: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Main-process RSS / peak / fds at the first sample at or after ``warmup`` and at the end, their growth,
    the spread (max - min) of RSS after the warm-up, and the workers' largest RSS / PSS / fds in both windows."""
    after = [s for s in samples if s["n"] >= warmup] or samples[-1:]
    w, last = after[0], after[-1]
    row = {"rss_mb_at_warmup": _r(w["rss_mb"]), "rss_mb_at_end": _r(last["rss_mb"]),
           "rss_growth_mb": _r(last["rss_mb"] - w["rss_mb"]),
           "rss_spread_mb_after_warmup": _r(max(s["rss_mb"] for s in after) - min(s["rss_mb"] for s in after)),
           "max_rss_mb_at_warmup": _r(w["hwm_mb"]), "max_rss_mb_at_end": _r(last["hwm_mb"]),
           "max_rss_growth_mb": _r(last["hwm_mb"] - w["hwm_mb"]),
           "fds_at_warmup": w["fds"], "fds_at_end": last["fds"], "fds_growth": last["fds"] - w["fds"],
           "max_fds": max(s["fds"] for s in samples)}
    with_workers = [s for s in after if s["workers"]]
    if with_workers:
        first, end = with_workers[0], with_workers[-1]
        for key in ("rss_mb", "pss_mb", "fds"):
            if all(key in x for s in (first, end) for x in s["workers"]):
                a, b = max(x[key] for x in first["workers"]), max(x[key] for x in end["workers"])
                row[f"worker_{key}_at_warmup"], row[f"worker_{key}_at_end"] = _r(a), _r(b)
                row[f"worker_{key}_growth"] = _r(b - a)
        row["worker_max_fds"] = max(x["fds"] for s in samples for x in s["workers"])
    return row


def compact(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Samples rounded for the jsonl (workers as lists of [rss, pss, fds])."""
    return [{**{k: _r(v) for k, v in s.items() if k != "workers"},
             "workers": [[_r(x["rss_mb"]), _r(x.get("pss_mb", -1.0)), x["fds"]] for x in s["workers"]]}
            for s in samples]


# --------------------------------------------------------------------------------------------------- data
def ensure_clips(data_dir: str, clips: int) -> Path:
    """``clips`` moving-shapes mp4s (32 px, 16 frames; generated once) in ``data_dir``/clips<N>/train."""
    from core.video.synthetic import ensure_moving_shapes
    return ensure_moving_shapes(Path(data_dir) / f"clips{clips}", num_train=clips, num_val=0) / "train"


def ensure_checkpoint(data_dir: str) -> str:
    """best.pth of the embedded tiny recipe trained one epoch on 32 clips, made once in ``data_dir``."""
    run = Path(data_dir) / "tiny_run"
    if not (run / "best.pth").is_file():
        from cli import train
        code = train.main(["--opt", f"train.output_dir={run}", f"data.root={Path(data_dir) / 'ckpt_shapes'}",
                           "data.num_train=32", "data.num_val=8", "data.num_workers=0", "train.epochs=1",
                           *TINY_OPTS])
        if code != 0:
            raise RuntimeError(f"training the soak checkpoint failed (exit code {code})")
    return str(run / "best.pth")


class ForwardSampler:
    """Counts forward passes of ``module`` and samples memory every ``every`` of them (and at the first)."""

    def __init__(self, module: torch.nn.Module, every: int) -> None:
        self.every, self.calls, self.samples = every, 0, []
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, *_: Any) -> None:
        self.calls += 1
        if self.calls == 1 or self.calls % self.every == 0:
            self.samples.append(sample(self.calls))

    def close(self) -> None:
        self.handle.remove()
        if not self.samples or self.samples[-1]["n"] != self.calls:
            self.samples.append(sample(self.calls))


# ------------------------------------------------------------------------------------------------ modes
def soak_predict(clip_dir: str | Path, checkpoint: str, workers: int, every: int) -> tuple[list[dict], dict]:
    """video_swin.predict's path over every clip of ``clip_dir`` (the recipe's views, batch 1)."""
    import warnings

    from torch.utils.data import DataLoader

    from cli import predict
    from core.engine.inference import class_names, expand_inputs, load_model
    from core.video.config import VideoConfig, parse_views
    from core.video.data import VIDEO_EXTENSIONS, BrokenVideoWarning, collate_videos

    loaded = load_model(checkpoint, VideoConfig)
    cfg = loaded.cfg
    classes = class_names(loaded.num_classes, checkpoint, saved=loaded.classes)
    num_clips, num_crops = parse_views("", cfg)
    files, problems = expand_inputs([str(clip_dir)], VIDEO_EXTENSIONS)
    ds = predict.view_dataset(files, cfg, classes, num_clips, num_crops)
    loader = DataLoader(ds, batch_size=1, num_workers=workers, collate_fn=collate_videos)
    sampler = ForwardSampler(loaded.model.patch_embed, every)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BrokenVideoWarning)
            scores, errors = predict.classify(loaded.model, loader, torch.device("cpu"), None, cfg.data.single_frame)
    finally:
        sampler.close()
    return sampler.samples, {"files": len(files), "classified": len(scores), "failed": len(errors) + len(problems),
                             "views": f"{num_clips}x{num_crops}", "forward_passes": sampler.calls}


def soak_extract(clip_dir: str | Path, checkpoint: str, workers: int, every: int) -> tuple[list[dict], dict]:
    """video_swin.extract_features's path over every clip of ``clip_dir`` (mean-pooled last stage, one .npy each)."""
    from cli import extract as xf
    from core.engine.inference import check_stage, load_model
    from core.video.config import VideoConfig
    from core.video.data import default_stride

    loaded = load_model(checkpoint, VideoConfig, need_head=False)
    d = loaded.cfg.data
    stage = check_stage(None, loaded.model)
    with tempfile.TemporaryDirectory(prefix="soak_extract_") as out:
        job = xf.plan(out, root=str(clip_dir))
        ds = xf.SlidingClips(job.videos, d.clip_len, d.frame_interval, default_stride(d.clip_len, d.frame_interval),
                             8, d.crop_size)
        sampler = ForwardSampler(loaded.model.patch_embed, every)
        try:
            res = xf.extract(loaded.model, ds, job.outputs, torch.device("cpu"), stage=stage, pooling="mean",
                             workers=workers, single_frame=d.single_frame)
        finally:
            sampler.close()
        written = sum(1 for o in job.outputs if os.path.isfile(o))
    return sampler.samples, {"files": len(job.videos), "written": written, "failed": len(res["failed"]),
                             "clips": res["clips"], "forward_passes": sampler.calls}


def soak_train(data_dir: str, epochs: int, num_train: int, workers: int) -> tuple[list[dict], dict]:
    """video_swin.train (embedded tiny recipe) for ``epochs`` epochs; a sample per epoch: the main process at
    the epoch's end, the workers as last seen during the epoch (after each optimizer step but the last)."""
    from cli import train
    from core.engine import callbacks as cbs

    class Probe(cbs.Callback):
        def __init__(self) -> None:
            self.samples: list[dict] = []
            self.workers: dict[int, dict] = {}

        def on_step_end(self, trainer: Any, epoch: int, iteration: int) -> None:
            for p in child_pids():
                if (m := proc_memory(p)) is not None:
                    self.workers[p] = {"pid": p, **m}

        def on_epoch_end(self, trainer: Any, row: dict[str, Any]) -> None:
            s = sample(trainer.state.epoch)
            s["workers"] = list(self.workers.values())  # the train loader's, seen mid-epoch
            self.samples.append(s)
            self.workers = {}

    probe = Probe()
    run = tempfile.mkdtemp(prefix="soak_train_", dir=data_dir)
    cbs.EXTRA.append(probe)
    try:
        code = train.main(["--opt", f"train.output_dir={run}", f"data.root={Path(data_dir) / f'train{num_train}'}",
                           f"data.num_train={num_train}", "data.num_val=16", f"data.num_workers={workers}",
                           f"train.epochs={epochs}", "data.batch_size=16", *TINY_OPTS])
    finally:
        cbs.EXTRA.remove(probe)
    if code != 0:
        raise RuntimeError(f"video_swin.train exited with {code}")
    return probe.samples, {"epochs": epochs, "num_train": num_train, "run_dir": run}


def run_mode(mode: str, args: Any) -> dict[str, Any]:
    """One of predict / extract / train with its growth row (warm-up in clips or epochs)."""
    data_dir = args.data_dir or os.path.join(tempfile.gettempdir(), "swin_suite_soak")
    os.makedirs(data_dir, exist_ok=True)
    start = time.perf_counter()
    if mode == "train":
        samples, extra = soak_train(data_dir, args.epochs, args.num_train, args.workers)
        warmup = args.warmup_epochs
    else:
        clip_dir = ensure_clips(data_dir, args.clips)
        ckpt = args.checkpoint or ensure_checkpoint(data_dir)
        fn: Callable = soak_predict if mode == "predict" else soak_extract
        start = time.perf_counter()
        samples, extra = fn(clip_dir, ckpt, args.workers, args.every)
        warmup = args.warmup_clips
    return {"bench": "soak", "mode": mode, "workers": args.workers, "warmup": warmup, **extra,
            "seconds": round(time.perf_counter() - start, 1), **growth_row(samples, warmup),
            "samples": compact(samples)}
