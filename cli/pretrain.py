"""Self-supervised pretraining: ``swin-pretrain --config RECIPE`` (= ``python -m simmim.pretrain``,
``python -m moby.pretrain``).

A recipe with a ``moby:`` section pretrains with MoBY (two views, a momentum encoder and a queue; the kNN monitor
picks best.pth), any other with SimMIM (masked image / video modelling; the held-out masked-pixel skill picks
best.pth). Without --config, ``python -m simmim.pretrain`` runs configs/simmim/tiny_digits.yaml and ``python -m
moby.pretrain`` configs/moby/tiny_shapes.yaml. ``best.pth``'s ``model`` is the encoder: fine-tune it with
``swin-finetune`` or probe it with ``swin-linear``.
"""
from __future__ import annotations

import sys
from typing import Sequence

from cli.recipes import recipe_sections
from core.engine import launch
from moby import runs as moby_runs
from moby.config import MoBYConfig
from simmim import runs as simmim_runs
from simmim.config import SimMIMConfig


def main_simmim(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=SimMIMConfig, setup=simmim_runs.setup_simmim, description=__doc__,
                  default_config=simmim_runs.DEFAULT_CONFIG)


def main_moby(argv: Sequence[str] | None = None) -> int:
    return launch(argv, schema=MoBYConfig, setup=moby_runs.setup_pretrain, description=__doc__,
                  default_config=moby_runs.DEFAULT_CONFIG)


def main(argv: Sequence[str] | None = None) -> int:
    """MoBY for a recipe with a ``moby`` section, else SimMIM."""
    argv = sys.argv[1:] if argv is None else list(argv)
    return main_moby(argv) if "moby" in recipe_sections(argv) else main_simmim(argv)


if __name__ == "__main__":
    sys.exit(main())
