"""MoBY: momentum schedule, queues, the loss against a direct computation, bad input, checkpoint export and
conversion (ours -> classifier / Video Swin, official Transformer-SSL layout), exact kill-and-resume."""
from __future__ import annotations

import math
import os
import random
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cli.linear import main as linear_main
from cli.pretrain import main_moby as pretrain_main
from core import create_model, load_pretrained
from core.engine.checkpoint import load_checkpoint
from helpers import interrupt_at
from moby.task import MoBY, contrastive_loss, enqueue, momentum_at

TINY_KW = dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=4, patch_size=4)
# a tiny pretraining run on 64 generated 16x16 shape images: 4 steps per epoch of 16 images
TINY = ["train.progress=false", "train.tensorboard=false", "train.device=cpu", "train.epochs=2",
        "sched.warmup_epochs=1", "train.log_interval=2", "data.num_train=64", "data.num_val=16", "data.num_test=16",
        "data.img_size=16", "data.batch_size=16", "data.eval_batch_size=64", "data.num_workers=0",
        "moby.hidden_dim=32", "moby.proj_dim=16", "moby.queue_len=64",
        "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}"]


def _tiny_task(queue_len: int = 8, drop_path: float = 0.0) -> MoBY:
    online = create_model("swin_t", num_classes=0, drop_path_rate=drop_path, **TINY_KW)
    target = create_model("swin_t", num_classes=0, drop_path_rate=0.0, **TINY_KW)
    return MoBY(online, target, proj_dim=6, hidden_dim=10, queue_len=queue_len, temperature=0.2)


# ------------------------------------------------------------------------------------------------ the method
def test_momentum_formula_and_target_update():
    assert momentum_at(0, 100) == pytest.approx(0.99)
    assert momentum_at(50, 100) == pytest.approx(0.995)
    assert momentum_at(100, 100) == pytest.approx(1.0)
    assert momentum_at(25, 100) == pytest.approx(1 - 0.01 * (math.cos(math.pi / 4) + 1) / 2)
    task = _tiny_task()
    with torch.no_grad():
        for p in task.encoder.parameters():
            p.add_(torch.randn_like(p))  # online and target now differ
    online = [p.clone() for p in task.encoder.parameters()]
    target = [p.clone() for p in task.encoder_k.parameters()]
    task.after_update(1, 10)
    m = 1 - 0.01 * (math.cos(math.pi * 1 / 10) + 1) / 2  # iteration k = 1 of K = 10
    assert int(task.k) == 1 and float(task.momentum) == pytest.approx(m)
    for o, t, new in zip(online, target, task.encoder_k.parameters()):
        torch.testing.assert_close(new, m * t + (1 - m) * o)
    assert not any(p.requires_grad for p in task.encoder_k.parameters())
    assert all(p.requires_grad for p in task.encoder.parameters())


def test_queue_pointer_wraps_around():
    queue, ptr = torch.zeros(6, 2), torch.zeros((), dtype=torch.long)
    enqueue(queue, ptr, torch.full((4, 2), 1.0))
    assert int(ptr) == 4 and queue[:4].eq(1).all() and queue[4:].eq(0).all()
    enqueue(queue, ptr, torch.arange(8.0).view(4, 2))   # rows 4, 5, then 0, 1
    assert int(ptr) == 2
    torch.testing.assert_close(queue, torch.tensor([[4., 5], [6, 7], [1, 1], [1, 1], [0, 1], [2, 3]]))


def _direct_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, t: float) -> float:
    """-log softmax of the positive, one sample and one key at a time (float64)."""
    total, q = 0.0, q.detach()
    for i in range(len(q)):
        pos = math.exp(float(q[i] @ k[i]) / t)
        neg = sum(math.exp(float(q[i] @ queue[j]) / t) for j in range(len(queue)))
        total += -math.log(pos / (pos + neg))
    return total / len(q)


