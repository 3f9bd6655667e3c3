"""Parameter groups (weight decay, layer decay, lr multipliers), lr scaling and the schedule."""
from __future__ import annotations

import math

import pytest
import torch.nn as nn

from core.classification.config import ClassificationConfig
from core.engine.config import load_config
from core.engine.optim import build_optimizer, build_param_groups, build_scheduler, lr_multiplier, no_weight_decay_names
from helpers import tiny_swin

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------- optim
def test_no_weight_decay_rules():
    model = tiny_swin()
    names = no_weight_decay_names(model, ["relative_position_bias_table", "mask_token", "absolute_pos_embed"])
    all_names = dict(model.named_parameters())
    for n, p in all_names.items():
        expect = p.ndim <= 1 or n.endswith(".bias") or "relative_position_bias_table" in n
        assert (n in names) == expect, n
    assert any("relative_position_bias_table" in n for n in names)
    assert "head.fc.weight" not in names and "head.fc.bias" in names


def test_param_groups_layer_decay_and_lr_mult():
    model = tiny_swin()
    groups = build_param_groups(model, 0.05, layer_decay=0.5, lr_mult={"backbone": 0.1, "layers.1": 0.2},
                                no_weight_decay_keywords=["relative_position_bias_table"])
    scale = {n: g["lr_scale"] for g in groups for n in g["names"]}
    wd = {n: g["weight_decay"] for g in groups for n in g["names"]}
    L = model.num_layers_for_lr_decay  # 4: patch embed, 2 blocks, head
    assert L == 4
    assert math.isclose(scale["head.fc.weight"], 1.0)  # group L-1, not backbone
    assert math.isclose(scale["norm.weight"], 1.0 * 0.1)  # head group, but backbone
    pe = next(n for n in scale if n.startswith("patch_embed"))
    assert math.isclose(scale[pe], 0.5 ** 3 * 0.1)
    l0 = next(n for n in scale if n.startswith("layers.0.blocks.0"))
    assert math.isclose(scale[l0], 0.5 ** 2 * 0.1)
    l1 = next(n for n in scale if n.startswith("layers.1.blocks.0"))
    assert math.isclose(scale[l1], 0.5 ** 1 * 0.2)  # longest prefix wins over 'backbone'
    assert wd["head.fc.weight"] == 0.05 and wd["head.fc.bias"] == 0.0
    assert sum(len(g["params"]) for g in groups) == sum(1 for _ in model.parameters())
    assert lr_multiplier("head.fc.weight", {"backbone": 0.1}) == 1.0
    assert lr_multiplier("layers.10.x", {"layers.1": 0.3}) == 1.0  # prefix matches whole components only


def test_layer_decay_needs_group_id():
    with pytest.raises(ValueError, match=r"optim.layer_decay=0.7 needs a model with group_id"):
        build_param_groups(nn.Linear(2, 2), 0.05, layer_decay=0.7)


def test_scheduler_warmup_cosine_per_update_with_lr_scale():
    cfg = load_config(None, ["train.epochs=10", "sched.warmup_epochs=2", "optim.lr=1e-3", "sched.warmup_lr=1e-6",
                             "sched.min_lr=1e-5", "optim.lr_mult={head: 0.5}"])
    model = nn.Sequential()
    model.add_module("body", nn.Linear(4, 4))
    model.add_module("head", nn.Linear(4, 2))
    opt = build_optimizer(cfg, model, cfg.optim.lr)
    sched = build_scheduler(cfg, opt, updates_per_epoch=5, warmup_lr=1e-6, min_lr=1e-5)
    body = next(g for g in opt.param_groups if g["lr_scale"] == 1.0)
    head = next(g for g in opt.param_groups if g["lr_scale"] == 0.5)
    lrs = []
    for t in range(51):
        sched.step_update(t)
        lrs.append(body["lr"])
        assert math.isclose(head["lr"], 0.5 * body["lr"])
    assert math.isclose(lrs[0], 1e-6)
    assert math.isclose(lrs[5], 1e-6 + 5 * (1e-3 - 1e-6) / 10)  # linear warm-up over 10 updates
    assert math.isclose(lrs[10], 1e-3)  # peak right after warm-up
    assert math.isclose(lrs[30], 1e-5 + 0.5 * (1e-3 - 1e-5) * (1 + math.cos(math.pi * 20 / 40)))
    assert math.isclose(lrs[50], 1e-5, rel_tol=1e-6)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_lr_scaled_with_global_batch():
    opts = ["optim.lr=1e-3", "optim.lr_base_size=1024", "data.batch_size=64", "optim.accum_steps=2"]
    cfg = load_config(None, schema=ClassificationConfig, overrides=opts)
    from core.engine.optim import scaled_lrs
    lr, wlr, mlr = scaled_lrs(cfg, 64 * 2 * 2)
    assert math.isclose(lr, 2.5e-4) and math.isclose(wlr, 2.5e-10 * 1000) and math.isclose(mlr, 2.5e-6)


