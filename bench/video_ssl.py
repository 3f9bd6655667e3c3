"""Video self-supervision where it was not tuned (issue 41): the pre-registered protocol of
``results/video_ssl/protocol.md`` as commands, a runner and the table.

    python -m bench.video_ssl commands --sets spin_zoom_sharp --seeds 0     # print one group's commands
    python -m bench.video_ssl run --sets spin_zoom_sharp spiral_sharp speed_change --seeds 0 1 2 --queue 0/2 \
        --frame-interval 1                                                   # round 2 (round 1: 2)
    python -m bench.video_ssl table --sets spin_zoom spin_zoom_sharp spiral_sharp speed_change --seeds 0 1 2
    python -m bench.video_ssl run --sets ramp --frame-interval 1 --head-time-bins 1 4 --queue 0/2   # round 8
    python -m bench.video_ssl flow-quality --sets spin_zoom spin_zoom_sharp spiral_sharp speed_change
    python -m bench.video_ssl record --out outputs/video_ssl > results/video_ssl/runs41.jsonl

A group is one (set, seed): the SimMIM pretraining on the set's 2000 unlabelled clips, fine-tuning from it and from
random weights at 25 %, 10 % and 100 % of the 400-clip labelled pool, and the linear probes of both. ``run`` runs
every ``k``-th group of ``--queue k/n`` in order (one queue a core), skips runs whose ``results.json`` exists, and
logs each run's command, commit and wall time to ``<out>/logs/<run>.log``; ``table`` reads the final epochs;
``record`` prints a JSON line a finished run (its command, commit, machine, wall time and final-epoch metrics).
``flow-quality`` measures how well the flow target describes each set's motion: the share of the frame-to-frame
change that warping frame t + 1 back by the estimated flow explains (1 = all, 0 = none), and the median speed, over
the validation clips sampled as the recipes sample them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from core.video.flow import ESTIMATORS

PY = [sys.executable, "-m"]
COMMON = ["data.num_workers=0", "data.decoded_cache_mb=256"]
PRETRAIN = ["data.num_train=2000", "train.epochs=30", "sched.warmup_epochs=1"]
TAGS = {"flow": "", "pixels_flow": "pf"}  # run-name tag of each pretraining target (scratch runs are shared)
FRACTIONS = {"25": ["finetune.label_fraction=0.25"], "10": ["finetune.label_fraction=0.1"],
             "100": ["finetune.label_fraction=1.0", "train.epochs=20"]}


def _tag(target: str, frame_interval: int, estimator: str) -> tuple[str, str]:
    """(the SimMIM runs' name tag, the shared scratch / random-probe runs' tag)."""
    fi = f"fi{frame_interval}" if frame_interval != 2 else ""
    return TAGS[target] + fi + ("" if estimator == "farneback" else estimator), fi


def _head(bins: int) -> tuple[list[str], str]:
    """(fine-tuning options, run-name suffix) of ``model.kwargs.head_time_bins=bins``; 1, the recipe's: none."""
    return ([], "") if bins == 1 else ([f"model.kwargs.head_time_bins={bins}"], f"_tb{bins}")


def group(out: Path, name: str, seed: int, moby: bool = False, target: str = "flow",
          frame_interval: int = 2, estimator: str = "farneback", head_time_bins: Sequence[int] = (1,)
          ) -> list[tuple[str, list[str]]]:
    """(run name, command) of one set and seed, in the order they must run; ``frame_interval`` is data.frame_interval
    of the pretraining, fine-tuning and scratch runs: 2 = round 1 (the SimMIM recipes' value then; those runs did not
    pass it), others tag the run names with ``fi<N>`` (round 2: 1). The probes sample every frame in every round
    (their recipe's value; round 1 did not pass it either). ``estimator`` is the pretraining's mim.flow_estimator
    (other than farneback: tagged with its name). The fine-tuning and scratch runs repeat for each of
    ``head_time_bins`` (``model.kwargs.head_time_bins``; other than 1, the recipe's: run names end in ``_tb<N>``),
    sharing the pretraining and the probes."""
    tag, fi = _tag(target, frame_interval, estimator)
    common = COMMON + [f"data.frame_interval={frame_interval}"]
    pt = f"{name}_pt{tag}_s{seed}"
    ckpt = str(out / pt / "best.pth")
    runs = [(pt, PY + ["simmim.pretrain", "--config", "configs/simmim/tiny_spin_zoom.yaml", "--opt",
                       f"data.dataset={name}", f"train.seed={seed}", f"mim.target={target}", *PRETRAIN, *common]
                + ([f"mim.flow_estimator={estimator}"] if estimator != "farneback" else []))]
    for bins in head_time_bins:
        head, tb = _head(bins)
        for frac, opt in FRACTIONS.items():
            for kind, weights in ((f"ft{tag}", ckpt), (f"sc{fi}", "''")):
                runs.append((f"{name}_{kind}{frac}{tb}_s{seed}",
                             PY + ["simmim.finetune", "--config", "configs/simmim/tiny_spin_zoom_ft.yaml", "--opt",
                                   f"data.dataset={name}", f"model.pretrained={weights}", f"train.seed={seed}",
                                   f"finetune.label_seed={seed}", *opt, *common, *head]))
    probe = ["moby.linear", "--config", "configs/moby/linear_tiny_spin_zoom.yaml", "--opt", f"data.dataset={name}",
             f"train.seed={seed}", *COMMON, "data.frame_interval=1"]
    runs.append((f"{name}_lp{tag}_s{seed}", PY + probe + [f"model.pretrained={ckpt}"]))
    runs.append((f"{name}_lprand{fi}_s{seed}", PY + probe + ["probe.random_init=true"]))
    if moby:  # MoBY as shipped, and MoBY started from the SimMIM weights, each with its probe
        for kind, init in (("moby", []), (f"moby{tag}ft", [f"model.pretrained={ckpt}"])):
            run = f"{name}_{kind}_s{seed}"
            runs.append((run, PY + ["moby.pretrain", "--config", "configs/moby/tiny_spin_zoom.yaml", "--opt",
                                    f"data.dataset={name}", f"train.seed={seed}", *init, *COMMON]))
            runs.append((f"{run}_lp", PY + probe + [f"model.pretrained={out / run / 'last.pth'}"]))
    return [(r, cmd + ["--output-dir", str(out / r)]) for r, cmd in runs]


