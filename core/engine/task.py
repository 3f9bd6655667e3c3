"""The training contract: a method is a :class:`Task`, an ``nn.Module`` that owns its objective.

    class MyTask(Task):
        backbone_attr = "encoder"                  # the submodule whose weights are the deliverable
        best_metric = "knn_top1"                    # the evaluate() key that picks best.pth

        def forward(self, batch) -> dict:          # {"loss": tensor, **scalars}; runs under DDP and autocast
            ...
        def after_update(self, step, total_steps):  # optional: after each optimizer update (momentum encoders)
            ...
        def evaluate(self, loader, env) -> dict:    # optional: metrics on the validation loader
            ...

Everything the task holds (momentum encoders, queues, step counters as buffers) is saved and resumed through
its ordinary ``state_dict``. Weight-decay exemptions and layer-decay groups come from the backbone; parameters
outside it go to the last layer-decay group unless the task overrides :meth:`group_id`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn

from .config import ConfigError

__all__ = ["Task", "EvalEnv"]


@dataclass
class EvalEnv:
    """What an evaluation needs from the run: device, autocast dtype and whether to show a progress bar."""
    device: torch.device
    amp_dtype: torch.dtype | None = None
    progress: bool = False


class Task(nn.Module):
    """Base of every method (classification, contrastive and masked pretraining)."""

    backbone_attr: str = "backbone"
    best_metric: str = "top1"
    broadcast_buffers: bool = True  # DDP copies rank 0's buffers every step; False when they agree by construction
    classes: Sequence[str] | None = None  # class names of a classifier, saved in its checkpoints

    # -------------------------------------------------------------------------------- the contract
    @property
    def backbone(self) -> nn.Module:
        """The module whose weights are the run's deliverable (saved as the checkpoint's ``model``)."""
        return getattr(self, self.backbone_attr)

    def forward(self, batch: Any) -> dict[str, torch.Tensor] | None:
        """``{"loss": scalar tensor, **other scalars to log}`` for one micro-batch (already on the device); None
        when the batch holds nothing to learn from (every sample unreadable): the trainer makes a zero step that
        keeps DDP ranks in step."""
        raise NotImplementedError

    def after_update(self, step: int, total_steps: int) -> None:
        """Called on every rank after optimizer update ``step`` (1-based) of ``total_steps``."""

    def evaluate(self, loader: Any, env: EvalEnv) -> dict[str, float]:
        """Metrics of this task on ``loader`` (the run's validation loader, possibly None); {} = no evaluation."""
        return {}

    def describe(self, metrics: Mapping[str, float]) -> str:
        """One line for the log naming the metric that picks best.pth."""
        value = metrics.get(self.best_metric, float("nan"))
        return f"{self.best_metric} {value:.4g}"

    def end_epoch(self) -> dict[str, float]:
        """Extra values for the epoch row (counters summed over ranks by the task itself)."""
        return {}

    # -------------------------------------------------------------------------------- state split
    def backbone_state(self) -> dict[str, torch.Tensor]:
        return self.backbone.state_dict()

    def task_state(self) -> dict[str, torch.Tensor]:
        """Everything of the task's state outside the backbone."""
        prefix = self.backbone_attr + "."
        return {k: v for k, v in self.state_dict().items() if not k.startswith(prefix)}

    def load_split_state(self, backbone: dict[str, torch.Tensor], rest: dict[str, torch.Tensor]) -> None:
        """Inverse of (:meth:`backbone_state`, :meth:`task_state`), strict."""
        full = {f"{self.backbone_attr}.{k}": v for k, v in backbone.items()}
        full.update(rest)
        self.load_state_dict(full, strict=True)

    # -------------------------------------------------------------------------------- parameter groups
    def lr_name(self, name: str) -> str:
        """A parameter's name as ``optim.lr_mult`` sees it: relative to the backbone when inside it."""
        prefix = self.backbone_attr + "."
        return name[len(prefix):] if name.startswith(prefix) else name

    def no_weight_decay(self) -> set[str]:
        nwd = getattr(self.backbone, "no_weight_decay", None)
        return {f"{self.backbone_attr}.{n}" for n in (nwd() if nwd else ())}

    @property
    def num_layers_for_lr_decay(self) -> int:
        n = getattr(self.backbone, "num_layers_for_lr_decay", None)
        if n is None:
            raise ValueError(f"optim.layer_decay < 1 needs a backbone with group_id(name) and "
                             f"num_layers_for_lr_decay; {type(self.backbone).__name__} has neither")
        return int(n)

    def group_id(self, name: str) -> int:
        """Layer-decay group: the backbone's for its parameters, the last group for the task's own."""
        prefix = self.backbone_attr + "."
        if name.startswith(prefix):
            return int(self.backbone.group_id(name[len(prefix):]))
        return self.num_layers_for_lr_decay - 1

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        if not hasattr(self.backbone, "set_grad_checkpointing"):
            raise ConfigError(f"train.grad_checkpointing=true but {type(self.backbone).__name__} has no "
                              f"set_grad_checkpointing()")
        self.backbone.set_grad_checkpointing(enable)
