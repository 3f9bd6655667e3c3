"""The shifted-window mask against its definition, 2D and 3D."""

import pytest
import torch

from core.nn.mask import MASK_VALUE, shifted_window_mask
from core.nn.window import cyclic_shift, window_partition


def wrapped(size, shift):
    """Per position of the rolled grid, which axes wrapped around: tokens may attend iff these agree."""
    coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in size], indexing="ij"), -1)
    return (coords + torch.tensor(shift) >= torch.tensor(size)).long()  # (*size, ndim)


@pytest.mark.parametrize("size,window,shift", [
    ((8, 8), (4, 4), (2, 2)),
    ((14, 21), (7, 7), (3, 3)),
    ((8, 14, 14), (4, 7, 7), (2, 3, 3)),
    ((8, 14, 14), (8, 7, 7), (0, 3, 3)),
])
def test_mask_forbids_exactly_cross_region_pairs(size, window, shift):
    mask = shifted_window_mask(size, window, shift)
    # where each token of each window came from before the roll, by rolling the coordinates themselves
    coords = torch.stack(torch.meshgrid(*[torch.arange(s) for s in size], indexing="ij"), -1).float()
    origin = window_partition(cyclic_shift(coords[None], shift), window)  # (nW, N, ndim)
    came_wrapped = window_partition(wrapped(size, shift)[None].float(), window)
    assert mask.shape == (origin.shape[0], origin.shape[1], origin.shape[1])
    for w in range(mask.shape[0]):
        same_region = (came_wrapped[w][:, None] == came_wrapped[w][None]).all(-1)
        assert torch.equal(mask[w] == 0, same_region)
        assert torch.all(mask[w][~same_region] == MASK_VALUE)
        # same region <=> the two tokens were at most a window apart before the roll (no wrap in between)
        dist = (origin[w][:, None] - origin[w][None]).abs()
        assert torch.equal(same_region, (dist < torch.tensor(window).float()).all(-1))


def test_mask_is_cached_not_rebuilt():
    a = shifted_window_mask((14, 14), (7, 7), (3, 3))
    b = shifted_window_mask((14, 14), (7, 7), (3, 3))
    assert a is b
    assert a[0].eq(0).all() and not a[-1].eq(0).all()


def test_zero_shift_mask_is_all_zero():
    assert shifted_window_mask((8, 8), (4, 4), (0, 0)).eq(0).all()
