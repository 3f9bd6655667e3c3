"""The tools: mask pictures in 2D and 3D (with a legend), training curves, the bench's CLI and table."""
from __future__ import annotations

import subprocess
import sys

import pytest
from PIL import Image

from bench.run import side_by_side
from cli import visualize_mask
from helpers import ROOT


@pytest.mark.parametrize("size, window", [((8, 8), (4, 4)), ((4, 8, 8), (2, 4, 4))])
def test_mask_picture_2d_and_3d(tmp_path, size, window):
    out = tmp_path / "mask.png"
    visualize_mask.main(["--size", *map(str, size), "--window", *map(str, window), "--out", str(out)])
    w, h = Image.open(out).size
    assert w > 600 and h > 300


def test_mask_picture_rejects_mixed_dimensions(tmp_path):
    with pytest.raises(SystemExit):
        visualize_mask.main(["--size", "4", "8", "8", "--window", "4", "4", "--out", str(tmp_path / "x.png")])


def test_bench_lists_its_tasks_and_rejects_others():
    r = subprocess.run([sys.executable, "-m", "bench.run", "--tasks", "resnet"], cwd=ROOT, capture_output=True,
                       text=True)
    assert r.returncode == 2 and "invalid choice: 'resnet' (choose from 'swin_t', 'swin3d_t')" in r.stderr


def test_bench_table_is_side_by_side():
    rows = [{"task": "swin_t", "mode": "train", "model": m, "input": [8, 3, 224, 224], "amp": "none", "sec": s,
             "items_per_s": 8 / s, "peak_gib": float("nan")}
            for m, s in (("timm", 2.0), ("torchvision", 2.2), ("ours(math)", 1.6), ("ours(sdpa)", 1.8))]
    table = side_by_side(rows).splitlines()
    assert len(table) == 3 and table[0].startswith("| task (input) | mode | amp | timm | torchvision | ours(math)")
    assert table[2].endswith("| **1.25** | **1.38** |")  # 2.0 / 1.6 and 2.2 / 1.6
