"""The classification task: mixup / loss choice, top-k evaluation, ordered prediction, a digits run end to end."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch
import torch.nn as nn

from cli.train import main_image as main
from core.classification.config import ClassificationConfig
from core.classification.task import build_mixup, classification_loss, evaluate_classification
from core.engine.config import load_config
from core.engine.distributed import ShardedSampler
from core.engine.metrics import topk_correct
from core.engine.outputs import predict
from helpers import DIGITS
from helpers import TINY_OPT as TINY

pytestmark = pytest.mark.usefixtures("one_thread")


def test_mixup_and_loss_choice():
    cfg = load_config(None, [], schema=ClassificationConfig)
    mix = build_mixup(cfg.aug, 10)
    assert mix is not None and mix.mixup_alpha == 0.8 and mix.cutmix_alpha == 1.0 and mix.label_smoothing == 0.1
    assert type(classification_loss(cfg.aug, True)).__name__ == "SoftTargetCrossEntropy"
    cfg = load_config(None, ["aug.mixup=0", "aug.cutmix=0"], schema=ClassificationConfig)
    assert build_mixup(cfg.aug, 10) is None
    loss = classification_loss(cfg.aug, False)
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
    assert f"amp {'fp16' if amp == 'fp16' else 'bf16'} " in log and "on cuda:0" in log
    ckpt = torch.load(out / "last.pth", map_location="cpu", weights_only=True)
    assert (ckpt["scaler"] is not None) == (amp == "fp16") and "cuda" in ckpt["rng"][0]
    res = json.load(open(out / "results.json"))
    assert res["final"]["count"] == 360 and math.isfinite(res["final"]["train_loss"])

