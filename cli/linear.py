"""Linear probe of a pretrained backbone: ``swin-linear --config configs/moby/<probe>.yaml --opt
model.pretrained=RUN/best.pth`` (= ``python -m moby.linear``; ``probe.random_init=true`` for the random-init
baseline).

The backbone is frozen in eval mode; the pooled features of the training split and of ``data.probe_split``
(fixed centre view) are computed once and cached in the run folder (``features_<split>.pt``), then a linear
classifier is trained on them by the engine (any optimizer; the official recipe is SGD with Nesterov momentum,
lr 1.0 x batch / 512, 100 epochs, no weight decay). Resume, --eval-only and torchrun DDP work as everywhere.
"""
from __future__ import annotations

import sys
from typing import Sequence

from core.engine import launch
from moby.config import MoBYConfig
from moby.runs import setup_linear


def main(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=MoBYConfig, setup=setup_linear, description=__doc__)


if __name__ == "__main__":
    sys.exit(main())
