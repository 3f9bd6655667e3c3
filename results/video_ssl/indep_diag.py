"""Diagnostic set of diagnostics42.md: swarm-like small shapes over a dimmed sharp still texture, each moving its own
random direction at 0.5-1 px a frame (no common centre; two dummy classes): is independent object motion learned by
the flow pretraining?

    PYTHONPATH=. python results/video_ssl/indep_diag.py      # prints the folder; then pretrain on it with
    python -m simmim.pretrain --config configs/simmim/tiny_spin_zoom.yaml --opt data.dataset=kinetics \
        data.root=DIR data.ann_train=DIR/train.txt data.ann_val=DIR/val.txt train.seed=0 train.epochs=30 \
        sched.warmup_epochs=1 data.num_workers=0 data.decoded_cache_mb=256 data.frame_interval=1
"""
import numpy as np

from core.video.synthetic import _kind_ensurer, _periodic_texture, _shape_mask, default_cache_dir


def render(rng: np.random.Generator, cls: str, num_frames: int = 16, size: int = 32) -> np.ndarray:
    tex = _periodic_texture(rng, size, sharp=True) * 0.4 + 40
    n = int(rng.integers(4, 8))
    kinds, rad = rng.integers(0, 3, n), rng.uniform(1.5, 3.0, n)
    colors, ang = rng.uniform(120, 255, (n, 3)), rng.uniform(0, 2 * np.pi, n)
    vel = np.stack([np.sin(ang), np.cos(ang)], 1) * float(rng.uniform(0.5, 1.0))
    mid = rng.uniform(0, size, (n, 2))
    pos = mid + (np.arange(num_frames) - num_frames // 2)[:, None, None] * vel
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i in range(num_frames):
        img = tex.copy()
        for k in range(n):
            dy = (yy - pos[i, k, 0] + size / 2) % size - size / 2
            dx = (xx - pos[i, k, 1] + size / 2) % size - size / 2
            img[_shape_mask(kinds[k], dy, dx, rad[k])] = colors[k]
        frames[i] = np.clip(img + rng.normal(0, 3, img.shape), 0, 255)
    return frames


ensure = _kind_ensurer("indep_diag", 1, ("a", "b"), render, "independent-motion diagnostic")
if __name__ == "__main__":
    print(ensure(default_cache_dir() / "indep_diag_2000_100", num_train=2000, num_val=100))
