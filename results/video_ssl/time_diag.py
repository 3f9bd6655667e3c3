"""Diagnostic of diagnostics42.md: does averaging over time (the Video Swin head's global pool) hide speed change?

    PYTHONPATH=. python results/video_ssl/time_diag.py probe ROOT CKPT [CKPT ...]   # CKPT may be "random"

``probe``: on ROOT's first 400 training clips and 100 validation clips (list files train.txt / val.txt), logistic
regression on 25 % of the labels (picked as fine-tuning picks them, seeds 0-2) of (a) the flow speeds of each frame
pair (speed_features.py) and the same averaged over the pairs, (b) the frozen last-stage features of each
checkpoint (the tiny Video Swin of the recipes) averaged over time and space, as the head sees them, or over space
only, the T' = 4 temporal tokens side by side. The fine-tuning with a head that keeps time the same way is now an
option of every video model: ``python -m simmim.finetune ... --opt model.kwargs.head_time_bins=4`` (the runs of
diagnostics42.md used this file's earlier ``finetune`` mode, commit 5daf03a: the same head, initialised from
another draw of the random generator).
"""
import sys
from pathlib import Path

import torch

from bench.hof_baseline import clips, seed_scores

RECIPE = "configs/simmim/tiny_spin_zoom_ft.yaml"  # the model probed


def _recipe() -> tuple[str, dict]:
    """(model name, model kwargs) of :data:`RECIPE`."""
    from core.engine.config import load_config
    from simmim.config import VideoFinetuneConfig
    cfg = load_config(RECIPE, [], VideoFinetuneConfig)
    return cfg.model.name, dict(cfg.model.kwargs)


def _show(name: str, ft: torch.Tensor, fv: torch.Tensor, yt: torch.Tensor, yv: torch.Tensor) -> None:
    accs = seed_scores(ft, yt, fv, yv, 0.25, (0, 1, 2), 1e-2)
    print(f"{name}: {sum(accs) / 3:.1f} % ({' / '.join(f'{a:.0f}' for a in accs)})")


def probe(root: Path, ckpts: list[str]) -> None:
    from speed_features import speed_features

    from core.convert.load import load_pretrained
    from core.hub.models import create_model
    (xt, yt), (xv, yv) = clips(root, root / "train.txt", 400), clips(root, root / "val.txt", 100)
    st, sv = speed_features(xt), speed_features(xv)
    _show("flow speeds of each frame pair", st, sv, yt, yv)
    pair_mean = lambda s: torch.stack([s[:, :7].mean(1), s[:, 7:].mean(1)], 1)  # noqa: E731
    _show("flow speeds averaged over the pairs", pair_mean(st), pair_mean(sv), yt, yv)
    name, kwargs = _recipe()
    for ckpt in ckpts:
        torch.manual_seed(0)
        model = create_model(name, num_classes=4, **kwargs)
        if ckpt != "random":
            load_pretrained(model, ckpt)
        with torch.no_grad():
            ht, hv = model.eval().forward_features(xt), model.forward_features(xv)     # (N, T', H', W', C)
        _show(f"{ckpt}, averaged over time and space", ht.mean((1, 2, 3)), hv.mean((1, 2, 3)), yt, yv)
        _show(f"{ckpt}, averaged over space, time kept", ht.mean((2, 3)).flatten(1), hv.mean((2, 3)).flatten(1),
              yt, yv)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    if sys.argv[1] == "probe":
        probe(Path(sys.argv[2]).expanduser(), sys.argv[3:])
    else:
        sys.exit(__doc__)
