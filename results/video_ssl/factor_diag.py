"""Diagnostic sets of diagnostics42.md, one factor of speed_change at a time (classes unused by the pretraining):

- ``indep``: swarm-like small bright shapes over a dimmed sharp still texture, each moving its own random direction
  at 0.5-1 px a frame (is independent object motion learned?);
- ``sc_small``: speed_change's speed profiles and speeds (top 1.5-3 px a frame), with indep's small bright shapes
  and background (is it speed_change's appearance?);
- ``sc_slow``: speed_change's appearance and profiles, top speed 0.5-1 px a frame (is it its speed?);
- ``sc_large``: speed_change's profiles, speeds and 2-4 large shapes, in bright colours over the dimmed sharp texture
  (is it the shapes' size?);
- ``sc_smooth``: speed_change's profiles, speeds, smooth dull background and random colours, with 4-7 small shapes
  (is it the background and the contrast?);
- ``sc_bright``: speed_change itself (profiles, speeds, 2-4 large shapes, smooth dull background) with the shapes in
  bright colours, 190-255 a channel (is it the random colours?);
- ``sc_random``: sc_large (the dimmed sharp texture) with speed_change's random colours (is it the background?).

    PYTHONPATH=. python results/video_ssl/factor_diag.py measure     # flow spread vs grey change of the sets below
    PYTHONPATH=. python results/video_ssl/factor_diag.py truth       # the flow target against the true motion
    PYTHONPATH=. python results/video_ssl/factor_diag.py VARIANT     # prints the folder; then pretrain on it with
    python -m simmim.pretrain --config configs/simmim/tiny_spin_zoom.yaml --opt data.dataset=kinetics \
        data.root=DIR data.ann_train=DIR/train.txt data.ann_val=DIR/val.txt train.seed=0 train.epochs=30 \
        sched.warmup_epochs=1 data.num_workers=0 data.decoded_cache_mb=256 data.frame_interval=1
"""
import sys
from functools import partial

import numpy as np

from core.video.synthetic import (
    SPEED_CHANGE_CLASSES,
    _kind_ensurer,
    _periodic_texture,
    default_cache_dir,
    paint_shapes,
    speed_profile,
)

# the look of each variant: (background, shapes, lowest colour value a channel); indep and sc_small: the default
# sharp: the dimmed sharp texture; smooth: speed_change's smooth, dull one. large: 2-4 shapes of radius 2.5 to
# size / 6 (speed_change's); small: 4-7 of radius 1.5-3. Colours uniform from the lowest value to 255.
LOOKS = {"sc_slow": ("smooth", "large", 0), "sc_large": ("sharp", "large", 120), "sc_bright": ("smooth", "large", 190),
         "sc_random": ("sharp", "large", 0), "sc_smooth": ("smooth", "small", 0)}
DEFAULT_LOOK = ("sharp", "small", 120)