def test_loss_matches_direct_computation_and_enqueues_keys():
    task = _tiny_task(queue_len=8).double()
    x1, x2 = torch.randn(3, 3, 16, 16, dtype=torch.double), torch.randn(3, 3, 16, 16, dtype=torch.double)
    queue1, queue2 = task.queue1.clone(), task.queue2.clone()
    # the same quantities, one view at a time
    q1 = F.normalize(task.predictor(task.projector(task.encoder(x1))), dim=1)
    q2 = F.normalize(task.predictor(task.projector(task.encoder(x2))), dim=1)
    with torch.no_grad():
        k1 = F.normalize(task.projector_k(task.encoder_k(x1)), dim=1)
        k2 = F.normalize(task.projector_k(task.encoder_k(x2)), dim=1)
    expect = _direct_loss(q1, k2, queue2, 0.2) + _direct_loss(q2, k1, queue1, 0.2)
    single = float(contrastive_loss(q1, k2, queue2, 0.2).detach())
    assert single == pytest.approx(_direct_loss(q1, k2, queue2, 0.2), rel=1e-9)
    out = task((x1, x2))
    assert float(out["loss"].detach()) == pytest.approx(expect, rel=1e-6)
    out["loss"].backward()  # the enqueue after the loss does not break its graph
    assert task.encoder.patch_embed.proj.weight.grad is not None and task.encoder_k.patch_embed.proj.weight.grad is None
    # keys of view 1 into queue 1, of view 2 into queue 2, at the pointer; the other rows untouched
    assert int(task.queue_ptr) == 3
    torch.testing.assert_close(task.queue1[:3], k1)
    torch.testing.assert_close(task.queue2[:3], k2)
    torch.testing.assert_close(task.queue1[3:], queue1[3:])


# ------------------------------------------------------------------------------------------------ bad input
def test_queue_not_divisible_by_global_batch_fails_at_start(tmp_path, capsys):
    assert pretrain_main(["--output-dir", str(tmp_path), "--opt", *TINY, "moby.queue_len=100"]) == 2
    err = capsys.readouterr().err
    assert "moby.queue_len = 100 is not a multiple of the global batch 16" in err
    assert not os.path.exists(tmp_path / "last.pth")


def test_probe_needs_a_checkpoint_of_the_same_backbone(tmp_path, capsys):
    assert linear_main(["--config", "configs/moby/linear_tiny_shapes.yaml", "--output-dir", str(tmp_path),
                        "--opt", *TINY]) == 2
    assert "model.pretrained is empty: the linear probe needs a pretrained checkpoint" in capsys.readouterr().err
    other = create_model("swin_t", num_classes=0, **{**TINY_KW, "embed_dim": 24})
    path = str(tmp_path / "other.pth")
    torch.save({"model": other.state_dict()}, path)
    assert linear_main(["--config", "configs/moby/linear_tiny_shapes.yaml", "--output-dir", str(tmp_path),
                        "--opt", *TINY, f"model.pretrained={path}"]) == 2
    err = capsys.readouterr().err
    assert f"model.pretrained = '{path}' is not a checkpoint of model.name = 'swin_t'" in err
    assert "mismatched keys: " in err


# ------------------------------------------------------------------------------------------------ checkpoints
def _to_official(sd: dict) -> dict:
    """Our layout -> microsoft/Swin-Transformer's (patch merging at the end of the previous stage)."""
    out = {}
    for k, v in sd.items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        out[f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}" if m else k] = v
    return out


