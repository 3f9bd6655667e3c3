"""Engine: parameter groups, schedule, accumulation, custom steps, evaluation, logging, the digits recipe."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.nn as nn

from core import create_model
from core.config import ConfigError, load_config
from core.distributed import DistInfo, ShardedSampler
from core.engine import Trainer, build_mixup, classification_loss, evaluate_classification, predict, resolve_amp
from core.metrics import topk_correct
from core.optim import build_optimizer, build_param_groups, build_scheduler, lr_multiplier, no_weight_decay_names
from core.train import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS = os.path.join(ROOT, "configs", "swin", "tiny_digits.yaml")
TINY = "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}"


pytestmark = pytest.mark.usefixtures("one_thread")


def _tiny_swin(**kw):
    return create_model("swin_t", num_classes=10, embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=4,
                        patch_size=4, **kw)


def _cfg(*opts, output_dir=""):
    return load_config(None, ["train.progress=false", "train.tensorboard=false", "train.epochs=2",
                              "train.device=cpu", "sched.warmup_epochs=1", f"train.output_dir={output_dir}", *opts])


# ----------------------------------------------------------------------------------------------- optim
def test_no_weight_decay_rules():
    model = _tiny_swin()
    names = no_weight_decay_names(model, ["relative_position_bias_table", "mask_token", "absolute_pos_embed"])
    all_names = dict(model.named_parameters())
    for n, p in all_names.items():
        expect = p.ndim <= 1 or n.endswith(".bias") or "relative_position_bias_table" in n
        assert (n in names) == expect, n
    assert any("relative_position_bias_table" in n for n in names)
    assert "head.fc.weight" not in names and "head.fc.bias" in names


def test_param_groups_layer_decay_and_lr_mult():
    model = _tiny_swin()
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
    cfg = load_config(None, ["optim.lr=1e-3", "optim.lr_base_size=1024", "data.batch_size=64",
                             "optim.accum_steps=2"])
    from core.optim import scaled_lrs
    lr, wlr, mlr = scaled_lrs(cfg, 64 * 2 * 2)
    assert math.isclose(lr, 2.5e-4) and math.isclose(wlr, 2.5e-10 * 1000) and math.isclose(mlr, 2.5e-6)


# ----------------------------------------------------------------------------------------------- loop
class _Linear(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(6, 8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))


def _batches(n, bs, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 6, generator=g), torch.randint(0, 3, (bs,), generator=g)) for _ in range(n)]


def test_gradient_accumulation_matches_large_batch(tmp_path):
    data = _batches(4, 4)
    big = [(torch.cat([data[i][0], data[i + 1][0]]), torch.cat([data[i][1], data[i + 1][1]])) for i in (0, 2)]
    outs = []
    for loader, opts in ((data, ["optim.accum_steps=2", "data.batch_size=4"]), (big, ["data.batch_size=8"])):
        cfg = _cfg("train.epochs=1", "sched.warmup_epochs=0", "optim.clip_grad=1.0", *opts,
                   output_dir=str(tmp_path / str(len(outs))))
        model = _Linear()
        tr = Trainer(cfg, model, loader, None, loss_fn=nn.CrossEntropyLoss())
        assert tr.updates_per_epoch == 2 and tr.global_batch == 8
        tr.fit()
        assert tr.num_updates == 2
        outs.append(model.state_dict())
    for k in outs[0]:
        torch.testing.assert_close(outs[0][k], outs[1][k], rtol=1e-5, atol=1e-6)


def test_custom_step_without_validation(tmp_path):
    calls = []

    def step(trainer, batch):
        x, _ = batch
        out = trainer.train_model(x)
        calls.append(len(x))
        return out.pow(2).mean(), {"aux": 2.0}

    cfg = _cfg("train.log_interval=1", output_dir=str(tmp_path))
    res = Trainer(cfg, _Linear(), _batches(3, 4), None, train_step=step).fit()
    assert calls == [4] * 6
    assert res["best"] == {} and res["epochs"] == 2
    assert sorted(os.listdir(tmp_path)) == ["config.yaml", "last.pth", "log.txt", "metrics.jsonl", "results.json"]
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    train_rows = [r for r in rows if r["kind"] == "train"]
    assert len(train_rows) == 6 and all(r["aux"] == 2.0 for r in train_rows)
    assert [r["epoch"] for r in rows if r["kind"] == "epoch"] == [1, 2]
    assert "top1" not in rows[-1]
    assert json.load(open(tmp_path / "results.json"))["best"] == {}


def test_custom_eval_picks_best_and_keeps_colliding_keys(tmp_path):
    scores = iter([50.0, 70.0, 60.0])

    def step(trainer, batch):
        return trainer.train_model(batch[0]).pow(2).mean(), {"count": 7.0}

    def evaluate(trainer, model):
        return {"top1": next(scores), "count": 3}

    cfg = _cfg("train.epochs=3", output_dir=str(tmp_path))
    res = Trainer(cfg, _Linear(), _batches(2, 4), None, train_step=step, evaluate_fn=evaluate).fit()
    assert res["best"] == {"top1": 70.0, "count": 3, "epoch": 2}
    assert res["final"]["count"] == 7.0 and res["final"]["val_count"] == 3 and res["final"]["top1"] == 60.0
    assert torch.load(tmp_path / "best.pth", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 3


def test_nonfinite_loss_is_an_error(tmp_path):
    cfg = _cfg(output_dir=str(tmp_path))
    tr = Trainer(cfg, _Linear(), _batches(2, 4), None, train_step=lambda t, b: torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1 iteration 1"):
        tr.fit()


def test_refuses_to_overwrite_checkpoint_without_resume(tmp_path):
    cfg = _cfg("train.epochs=1", "sched.warmup_epochs=0", output_dir=str(tmp_path))
    Trainer(cfg, _Linear(), _batches(2, 4), None, loss_fn=nn.CrossEntropyLoss()).fit()
    before = (tmp_path / "last.pth").read_bytes()
    cfg = _cfg("train.epochs=1", "sched.warmup_epochs=0", "train.auto_resume=false", output_dir=str(tmp_path))
    from core.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match=r"last.pth exists and train.auto_resume=false"):
        Trainer(cfg, _Linear(), _batches(2, 4), None, loss_fn=nn.CrossEntropyLoss()).fit()
    assert (tmp_path / "last.pth").read_bytes() == before


def test_grad_checkpointing_switch(tmp_path):
    cfg = _cfg("train.grad_checkpointing=true", output_dir=str(tmp_path))
    model = _tiny_swin()
    Trainer(cfg, model, [], None, loss_fn=nn.CrossEntropyLoss())
    assert all(stage.grad_checkpointing for stage in model.layers)
    with pytest.raises(ConfigError, match=r"train.grad_checkpointing=true but _Linear has no set_grad_checkpointing"):
        Trainer(cfg, _Linear(), [], None, loss_fn=nn.CrossEntropyLoss())


def test_amp_resolution():
    assert resolve_amp("auto", torch.device("cpu")) is None
    assert resolve_amp("auto", torch.device("cuda")) is torch.bfloat16
    assert resolve_amp("fp16", torch.device("cpu")) is torch.float16
    assert resolve_amp("none", torch.device("cuda")) is None


def test_mixup_and_loss_choice():
    cfg = load_config(None, [])
    mix = build_mixup(cfg, 10)
    assert mix is not None and mix.mixup_alpha == 0.8 and mix.cutmix_alpha == 1.0 and mix.label_smoothing == 0.1
    assert type(classification_loss(cfg, True)).__name__ == "SoftTargetCrossEntropy"
    cfg = load_config(None, ["aug.mixup=0", "aug.cutmix=0"])
    assert build_mixup(cfg, 10) is None
    loss = classification_loss(cfg, False)
    assert isinstance(loss, nn.CrossEntropyLoss) and loss.label_smoothing == 0.1


# ----------------------------------------------------------------------------------------------- eval
def test_topk_and_evaluate_skip_ignored_targets():
    out = torch.tensor([[0.1, 0.9, 0.0], [0.7, 0.1, 0.2], [0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    tgt = torch.tensor([1, 2, 0, 2])
    assert topk_correct(out, tgt, (1, 2, 5)) == [2, 3, 4]

    class Fixed(nn.Module):
        def forward(self, x):
            return x

    ds = list(zip(out, torch.tensor([1, 2, -1, 2])))
    loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=ShardedSampler(len(ds), 1, 0))
    res = evaluate_classification(Fixed(), loader, torch.device("cpu"), topk=(1, 2))
    assert res["count"] == 3 and math.isclose(res["top1"], 200 / 3) and math.isclose(res["top2"], 100.0)
    expect = nn.functional.cross_entropy(out[[0, 1, 3]], torch.tensor([1, 2, 2])).item()
    assert math.isclose(res["loss"], expect, rel_tol=1e-6)


def test_predict_returns_dataset_order():
    x = torch.arange(10, dtype=torch.float32).view(10, 1)
    ds = list(zip(x, torch.arange(10)))
    # a rank-1-of-2 sampler on its own would see only odd items; single process sees all in order
    loader = torch.utils.data.DataLoader(ds, batch_size=3, sampler=ShardedSampler(10, 1, 0))
    out, tgt = predict(nn.Identity(), loader, torch.device("cpu"))
    assert torch.equal(out.view(-1), torch.arange(10, dtype=torch.float32)) and torch.equal(tgt, torch.arange(10))
    assert list(ShardedSampler(10, 3, 1)) == [1, 4, 7] and len(ShardedSampler(10, 3, 2)) == 3


# ----------------------------------------------------------------------------------------------- end to end
def test_digits_run_writes_logs_and_results(tmp_path):
    out = tmp_path / "run"
    rc = main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY, "train.epochs=2",
               "sched.warmup_epochs=1", "train.max_iters_per_epoch=3", "data.batch_size=16", "train.ema=true",
               "train.progress=false", "data.img_size=16"])
    assert rc == 0
    files = sorted(os.listdir(out))
    assert files == ["best.pth", "config.yaml", "last.pth", "log.txt", "metrics.jsonl", "results.json", "tb"]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(out / "tb"))
    res = json.load(open(out / "results.json"))
    assert res["epochs"] == 2 and res["global_batch"] == 16 and res["world_size"] == 1
    epochs = [r for r in map(json.loads, open(out / "metrics.jsonl")) if r["kind"] == "epoch"]
    assert res["best"]["top1"] == max(r["top1"] for r in epochs) and res["best"]["top5"] >= res["best"]["top1"]
    assert res["final"]["top1"] == epochs[-1]["top1"]
    assert res["final"]["count"] == 360 and "ema_top1" in res["final"] and res["best_ema"]["epoch"] in (1, 2)
    log = open(out / "log.txt").read()
    assert "global batch 16" in log and "best top-1" in log
    assert load_config(str(out / "config.yaml")).train.epochs == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp, compile_", [("auto", False), ("fp16", False), ("bf16", True)])
def test_cuda_amp_and_compile(tmp_path, amp, compile_):
    out = tmp_path / "run"
    rc = main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY, "train.epochs=2", "sched.warmup_epochs=1",
               "train.max_iters_per_epoch=5", "data.batch_size=16", "train.progress=false", "data.img_size=16",
               f"train.amp={amp}", f"train.compile={str(compile_).lower()}", "train.ema=true",
               "train.grad_checkpointing=true"])
    assert rc == 0
    log = open(out / "log.txt").read()
    assert f"amp {'torch.float16' if amp == 'fp16' else 'torch.bfloat16'}" in log and "on cuda:0" in log
    ckpt = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert (ckpt["scaler"] is not None) == (amp == "fp16") and "cuda" in ckpt["rng"][0]
    res = json.load(open(out / "results.json"))
    assert res["final"]["count"] == 360 and math.isfinite(res["final"]["train_loss"])
