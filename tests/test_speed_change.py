"""The generated speed-change clip set: speed profiles, real decodable mp4s, and speed changes what the frames show."""
from __future__ import annotations

import numpy as np
import pytest

from core.video.synthetic import SPEED_CHANGE_CLASSES, ensure_speed_change, render_speed_change_clip, speed_profile


def test_speed_profiles_and_their_time_reversal():
    up, down = speed_profile("speed_up", 16, 2.0), speed_profile("slow_down", 16, 2.0)
    turn, steady = speed_profile("turn_back", 16, 2.0), speed_profile("steady", 16, 2.0)
    assert up[0] == pytest.approx(0.2) and up[-1] == pytest.approx(2.0) and np.all(np.diff(up) > 0)
    np.testing.assert_allclose(up[::-1], down)            # played backwards, speeding up is slowing down
    np.testing.assert_allclose(turn[::-1], -turn)         # turning back stays turning back, direction reversed
    assert turn[0] == pytest.approx(2.0) and turn[-1] == pytest.approx(-2.0)
    np.testing.assert_allclose(steady, 1.1)
    with pytest.raises(ValueError, match="profile must be one of"):
        speed_profile("left", 16, 2.0)


def _change(profile: str, clips: int = 12) -> np.ndarray:
    """Mean absolute change between consecutive frames, (T - 1,), averaged over clips (noise alone gives ~3.4)."""
    diffs = [np.abs(np.diff(render_speed_change_clip(np.random.default_rng([9, i]), profile, 16, 32)
                            .astype(float), axis=0)).mean(axis=(1, 2, 3)) for i in range(clips)]
    return np.mean(diffs, 0)


def test_the_frames_change_as_fast_as_the_shapes_move():
    up, down, turn, steady = (_change(c) for c in SPEED_CHANGE_CLASSES)
    assert up[-4:].mean() > 1.6 * up[:4].mean()
    assert down[:4].mean() > 1.6 * down[-4:].mean()
    assert min(turn[:3].mean(), turn[-3:].mean()) > 1.6 * turn[6:9].mean()  # at rest mid-clip
    assert 0.7 < steady[-4:].mean() / steady[:4].mean() < 1.4


def test_another_size_of_a_generated_set_gets_its_own_cache_folder(tmp_path, monkeypatch):
    """The default folder is <cache>/<name> at 400 + 100 clips and <cache>/<name>_<train>_<val> otherwise, so
    pretraining on more generated clips (--opt data.num_train=2000) needs no data.root."""
    from core.video.synthetic import _default_root
    monkeypatch.setenv("SWIN_SUITE_CACHE", str(tmp_path))
    assert _default_root("spin_zoom", 400, 100) == tmp_path / "spin_zoom"
    assert _default_root("spin_zoom", 2000, 100) == tmp_path / "spin_zoom_2000_100"
    assert ensure_speed_change(num_train=8, num_val=4, num_frames=4) == tmp_path / "speed_change_8_4"
