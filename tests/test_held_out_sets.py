"""The held-out motion sets of issue 41 (spin_zoom_sharp, spiral_sharp): real decodable mp4s, their textures and
speeds against the sets the recipes were chosen on, measured with the flow estimator of ``mim.target=flow``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core.video.flow import clip_flow
from core.video.sources import GENERATED, is_video_set
from core.video.synthetic import (
    SPIN_ZOOM_CLASSES,
    SPIRAL_CLASSES,
    _periodic_texture,
    ensure_spin_zoom_sharp,
    ensure_spiral_sharp,
    render_spin_zoom_clip,
    render_spiral_clip,
)

SLOW_SHARP = dict(sharp=True, turn=(1.5, 3.0), rate_range=(1.015, 1.03))
FAST_SHARP = dict(sharp=True, turn=(6.0, 9.0), rate_range=(1.06, 1.09), drift=(1.0, 2.0))


def _speed(render, classes, **kw) -> float:
    """Median flow speed (px a frame) over 8 clips of every class, 8 frames every 2nd as the recipes sample."""
    clips = [render(np.random.default_rng([5, i]), c, 16, 32, **kw)[::2] for i in range(8) for c in classes]
    x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float()
    flow, _ = clip_flow(x)
    return float(flow[:, :, :-1].norm(dim=1).median())


def test_held_out_speeds_differ_from_the_choice_set():
    chosen = _speed(render_spin_zoom_clip, SPIN_ZOOM_CLASSES)
    slow = _speed(render_spin_zoom_clip, SPIN_ZOOM_CLASSES, **SLOW_SHARP)
    fast = _speed(render_spiral_clip, SPIRAL_CLASSES, **FAST_SHARP)
    assert slow < 0.75 * chosen and fast > 1.5 * chosen, (slow, chosen, fast)


def test_sharp_texture_has_hard_edges_and_two_tones():
    smooth = _periodic_texture(np.random.default_rng(0), 32)
    sharp = _periodic_texture(np.random.default_rng(0), 32, sharp=True)
    edge = lambda t: np.abs(np.diff(t, axis=1)).max(axis=2)  # noqa: E731
    assert (edge(sharp) > 45).mean() > 4 * (edge(smooth) > 45).mean()
    for c in range(3):  # two tones per channel, and the shapes' colours
        assert len(np.unique(sharp[..., c])) <= 2 + 6


@pytest.mark.parametrize("name,ensure,render,classes,kw", [
    ("spin_zoom_sharp", ensure_spin_zoom_sharp, render_spin_zoom_clip, SPIN_ZOOM_CLASSES, SLOW_SHARP),
    ("spiral_sharp", ensure_spiral_sharp, render_spiral_clip, SPIRAL_CLASSES, FAST_SHARP),
])
def test_held_out_set_is_real_decodable_mp4(name, ensure, render, classes, kw, tmp_path):
    import decord
    root = ensure(tmp_path / name, num_train=8, num_val=4, num_frames=8)
    assert (root / "classes.txt").read_text().split() == list(classes)
    lines = (root / "val.txt").read_text().split("\n")[:-1]
    frames = decord.VideoReader(str(root / lines[1].split()[0])).get_batch(list(range(8))).asnumpy()
    clip = render(np.random.default_rng([0, 1, 1]), classes[1], 8, 32, **kw).astype(float)
    other = render(np.random.default_rng([0, 1, 2]), classes[2], 8, 32, **kw).astype(float)
    assert np.abs(frames - clip).mean() < 0.5 * np.abs(frames - other).mean()  # up to the lossy codec
    assert is_video_set(name) and GENERATED[name] is ensure
