"""Diagnostic of diagnostics42.md: does the flow of speed_change clips carry the class? Per clip, the mean Farneback
speed of the moving pixels (> 0.3 px a frame) in each of the 7 frame pairs and the share of moving pixels, then a
logistic regression on the 400 labelled clips (and on 25 % of them, picked as fine-tuning picks them, seeds 0-2),
top-1 on the 100 validation clips.

    PYTHONPATH=. python results/video_ssl/speed_features.py [set]        # default speed_change
"""
import sys
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bench.hof_baseline import generated
from core.video.flow import clip_flow
from simmim.runs import label_subset


def speed_features(x: torch.Tensor) -> torch.Tensor:
    mag = clip_flow(x)[0].norm(dim=1)[:, :-1]                                # (N, 7, H, W) px a frame
    moving = (mag > 0.3).float()
    speed = (mag * moving).sum((2, 3)) / moving.sum((2, 3)).clamp_min(1)
    return torch.cat([speed, moving.mean((2, 3))], 1)


def fit(a: torch.Tensor, ya: torch.Tensor, b: torch.Tensor, yb: torch.Tensor) -> float:
    mu, sd = a.mean(0), a.std(0) + 1e-6
    a, b = (a - mu) / sd, (b - mu) / sd
    lin = torch.nn.Linear(a.shape[1], int(ya.max()) + 1)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=500)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(lin(a), ya) + 1e-3 * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return 100 * float((lin(b).argmax(1) == yb).float().mean())


def main(name: str) -> None:
    (xt, yt), (xv, yv) = generated(name)
    ft, fv = speed_features(xt), speed_features(xv)
    for c in range(int(yt.max()) + 1):
        print(f"class {c}: mean speed per frame pair", ft[yt == c, :7].mean(0).numpy().round(2))
    print(f"{name}: speed features + logistic regression, all 400 labels: val {fit(ft, yt, fv, yv):.1f} %")
    labelled = SimpleNamespace(targets=yt.numpy())
    accs = []
    for seed in (0, 1, 2):
        idx = torch.as_tensor(label_subset(labelled, SimpleNamespace(label_fraction=0.25, label_seed=seed)).indices)
        accs.append(fit(ft[idx], yt[idx], fv, yv))
    print(f"{name}: the same with 25 % of the labels (seeds 0 / 1 / 2): " + " / ".join(f"{a:.0f}" for a in accs)
          + f" % (mean {sum(accs) / 3:.1f})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "speed_change")
