"""Train or evaluate a Swin-MLP classifier with the shared engine (the image classification task), e.g.

    python -m swin_mlp.train --config configs/swin_mlp/tiny_digits.yaml
    torchrun --nproc_per_node 8 -m swin_mlp.train --config configs/swin_mlp/swin_mlp_t_c24_in1k.yaml \
        --opt data.root=/data/in1k

Same arguments as ``python -m core.train`` (--config, --opt key=value ..., --resume, --output-dir, --eval-only).
"""
from __future__ import annotations

import sys

from core.train import main

if __name__ == "__main__":
    sys.exit(main())