def render(rng: np.random.Generator, cls: str, num_frames: int = 16, size: int = 32, variant: str = "indep"
           ) -> np.ndarray:
    background, shapes, lowest = LOOKS.get(variant, DEFAULT_LOOK)
    if background == "sharp":
        tex = _periodic_texture(rng, size, sharp=True) * 0.4 + 40
    else:
        tex = _periodic_texture(rng, size) * 0.5 + 64
    n = int(rng.integers(2, 5) if shapes == "large" else rng.integers(4, 8))
    kinds = rng.integers(0, 3, n)
    rad = rng.uniform(2.5, size / 6, n) if shapes == "large" else rng.uniform(1.5, 3.0, n)
    colors = rng.uniform(lowest, 255, (n, 3))
    ang = rng.uniform(0, 2 * np.pi, n)
    direction = np.stack([np.sin(ang), np.cos(ang)], 1)
    if variant == "indep":
        vel = direction * float(rng.uniform(0.5, 1.0))
        mid = rng.uniform(0, size, (n, 2))
        centres = mid + (np.arange(num_frames) - num_frames // 2)[:, None, None] * vel
        return paint_shapes(tex, centres, kinds, rad, colors, rng)
    top = float(rng.uniform(0.5, 1.0) if variant == "sc_slow" else rng.uniform(1.5, 3.0))
    offset = np.concatenate([[0.0], np.cumsum(speed_profile(cls, num_frames, top)[:-1])])
    offset = offset - offset[num_frames // 2]
    mid = rng.uniform(0, size, (n, 2))
    return paint_shapes(tex, mid + offset[:, None, None] * direction, kinds, rad, colors, rng)


CLASSES = {"indep": ("a", "b"), "sc_small": SPEED_CHANGE_CLASSES, "sc_slow": SPEED_CHANGE_CLASSES,
           "sc_large": SPEED_CHANGE_CLASSES, "sc_smooth": SPEED_CHANGE_CLASSES, "sc_bright": SPEED_CHANGE_CLASSES,
           "sc_random": SPEED_CHANGE_CLASSES}

def measure() -> None:
    """Per set (100 validation clips): the share of pixels the flow target moves (> 0.3 px a frame) and the share
    whose grey value changes (> 10 % of the clip's largest change)."""
    from bench.hof_baseline import clips
    from core.video.flow import clip_flow
    for name in ["speed_change", "sc_large_diag", "sc_smooth_diag", "sc_small_diag"]:
        root = default_cache_dir() / f"{name}_2000_100"
        x, _ = clips(root, root / "val.txt", 100)
        moving = float((clip_flow(x)[0][:, :, :-1].norm(dim=1) > 0.3).float().mean())
        d = (x.mean(1)[:, 1:] - x.mean(1)[:, :-1]).abs()
        changed = float((d > 0.1 * d.flatten(1).amax(1).view(-1, 1, 1, 1)).float().mean())
        print(f"{name}: flow moves {moving:.3f} of the pixels, grey changes at {changed:.3f}; ratio "
              f"{moving / changed:.1f}")


def _true_flow(centres: np.ndarray, kinds: np.ndarray, radius: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 2) true motion (dx, dy) from frame t to t + 1 of the painted shapes (the last one painted on top),
    zero on the still background and at the last frame."""
    from core.video.synthetic import shape_mask
    flow = np.zeros((len(centres), size, size, 2))
    for t in range(len(centres) - 1):
        for k in range(len(kinds)):
            v = centres[t + 1, k] - centres[t, k]
            flow[t][shape_mask(kinds[k], centres[t, k], radius[k], size)] = (v[1], v[0])
    return flow


def truth(n: int = 60) -> None:
    """Per set (n clips rendered afresh, before encoding; the 7 middle frame pairs): Farneback against the true
    motion of the shapes: end-point error and cosine on moving shape pixels, and the mean speed it gives pixels more
    than 3 px from any shape (where nothing moves)."""
    import torch
    from scipy.ndimage import binary_dilation

    import core.video.synthetic as syn
    from core.video.flow import clip_flow
    painted, paint = {}, syn.paint_shapes

    def spy(tex, centres, kinds, radius, *args, **kwargs):  # the renderers' shapes, as they are painted
        painted.update(centres=centres, kinds=kinds, radius=radius)
        return paint(tex, centres, kinds, radius, *args, **kwargs)

    renderers = {"speed_change": syn.render_speed_change_clip,
                 **{v: partial(render, variant=v) for v in ("sc_large", "sc_small", "sc_smooth", "sc_bright",
                                                           "sc_random")}}
    syn.paint_shapes = globals()["paint_shapes"] = spy
    try:
        for name, rend in renderers.items():
            rows = []
            for i in range(n):
                frames = rend(np.random.default_rng([7, i]), SPEED_CHANGE_CLASSES[i % 4])
                true = _true_flow(painted["centres"], painted["kinds"], painted["radius"], frames.shape[1])[4:11]
                est = clip_flow(torch.from_numpy(frames).float().permute(3, 0, 1, 2)[None])[0][0]
                est = est.permute(1, 2, 3, 0).numpy()[4:11]
                speed, est_speed = np.linalg.norm(true, axis=-1), np.linalg.norm(est, axis=-1)
                moving = speed > 0.3
                near = np.stack([binary_dilation(a > 0.3, iterations=3) | binary_dilation(b > 0.3, iterations=3)
                                 for a, b in zip(speed, np.roll(speed, -1, 0))])
                cos = (est * true).sum(-1) / (est_speed * speed + 1e-6)
                rows.append([np.linalg.norm(est - true, axis=-1)[moving].mean(), cos[moving].mean(),
                             est_speed[~near].mean()])
            epe, cos, far = np.nanmean(rows, 0)
            print(f"{name}: end-point error {epe:.2f} px, cosine {cos:.2f} on moving shape pixels; "
                  f"{far:.2f} px a frame where nothing moves (> 3 px from a shape)")
    finally:
        syn.paint_shapes = globals()["paint_shapes"] = paint


if __name__ == "__main__":
    if sys.argv[1:] in (["measure"], ["truth"]):
        {"measure": measure, "truth": truth}[sys.argv[1]]()
        sys.exit()
    v = sys.argv[1] if len(sys.argv) > 1 else "indep"
    ensure = _kind_ensurer(f"{v}_diag", 1, CLASSES[v], partial(render, variant=v), f"{v} diagnostic")
    print(ensure(default_cache_dir() / f"{v}_diag_2000_100", num_train=2000, num_val=100))
