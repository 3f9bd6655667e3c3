"""The issue-41 benchmark's pieces: the classical flow-histogram baseline's features and the protocol's commands."""
from __future__ import annotations

from pathlib import Path

import torch

from bench.hof_baseline import BINS, CELLS, fit_and_score, hof
from bench.video_ssl import group
from helpers import translating_clip


def test_hof_puts_a_translation_in_its_direction_bin():
    for (dx, dy), expected in (((1, 0), BINS // 2), ((-1, 0), 0), ((0, 1), 3 * BINS // 4)):
        h = hof(translating_clip((dx, dy), 8)).view(7, CELLS * CELLS, BINS)
        assert h.shape[0] * h.shape[1] * h.shape[2] == 7 * CELLS * CELLS * BINS
        top = h.sum(dim=(0, 1))      # axis directions lie on a bin edge: the two bins beside it hold the speed
        pair = float(top[expected] + top[(expected - 1) % BINS])
        assert pair > 0.95 * float(top.sum()), (dx, dy, top)
        assert 0.8 < float(top.sum()) / (7 * CELLS * CELLS) < 1.2          # the mean speed of a cell: 1 px a frame


def test_linear_classifier_separates_two_directions():
    clips = torch.cat([translating_clip(shift, 8) for shift in ((1, 0), (-1, 0), (0, 1), (0, -1))])
    feats = hof(clips)
    labels = torch.tensor([0, 1, 2, 3])
    assert fit_and_score(feats, labels, feats, labels, 1e-2) == 100.0


def test_protocol_group_tags_the_estimator_and_shares_the_scratch_runs(tmp_path: Path):
    dis = dict(group(tmp_path, "swarm", 1, frame_interval=1, estimator="dis"))
    far = dict(group(tmp_path, "swarm", 1, frame_interval=1))
    assert "swarm_ptfi1dis_s1" in dis and "swarm_ptfi1_s1" in far
    assert "mim.flow_estimator=dis" in dis["swarm_ptfi1dis_s1"] and not any(
        "flow_estimator" in c for cmd in far.values() for c in cmd)
    shared = {r for r in dis if "_sc" in r or "lprand" in r}
    assert shared == {r for r in far if "_sc" in r or "lprand" in r} and len(shared) == 4
    assert all("data.frame_interval=1" in cmd for cmd in dis.values())


def test_baseline_runs_on_your_own_list_files(tmp_path: Path):
    import subprocess
    import sys

    from core.video.synthetic import ensure_swarm
    root = ensure_swarm(tmp_path / "clips", num_train=8, num_val=4, num_frames=8)
    out = subprocess.run([sys.executable, "-m", "bench.hof_baseline", "--root", str(root), "--train",
                          str(root / "train.txt"), "--val", str(root / "val.txt"), "--size", "16", "--fractions", "1"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == "| set | HOF + linear, 100% of the labels |" and out[2].startswith(f"| `{root}` | **")
    accuracy = float(out[2].split("**")[1])
    assert accuracy in (0.0, 25.0, 50.0, 75.0, 100.0)          # 4 validation clips


def test_protocol_group_repeats_the_fine_tuning_for_each_head_and_shares_the_rest(tmp_path: Path):
    runs = dict(group(tmp_path, "ramp", 2, frame_interval=1, head_time_bins=(1, 4)))
    plain = dict(group(tmp_path, "ramp", 2, frame_interval=1))
    timed = {r: c for r, c in runs.items() if r not in plain}
    assert sorted(timed) == sorted(r.replace("_s2", "_tb4_s2") for r in plain if "_ft" in r or "_sc" in r)
    assert all("model.kwargs.head_time_bins=4" in c for c in timed.values())
    assert not any("head_time_bins" in c for cmd in plain.values() for c in cmd)
    assert all(runs[r] == c for r, c in plain.items())                  # pretraining and probes: the same runs
