"""MoBY: contrastive self-supervised pretraining (MoCo v2 + BYOL) of any Swin backbone, with kNN, linear-probe and
fine-tune evaluation. Entry points: ``python -m moby.pretrain``, ``moby.linear``, ``moby.finetune``."""
from .task import MLPHead, MoBY, contrastive_loss, enqueue, momentum_at

__all__ = ["MoBY", "MLPHead", "contrastive_loss", "enqueue", "momentum_at"]