def test_official_transformer_ssl_layout_converts_to_the_online_encoder():
    task = _tiny_task(queue_len=8)
    with torch.no_grad():
        for p in task.encoder.parameters():
            p.add_(torch.randn_like(p))  # the target differs: the loader must take the online encoder
    sd = {}
    for prefix, module in (("encoder", task.encoder), ("encoder_k", task.encoder_k), ("projector", task.projector),
                           ("projector_k", task.projector_k), ("predictor", task.predictor)):
        sd.update({f"{prefix}.{k}": v for k, v in _to_official(module.state_dict()).items()})
    sd.update(queue1=task.queue1.t(), queue2=task.queue2.t(), queue_ptr=torch.zeros(1, dtype=torch.long))
    clf = create_model("swin_t", num_classes=5, **TINY_KW)
    report = load_pretrained(clf, {"model": sd})
    assert report.format == "official" and report.pretraining == "moby" and report.new_head
    x = torch.randn(2, 3, 16, 16)
    task.eval(), clf.eval()
    torch.testing.assert_close(clf.forward_head(clf.forward_features(x), pre_logits=True), task.encoder(x))


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """An uninterrupted two-epoch tiny pretraining run (this one draws its curves.png)."""
    out = str(tmp_path_factory.mktemp("moby") / "straight")
    torch.set_num_threads(1)
    os.environ["SWIN_SUITE_CURVES"] = "1"
    try:
        assert pretrain_main(["--output-dir", out, "--opt", *TINY]) == 0
    finally:
        os.environ["SWIN_SUITE_CURVES"] = "0"
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    return out


def test_pretraining_exports_the_online_backbone(straight_run):
    ckpt = load_checkpoint(os.path.join(straight_run, "best.pth"))
    assert ckpt["best"]["knn_top1"] >= 0 and "encoder_k.patch_embed.proj.weight" in ckpt["task"]
    assert not any(k.startswith("head.") for k in ckpt["model"])
    with open(os.path.join(straight_run, "curves.png"), "rb") as f:  # the kNN curve next to the run
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "curves: " in open(os.path.join(straight_run, "log.txt")).read()
    # into a classifier: backbone weights loaded, the head freshly initialised and reported as such
    clf = create_model("swin_t", num_classes=6, **TINY_KW)
    report = load_pretrained(clf, os.path.join(straight_run, "best.pth"))
    assert report.format == "ours" and report.new_head and not report.missing
    for k, v in ckpt["model"].items():
        torch.testing.assert_close(clf.state_dict()[k], v)
    # into Video Swin, by inflation: a clip of one repeated image gives the 2D features
    video = create_model("video_swin_t", num_classes=4, embed_dim=16, depths=(1, 1), num_heads=(1, 2),
                         window_size=(2, 4, 4), patch_size=(2, 4, 4))
    assert load_pretrained(video, os.path.join(straight_run, "best.pth"), inflate=True).new_head
    img = torch.randn(1, 3, 16, 16)
    clf.eval(), video.eval()
    torch.testing.assert_close(video.forward_head(video.forward_features(img[:, :, None].repeat(1, 1, 4, 1, 1)),
                                                  pre_logits=True),
                               clf.forward_head(clf.forward_features(img), pre_logits=True), atol=1e-4, rtol=1e-4)


def test_kill_and_resume_reproduces_uninterrupted_run(straight_run, tmp_path, monkeypatch, one_thread):
    resumed = str(tmp_path / "resumed")
    interrupt_at(monkeypatch, 6)  # iteration 2 of epoch 2
    with pytest.raises(KeyboardInterrupt):
        pretrain_main(["--output-dir", resumed, "--opt", *TINY])
    monkeypatch.undo()
    assert load_checkpoint(os.path.join(resumed, "last.pth"))["epoch"] == 1
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    assert pretrain_main(["--output-dir", resumed, "--opt", *TINY]) == 0

    a = load_checkpoint(os.path.join(straight_run, "last.pth"))
    b = load_checkpoint(os.path.join(resumed, "last.pth"))
    assert a["iteration"] == b["iteration"] == 8
    assert int(a["task"]["k"]) == int(b["task"]["k"]) == 8  # the momentum counter went on, not restarted
    assert float(b["task"]["momentum"]) == pytest.approx(momentum_at(8, 8))
    for part in ("model", "task"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            torch.testing.assert_close(a[part][k], b[part][k], rtol=0, atol=1e-6, msg=f"{part}.{k}")
    assert a["best"] == b["best"]
