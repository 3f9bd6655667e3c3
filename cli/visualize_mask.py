"""Picture of the shifted-window attention masks: ``python -m core.tools.visualize_mask --out mask.png``.

2D (``--size H W --window h w``): left, the cyclically shifted feature map coloured by the region each token
came from, with the window grid; right, every window's (N, N) mask (white = attend, black = masked).
3D (``--size T H W --window t h w``): the regions of each time slice, and the (N, N) mask of the last window
(the one that mixes the most regions), its tokens ordered (t, h, w) with lines between time slices.
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from core.nn.mask import region_labels, shifted_window_mask  # noqa: E402


def draw(size: Sequence[int], window: Sequence[int], shift: Sequence[int], out: str) -> str:
    """Write the figure for a 2D (padded) size, window and shift to ``out``."""
    labels = region_labels(size, window, shift)
    mask = shifted_window_mask(size, window, shift)
    nw = mask.shape[0]
    cols = math.ceil(math.sqrt(nw))
    rows = math.ceil(nw / cols)
    fig = plt.figure(figsize=(4 + 2.2 * cols, max(4.0, 2.2 * rows)))
    grid = fig.add_gridspec(rows, cols + 2)
    ax = fig.add_subplot(grid[:, :2])
    ax.imshow(labels.numpy(), cmap="tab10", vmin=0, vmax=9)
    for r in range(size[0]):
        for c in range(size[1]):
            ax.text(c, r, str(int(labels[r, c])), ha="center", va="center", fontsize=6)
    for y in range(0, size[0] + 1, window[0]):
        ax.axhline(y - 0.5, color="k", lw=2)
    for x in range(0, size[1] + 1, window[1]):
        ax.axvline(x - 0.5, color="k", lw=2)
    ax.set_title(f"regions after cyclic shift {tuple(shift)}\n{tuple(size)} map, window {tuple(window)}")
    ax.set_xticks([])
    ax.set_yticks([])
    for i in range(nw):
        a = fig.add_subplot(grid[i // cols, 2 + i % cols])
        a.imshow((mask[i] == 0).numpy(), cmap="gray", vmin=0, vmax=1)
        a.set_title(f"window {i}", fontsize=8)
        a.set_xticks([])
        a.set_yticks([])
    return _finish(fig, out, bottom=0.06)


def _finish(fig: plt.Figure, out: str, bottom: float) -> str:
    """Legend under the panels, layout, write ``out``."""
    _legend(fig)
    fig.tight_layout(rect=(0, bottom, 1, 1))
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def _legend(fig: plt.Figure) -> None:
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(facecolor="white", edgecolor="k", label="attend (same region): + 0"),
                        Patch(facecolor="black", edgecolor="k", label="masked (different regions): -100 before softmax")],
               loc="lower center", ncol=2, fontsize=9, frameon=False)


def draw_3d(size: Sequence[int], window: Sequence[int], shift: Sequence[int], out: str) -> str:
    """Write the figure for a 3D (padded) size, window and shift to ``out``: time slices and one window's mask."""
    labels = region_labels(size, window, shift)
    mask = shifted_window_mask(size, window, shift)
    T = size[0]
    fig = plt.figure(figsize=(2.4 * T + 5, 5))
    grid = fig.add_gridspec(1, T + 2)
    for t in range(T):
        ax = fig.add_subplot(grid[0, t])
        ax.imshow(labels[t].numpy(), cmap="tab20", vmin=0, vmax=26)
        for y in range(0, size[1] + 1, window[1]):
            ax.axhline(y - 0.5, color="k", lw=1.5)
        for x in range(0, size[2] + 1, window[2]):
            ax.axvline(x - 0.5, color="k", lw=1.5)
        boundary = " | new temporal window" if t % window[0] == 0 and t else ""
        ax.set_title(f"t = {t}{boundary}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    ax = fig.add_subplot(grid[0, T:])
    ax.imshow((mask[-1] == 0).numpy(), cmap="gray", vmin=0, vmax=1)
    n_hw = window[1] * window[2]
    for t in range(1, window[0]):
        ax.axhline(t * n_hw - 0.5, color="tab:red", lw=1)
        ax.axvline(t * n_hw - 0.5, color="tab:red", lw=1)
    ax.set_title(f"mask of the last window ({mask.shape[-1]} tokens, (t, h, w) order;\n"
                 f"red lines: time slices); {tuple(size)} map, window {tuple(window)}, shift {tuple(shift)}",
                 fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    return _finish(fig, out, bottom=0.08)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs="+", default=[8, 8], help="padded map size: H W, or T H W")
    parser.add_argument("--window", type=int, nargs="+", default=[4, 4], help="h w, or t h w")
    parser.add_argument("--shift", type=int, nargs="+", default=None, help="default: half the window")
    parser.add_argument("--out", default="shifted_window_mask.png")
    args = parser.parse_args(argv)
    shift = args.shift or [w // 2 for w in args.window]
    if len(args.size) not in (2, 3) or len(args.window) != len(args.size) or len(shift) != len(args.size):
        parser.error(f"--size, --window and --shift need 2 (H W) or 3 (T H W) numbers each, got {args.size}, "
                     f"{args.window}, {shift}")
    for s, w in zip(args.size, args.window):
        if s % w:
            parser.error(f"--size {args.size} must be a multiple of --window {args.window} (pass the padded size)")
    print((draw_3d if len(args.size) == 3 else draw)(args.size, args.window, shift, args.out))


if __name__ == "__main__":
    main()
