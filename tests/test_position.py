"""Relative position index and bias, including windows shrunk along any axis."""
import itertools

import pytest
import torch

from core.nn.position import embed_bias_table, relative_position_index, resize_bias_table, table_size


def offset_table(table_window):
    """A 'table' whose row r holds the offset tuple it stands for, enumerated directly."""
    ranges = [range(-(w - 1), w) for w in table_window]
    return torch.tensor(list(itertools.product(*ranges)))


@pytest.mark.parametrize("window,table_window", [
    ((7, 7), (7, 7)), ((8, 7, 7), (8, 7, 7)),
    ((4, 7, 7), (8, 7, 7)), ((8, 5, 7), (8, 7, 7)), ((8, 7, 3), (8, 7, 7)), ((2, 3, 4), (8, 7, 7)),
])
def test_index_points_at_true_offsets(window, table_window):
    assert table_size(table_window) == len(offset_table(table_window))
    index = relative_position_index(window, table_window)
    coords = torch.tensor(list(itertools.product(*[range(w) for w in window])))
    looked_up = offset_table(table_window)[index]  # (N, N, ndim)
    assert torch.equal(looked_up, coords[:, None] - coords[None])


def test_torchvision_style_slicing_is_wrong_off_the_time_axis():
    """Slicing the full index [:N, :N] is right only when the window shrinks along the first axis."""
    full = relative_position_index((8, 7, 7))
    for window, right in (((4, 7, 7), True), ((8, 5, 7), False)):
        n = torch.Size(window).numel()
        assert torch.equal(full[:n, :n], relative_position_index(window, (8, 7, 7))) == right


def test_table_sizes():
    assert table_size((7, 7)) == 13 ** 2
    assert table_size((8, 7, 7)) == 15 * 13 * 13


def test_resize_is_bicubic_and_keeps_a_smooth_table():
    x = torch.linspace(-1, 1, 13)
    plane = (x[:, None] + 2 * x[None]).reshape(-1, 1).repeat(1, 3)
    out = resize_bias_table(plane, (7, 7), (12, 12))
    assert out.shape == (23 * 23, 3)
    grid = out[:, 0].view(23, 23)
    # a linear ramp stays monotonic, zero at offset 0, and keeps its range
    assert torch.allclose(grid[11, 11], torch.tensor(0.0), atol=1e-5)
    assert grid[:, 11].diff().gt(0).all() and grid[11, :].diff().gt(0).all()
    assert abs(grid.max().item() - 3.0) < 0.1 and abs(grid.min().item() + 3.0) < 0.1
    assert torch.equal(resize_bias_table(plane, (7, 7), (7, 7)), plane)


def test_embed_keeps_every_offset_of_the_small_window():
    small = torch.randn(table_size((7, 5)), 2)
    big = embed_bias_table(small, (7, 5), (7, 7))
    idx_small = relative_position_index((7, 5))
    idx_big = relative_position_index((7, 5), (7, 7))
    assert torch.equal(small[idx_small], big[idx_big])
