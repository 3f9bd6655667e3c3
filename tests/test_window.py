"""Window partition/reverse, cyclic shift and padding, 2D and 3D."""
import itertools

import pytest
import torch

from core.nn.window import crop, cyclic_shift, pad_to_multiple, window_and_shift, window_partition, window_reverse


@pytest.mark.parametrize("size,window", [((8, 12), (4, 3)), ((4, 14, 6), (2, 7, 3)), ((6, 6), (6, 6))])
def test_partition_matches_slicing_and_reverses(size, window):
    x = torch.randn(2, *size, 5)
    windows = window_partition(x, window)
    grid = [s // w for s, w in zip(size, window)]
    assert windows.shape == (2 * (grid[0] * grid[1] * (grid[2] if len(grid) == 3 else 1)), torch.Size(window).numel(), 5)
    # window k of image b is the raster-order block, its tokens in raster order
    for b in range(2):
        for k, idx in enumerate(itertools.product(*[range(g) for g in grid])):
            block = x[(b,) + tuple(slice(i * w, (i + 1) * w) for i, w in zip(idx, window))]
            assert torch.equal(windows[b * len(list(itertools.product(*[range(g) for g in grid]))) + k],
                               block.reshape(-1, 5))
    assert torch.equal(window_reverse(windows, window, size), x)


def test_cyclic_shift_moves_towards_origin_and_inverts():
    x = torch.arange(2 * 5 * 7).view(1, 2, 5, 7, 1)
    shifted = cyclic_shift(x, (0, 2, 3))
    assert shifted[0, 1, 0, 0, 0] == x[0, 1, 2, 3, 0]
    assert torch.equal(cyclic_shift(shifted, (0, 2, 3), inverse=True), x)


def test_pad_and_crop():
    x = torch.randn(1, 5, 9, 2)
    p = pad_to_multiple(x, (4, 7))
    assert p.shape == (1, 8, 14, 2)
    assert p[:, 5:].abs().sum() == 0 and p[:, :, 9:].abs().sum() == 0
    assert torch.equal(crop(p, (5, 9)), x)


def test_window_shrinks_only_along_small_axes():
    assert window_and_shift((4, 56, 56), (8, 7, 7), (4, 3, 3)) == ((4, 7, 7), (0, 3, 3))
    assert window_and_shift((7, 5), (7, 7), (3, 3)) == ((7, 5), (0, 0))
    assert window_and_shift((7, 5), (7, 7), (3, 3), shrink=False) == ((7, 7), (0, 0))
