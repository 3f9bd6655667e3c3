"""Picture of the shifted-window attention masks: ``python -m core.tools.visualize_mask --out mask.png``.

Left: the cyclically shifted feature map coloured by the region each token came from, with the window grid;
right: every window's (N, N) mask (black = masked, i.e. tokens from different regions).
"""
from __future__ import annotations

import argparse
import math
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..mask import region_labels, shifted_window_mask  # noqa: E402


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
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=[8, 8], help="padded feature map size H W")
    parser.add_argument("--window", type=int, nargs=2, default=[4, 4])
    parser.add_argument("--shift", type=int, nargs=2, default=None, help="default: half the window")
    parser.add_argument("--out", default="shifted_window_mask.png")
    args = parser.parse_args(argv)
    shift = args.shift or [w // 2 for w in args.window]
    for s, w in zip(args.size, args.window):
        if s % w:
            parser.error(f"--size {args.size} must be a multiple of --window {args.window} (pass the padded size)")
    print(draw(args.size, args.window, shift, args.out))


if __name__ == "__main__":
    main()