def _shell(cmd: list[str]) -> str:
    return " ".join(c if c and " " not in c else repr(c) for c in ["python", *cmd[1:]])


def _final(out: Path, run: str) -> dict | None:
    p = out / run / "results.json"
    return json.loads(p.read_text()) if p.exists() else None


def _commit() -> str:
    """HEAD's short hash, with ``+dirty`` when tracked files differ from it."""
    git = lambda *a: subprocess.run(["git", *a], capture_output=True, text=True).stdout.strip()  # noqa: E731
    return git("rev-parse", "--short", "HEAD") + ("+dirty" if git("status", "--porcelain", "-uno") else "")


def run_queue(out: Path, groups: list[list[tuple[str, list[str]]]], k: int, n: int) -> None:
    (out / "logs").mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for runs in groups[k::n]:
        for name, cmd in runs:
            if _final(out, name) is not None:
                continue
            log = out / "logs" / f"{name}.log"
            start = time.time()
            commit = _commit()
            with log.open("w") as f:
                f.write(f"# {time.strftime('%H:%M:%S', time.gmtime())} UTC commit {commit} on "
                        f"{platform.processor() or platform.machine()}\n# {_shell(cmd)}\n")
                f.flush()
                rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env).returncode
                f.write(f"# rc={rc} wall={time.time() - start:.0f}s\n")
            print(f"{name}: rc {rc}, {time.time() - start:.0f} s", flush=True)


def _top1(out: Path, run: str, key: str = "top1") -> float | None:
    r = _final(out, run)
    return None if r is None else r["final"].get(key)


