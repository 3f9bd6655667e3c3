"""Diagnostic of diagnostics42.md: does the flow of speed_change clips carry the class? Per clip, the mean Farneback
speed of the moving pixels (> 0.3 px a frame) in each of the 7 frame pairs and the share of moving pixels, then a
logistic regression on the 400 labelled clips (and on 25 % of them, picked as fine-tuning picks them, seeds 0-2),
top-1 on the 100 validation clips.

    PYTHONPATH=. python results/video_ssl/speed_features.py [set]        # default speed_change
"""
import sys

import torch

from bench.hof_baseline import fit_and_score, generated, seed_scores
from core.video.flow import clip_flow


def speed_features(x: torch.Tensor) -> torch.Tensor:
    mag = clip_flow(x)[0].norm(dim=1)[:, :-1]                                # (N, 7, H, W) px a frame
    moving = (mag > 0.3).float()
    speed = (mag * moving).sum((2, 3)) / moving.sum((2, 3)).clamp_min(1)
    return torch.cat([speed, moving.mean((2, 3))], 1)


def main(name: str) -> None:
    (xt, yt), (xv, yv) = generated(name)
    ft, fv = speed_features(xt), speed_features(xv)
    for c in range(int(yt.max()) + 1):
        print(f"class {c}: mean speed per frame pair", ft[yt == c, :7].mean(0).numpy().round(2))
    print(f"{name}: speed features + logistic regression, all 400 labels: val {fit_and_score(ft, yt, fv, yv, 1e-3):.1f} %")
    accs = seed_scores(ft, yt, fv, yv, 0.25, (0, 1, 2), 1e-3)
    print(f"{name}: the same with 25 % of the labels (seeds 0 / 1 / 2): " + " / ".join(f"{a:.0f}" for a in accs)
          + f" % (mean {sum(accs) / 3:.1f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "speed_change")
