"""A classical baseline for the motion sets of issue 41: histograms of optical flow (HOF, as in Laptev et al.'s
action recognition features) + a linear classifier, no deep features and no pretraining.

    python -m bench.hof_baseline --sets spin_zoom_sharp spiral_sharp speed_change swarm --seeds 0 1 2
    python -m bench.hof_baseline --root myclips --train myclips/labelled.txt --val myclips/val.txt --size 64

Each clip is sampled as the fine-tuning recipes sample validation clips (8 consecutive frames, centred, 32x32). For
each of its 7 frame pairs, the flow of the chosen estimator (``core.video.flow``) is binned by direction (8 bins,
weighted by speed) in each quarter of the frame: 7 x 4 x 8 = 224 numbers a clip, standardised on the labelled
clips. Multinomial logistic regression (L-BFGS, L2 ``--l2``) on the labelled clips picked as fine-tuning picks them
(``finetune.label_fraction`` of each class, ``label_seed`` = seed), top-1 on the 100 validation clips. Your own
clips: ``--root`` with mmaction2 list files (``path label`` a line) for ``--train`` and ``--val``, all their clips,
frames resized to ``--size``.
"""
from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F

from core.video.flow import ESTIMATORS, clip_flow

BINS, CELLS = 8, 2


def clips(root: str | Path, ann: str | Path, limit: int | None = None, size: int = 32
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(clips (N, 3, 8, size, size), labels) of a list file: 8 consecutive frames, centred, as validation samples."""
    from core.video.data import build_video_dataset
    ds = build_video_dataset(root, ann, split="val", clip_len=8, frame_interval=1, crop_size=size, short_side=size)
    items = [ds[i] for i in range(min(limit or len(ds), len(ds)))]
    return torch.stack([it["video"][0] for it in items]), torch.tensor([int(it["label"]) for it in items])


def generated(name: str) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """(the 400 labelled-pool clips, the 100 validation clips) of a generated set's 2000 + 100 folder."""
    from core.video.sources import GENERATED
    root = GENERATED[name](None, num_train=2000, num_val=100)
    return clips(root, root / "train.txt", 400), clips(root, root / "val.txt", 100)


def hof(x: torch.Tensor, estimator: str = "farneback") -> torch.Tensor:
    """(N, 7 * CELLS^2 * BINS) histograms of the flow's direction weighted by its speed, per frame pair and cell."""
    flow = clip_flow(x, estimator)[0][:, :, :-1]                              # (N, 2, T - 1, H, W)
    mag = flow.norm(dim=1)
    b = ((torch.atan2(flow[:, 1], flow[:, 0]) + math.pi) / (2 * math.pi) * BINS).long().clamp(0, BINS - 1)
    onehot = F.one_hot(b, BINS).float() * mag.unsqueeze(-1)                  # (N, T - 1, H, W, BINS)
    n, t, h, w, _ = onehot.shape
    cells = onehot.reshape(n, t, CELLS, h // CELLS, CELLS, w // CELLS, BINS).mean(dim=(3, 5))
    return cells.flatten(1)


def labelled(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Indices of the clips fine-tuning labels at ``finetune.label_fraction`` / ``label_seed`` (simmim.runs)."""
    from simmim.runs import label_subset
    keep = label_subset(SimpleNamespace(targets=labels.numpy()), SimpleNamespace(label_fraction=fraction,
                                                                                label_seed=seed))
    return torch.as_tensor(keep.indices if hasattr(keep, "indices") else range(len(labels)))


def fit_and_score(a: torch.Tensor, ya: torch.Tensor, b: torch.Tensor, yb: torch.Tensor, l2: float) -> float:
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    lin = torch.nn.Linear(a.shape[1], int(ya.max()) + 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(a), ya) + l2 * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return 100.0 * float((lin(b).argmax(1) == yb).float().mean())


def seed_scores(ft: torch.Tensor, yt: torch.Tensor, fv: torch.Tensor, yv: torch.Tensor, fraction: float,
                seeds: list[int] | tuple[int, ...], l2: float) -> list[float]:
    """Top-1 % on (fv, yv) of :func:`fit_and_score` on the labelled clips fine-tuning picks at ``fraction`` with
    each label seed (one run with all labels: the first seed only)."""
    return [fit_and_score(ft[idx], yt[idx], fv, yv, l2)
            for idx in (labelled(yt, fraction, seed) for seed in (seeds if fraction < 1 else seeds[:1]))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["spin_zoom", "spin_zoom_sharp", "spiral_sharp", "speed_change",
                                                  "swarm"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.1, 1.0])
    ap.add_argument("--estimator", default="farneback", choices=list(ESTIMATORS))
    ap.add_argument("--l2", type=float, default=1e-2)
    ap.add_argument("--root", help="your clips' folder (then --train and --val list files instead of --sets)")
    ap.add_argument("--train")
    ap.add_argument("--val")
    ap.add_argument("--size", type=int, default=32, help="frame size of --root's clips")
    a = ap.parse_args()
    if a.root and not (a.train and a.val):
        ap.error("--root needs --train and --val list files")
    torch.manual_seed(0)
    print(f"| set | {' | '.join(f'HOF + linear, {f:.0%} of the labels' for f in a.fractions)} |")
    print("|---|" + "---|" * len(a.fractions))
    for name in [a.root] if a.root else a.sets:
        if a.root:
            (xt, yt), (xv, yv) = clips(a.root, a.train, size=a.size), clips(a.root, a.val, size=a.size)
        else:
            (xt, yt), (xv, yv) = generated(name)
        ft, fv = hof(xt, a.estimator), hof(xv, a.estimator)
        cells = []
        for frac in a.fractions:
            accs = seed_scores(ft, yt, fv, yv, frac, a.seeds, a.l2)
            cells.append(f"**{np.mean(accs):.1f}** ({' / '.join(f'{v:.0f}' for v in accs)})")
        print(f"| `{name}` | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