def table(out: Path, sets: list[str], seeds: list[int], target: str = "flow", frame_interval: int = 2,
          estimator: str = "farneback", head_time_bins: Sequence[int] = (1,)) -> str:
    """Markdown: per set, mean and seeds of every row, final epoch."""
    t, fi = _tag(target, frame_interval, estimator)
    rows = []
    for bins in head_time_bins:
        tb = _head(bins)[1]
        head = f", head_time_bins {bins}" if tb else ""
        for frac in FRACTIONS:
            rows += [(f"SimMIM {target}, fine-tuned, {frac} %{head}", f"ft{t}{frac}{tb}"),
                     (f"random weights, {frac} %{head}", f"sc{fi}{frac}{tb}")]
    rows += [(f"SimMIM {target}, linear probe (100 %)", f"lp{t}"), ("random weights, linear probe", f"lprand{fi}"),
            ("MoBY, linear probe", "moby_lp_"), (f"MoBY from SimMIM {target}, linear probe", f"moby{t}ft_lp_")]
    if not any((out / f"{name}_moby_s{s}_lp").exists() for name in sets for s in seeds):  # no MoBY in this round
        rows = rows[:-2]
    lines = ["| set | " + " | ".join(r for r, _ in rows) + " | pretraining skill (flow) |",
             "|---|" + "---|" * (len(rows) + 1)]
    for name in sets:
        cells = []
        for _, key in rows:
            if key.endswith("_lp_"):  # the MoBY probes: <set>_<moby|moby<tag>ft>_s<seed>_lp
                runs = [f"{name}_{key[:-4]}_s{s}_lp" for s in seeds]
            else:
                runs = [f"{name}_{key}_s{s}" for s in seeds]
            vals = [v for v in (_top1(out, r) for r in runs) if v is not None]
            cells.append("-" if not vals else f"**{sum(vals) / len(vals):.1f}** ({' / '.join(f'{v:.0f}' for v in vals)})")
        skills = [_final(out, f"{name}_pt{t}_s{s}") for s in seeds]
        sk = [r["best"].get("flow_skill", r["best"].get("skill")) for r in skills if r is not None]
        cells.append("-" if not sk else " / ".join(f"{v:.2f}" for v in sk))
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def flow_quality(name: str, clips: int = 100, frame_interval: int = 2, estimator: str = "farneback"
                 ) -> dict[str, float]:
    """Explained change (1 - |I_t - warp(I_t+1)| / |I_t - I_t+1|) and median speed of the flow target on a set's
    validation clips (8 frames, ``frame_interval`` apart, as the recipes sample them)."""
    import cv2
    import decord
    import numpy as np
    import torch

    from core.video.flow import clip_flow
    from core.video.sources import GENERATED
    root = GENERATED[name](None, num_train=400, num_val=100)
    lines = (root / "val.txt").read_text().split("\n")[:clips]
    index = list(range(0, 8 * frame_interval, frame_interval))
    frames = [decord.VideoReader(str(root / ln.split()[0])).get_batch(index).asnumpy() for ln in lines if ln.strip()]
    x = torch.from_numpy(np.stack(frames)).permute(0, 4, 1, 2, 3).float()
    flow = clip_flow(x, estimator)[0].numpy()                       # (N, 2, T, H, W)
    grey = x.mean(1).numpy()                                        # (N, T, H, W)
    h, w = grey.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    res = still = 0.0
    for i in range(len(grey)):
        for t in range(grey.shape[1] - 1):
            back = cv2.remap(grey[i, t + 1], xx + flow[i, 0, t], yy + flow[i, 1, t], cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
            res += float(np.abs(grey[i, t] - back)[4:-4, 4:-4].mean())
            still += float(np.abs(grey[i, t] - grey[i, t + 1])[4:-4, 4:-4].mean())
    speed = float(np.median(np.linalg.norm(flow[:, :, :-1], axis=1)))
    return {"explained": 1.0 - res / still, "median_speed_px": speed}


def record(out: Path) -> list[dict]:
    """One dict a finished run of ``out``: name, the header lines of its log (time, commit, machine, command), wall
    time and the final epoch's metrics."""
    rows = []
    for log in sorted((out / "logs").glob("*.log")):
        res = _final(out, log.stem)
        lines = log.read_text().splitlines()
        head = [ln[2:] for ln in lines[:2] if ln.startswith("# ")]
        tail = [ln for ln in lines[-3:] if ln.startswith("# rc=")]
        if res is None or len(head) < 2:
            continue
        final = {k: v for k, v in res["final"].items() if not k.startswith(("epoch_time", "data_wait"))}
        rows.append({"run": log.stem, "started": head[0], "command": head[1], "end": tail[0][2:] if tail else "",
                     "final": final, "best": res.get("best", {})})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("commands", "run", "table", "flow-quality", "record"))
    ap.add_argument("--sets", nargs="+", default=["spin_zoom_sharp", "spiral_sharp", "speed_change"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--moby", nargs="*", default=[], help="sets whose groups also run MoBY")
    ap.add_argument("--queue", default="0/1", help="k/n: run every n-th group starting at k")
    ap.add_argument("--out", default="outputs/video_ssl")
    ap.add_argument("--target", default="flow", choices=list(TAGS), help="the pretraining target")
    ap.add_argument("--frame-interval", type=int, default=2,
                    help="data.frame_interval of every run: 2 = round 1, 1 = round 2 (the recipes now)")
    ap.add_argument("--estimator", default="farneback", choices=list(ESTIMATORS),
                    help="the pretraining's mim.flow_estimator")
    ap.add_argument("--head-time-bins", nargs="+", type=int, default=[1],
                    help="model.kwargs.head_time_bins of the fine-tuning and scratch runs (several: each)")
    a = ap.parse_args()
    out = Path(a.out)
    groups = [group(out, s, seed, s in a.moby, a.target, a.frame_interval, a.estimator, a.head_time_bins)
              for seed in a.seeds for s in a.sets]
    if a.action == "commands":
        for runs in groups:
            for _, cmd in runs:
                print(_shell(cmd))
    elif a.action == "run":
        k, n = (int(v) for v in a.queue.split("/"))
        run_queue(out, groups, k, n)
    elif a.action == "record":
        for row in record(out):
            print(json.dumps(row))
    elif a.action == "flow-quality":
        print("| set | change explained by the flow target | median speed (px a sampled frame) |\n|---|---|---|")
        for s in a.sets:
            q = flow_quality(s, frame_interval=a.frame_interval, estimator=a.estimator)
            print(f"| `{s}` | {q['explained']:.2f} | {q['median_speed_px']:.2f} |")
    else:
        print(table(out, a.sets, a.seeds, a.target, a.frame_interval, a.estimator, a.head_time_bins))


if __name__ == "__main__":
    main()
