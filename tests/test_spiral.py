"""The generated spiral clip set (its motions, their time reversal, the rendered frames) and the generated motion sets' real
decodable mp4s."""
from __future__ import annotations

import numpy as np
import pytest

from core.video.sources import is_video_set
from core.video.synthetic import (
    SPEED_CHANGE_CLASSES,
    SPIRAL_CLASSES,
    ensure_speed_change,
    ensure_spiral,
    render_speed_change_clip,
    render_spiral_clip,
    spiral_motion,
)


def test_spiral_motions_and_their_time_reversal():
    v = np.array([0.6, -0.8])
    angle, scale, offset = spiral_motion("clockwise_in", 9, 0.1, 1.05, v)
    assert angle[4] == 0 and scale[4] == 1 and np.all(offset[4] == 0)        # relative to the middle frame
    assert np.all(np.diff(angle) > 0) and np.all(np.diff(scale) > 0)        # turns clockwise, zooms in
    np.testing.assert_allclose(np.diff(offset, axis=0), np.tile(v, (8, 1)))  # drifts at v px a frame
    a2, s2, o2 = spiral_motion("anticlockwise_out", 9, 0.1, 1.05, -v)
    np.testing.assert_allclose(angle[::-1], a2)                              # played backwards: the opposite
    np.testing.assert_allclose(scale[::-1], s2)                              # class on both counts, and the
    np.testing.assert_allclose(offset[::-1], o2)                             # drift reversed
    with pytest.raises(ValueError, match="motion must be one of"):
        spiral_motion("zoom_in", 9, 0.1, 1.05, v)


def test_spiral_clips_move_and_one_frame_does_not_tell_the_class():
    clips = {c: render_spiral_clip(np.random.default_rng([3, i]), c, 16, 32) for i, c in enumerate(SPIRAL_CLASSES)}
    for x in clips.values():
        assert x.shape == (16, 32, 32, 3) and x.dtype == np.uint8
        assert np.abs(np.diff(x.astype(float), axis=0)).mean() > 8       # everything moves (noise alone: ~3.4)
    again = render_spiral_clip(np.random.default_rng([3, 0]), "clockwise_in", 16, 32)
    np.testing.assert_array_equal(again, clips["clockwise_in"])          # seeded
    mids = np.array([[render_spiral_clip(np.random.default_rng([4, c, i]), m, 16, 32)[8].mean()
                      for i in range(6)] for c, m in enumerate(SPIRAL_CLASSES)])
    assert np.ptp(mids.mean(1)) < 3 * mids.std(1).mean()                 # middle frames alike across classes


@pytest.mark.parametrize("name,ensure,render,classes", [
    ("speed_change", ensure_speed_change, render_speed_change_clip, SPEED_CHANGE_CLASSES),
    ("spiral", ensure_spiral, render_spiral_clip, SPIRAL_CLASSES),
])
def test_generated_motion_set_is_real_decodable_mp4(name, ensure, render, classes, tmp_path):
    import decord
    root = ensure(tmp_path / name, num_train=8, num_val=4, num_frames=8)
    assert (root / "classes.txt").read_text().split() == list(classes)
    lines = (root / "val.txt").read_text().split("\n")[:-1]
    assert [int(ln.split()[1]) for ln in lines] == [0, 1, 2, 3]
    frames = decord.VideoReader(str(root / lines[1].split()[0])).get_batch(list(range(8))).asnumpy()
    clip = render(np.random.default_rng([0, 1, 1]), classes[1], 8, 32).astype(float)
    other = render(np.random.default_rng([0, 1, 2]), classes[2], 8, 32).astype(float)
    assert np.abs(frames - clip).mean() < 0.5 * np.abs(frames - other).mean()  # up to the lossy codec
    assert ensure(tmp_path / name, num_train=8, num_val=4, num_frames=8) == root  # cached
    assert is_video_set(name) and ensure.__name__ == f"ensure_{name}"
