"""MoBY on clips with time-reversed negatives (moby.reverse_negatives): the reversal, the extra-negative loss against
a direct computation, one forward on a tiny Video Swin (one target pass, reversed keys not enqueued), a palindromic
clip (its reversed key is its positive), the refusal on images, two-clip views of the spin/zoom set, and a one-epoch
pretraining run of the recipe whose best.pth fine-tunes with simmim.finetune."""
from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from test_moby import TINY

from cli.pretrain import main_moby as pretrain_main
from core import create_model
from core.engine.config import ConfigError, config_from_dict
from moby.config import MoBYConfig
from moby.task import MoBY, contrastive_loss, reverse_time, time_top1

VIDEO_KW = dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=(2, 4, 4), patch_size=(2, 4, 4))
T = 0.2


def _video_task(queue_len: int = 8, reverse_views: bool = False) -> MoBY:
    online = create_model("video_swin_t", num_classes=0, drop_path_rate=0.0, **VIDEO_KW)
    target = create_model("video_swin_t", num_classes=0, drop_path_rate=0.0, **VIDEO_KW)
    return MoBY(online, target, proj_dim=6, hidden_dim=10, queue_len=queue_len, temperature=T,
                reverse_negatives=True, reverse_views=reverse_views).double()


def _unit(*shape: int) -> torch.Tensor:
    return F.normalize(torch.randn(*shape, dtype=torch.double), dim=-1)


def _direct(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, *extras: torch.Tensor) -> float:
    """-log softmax of the positive over [q.k, q.extra..., q.queue] / T, one query at a time."""
    total = 0.0
    for i in range(len(q)):
        logits = [float(q[i] @ k[i]) / T] + [float(q[i] @ e[i]) / T for e in extras] + \
            [float(q[i] @ r) / T for r in queue]
        total += -(logits[0] - math.log(sum(math.exp(v) for v in logits)))
    return total / len(q)


def _keys(task: MoBY, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(task.projector_k(task.encoder_k(x)), dim=1)


# ------------------------------------------------------------------------------------------------ the pieces
def test_reverse_time_flips_the_time_axis_only():
    x = torch.randn(2, 3, 4, 5, 6)
    r = reverse_time(x)
    torch.testing.assert_close(r, torch.flip(x, dims=(2,)), rtol=0, atol=0)
    for t in range(4):
        torch.testing.assert_close(r[:, :, t], x[:, :, 3 - t], rtol=0, atol=0)
    torch.testing.assert_close(reverse_time(r), x, rtol=0, atol=0)
    with pytest.raises(ValueError, match="needs clips"):
        reverse_time(torch.randn(2, 3, 5, 6))


def test_extra_negative_loss_matches_direct_computation():
    q, k, extra, queue = _unit(5, 4), _unit(5, 4), _unit(5, 4), _unit(7, 4)
    got = float(contrastive_loss(q, k, queue, T, extra_neg=extra))
    assert got == pytest.approx(_direct(q, k, queue, extra), rel=1e-12)
    # paired row-wise: swapping two queries' extra negatives changes the loss
    assert float(contrastive_loss(q, k, queue, T, extra_neg=extra[[1, 0, 2, 3, 4]])) != pytest.approx(got)
    # a reversed key equal to the positive: the positive is at best one of two equal logits
    assert float(contrastive_loss(q, k, queue[:0], T, extra_neg=k)) == pytest.approx(math.log(2), rel=1e-12)
    assert float(time_top1(q, k, extra)) == pytest.approx(100.0 * float(((q * k).sum(1) > (q * extra).sum(1))
                                                                        .double().mean()))


# ------------------------------------------------------------------------------------------------ the task
def test_reverse_negatives_forward_on_video_swin(monkeypatch):
    task = _video_task(queue_len=8)
    x1, x2 = torch.randn(2, 3, 4, 16, 16, dtype=torch.double), torch.randn(2, 3, 4, 16, 16, dtype=torch.double)
    queue1, queue2 = task.queue1.clone(), task.queue2.clone()
    q1 = F.normalize(task.predictor(task.projector(task.encoder(x1))), dim=1).detach()
    q2 = F.normalize(task.predictor(task.projector(task.encoder(x2))), dim=1).detach()
    k1, k2 = _keys(task, x1), _keys(task, x2)
    r1, r2 = _keys(task, torch.flip(x1, (2,))), _keys(task, torch.flip(x2, (2,)))
    expect = _direct(q1, k2, queue2, r2) + _direct(q2, k1, queue1, r1)

    calls = []
    forward = task.encoder_k.forward
    monkeypatch.setattr(task.encoder_k, "forward", lambda x: calls.append(x.shape) or forward(x))
    out = task((x1, x2))
    assert calls == [(8, 3, 4, 16, 16)]  # [x1, x2, x1 reversed, x2 reversed] in one target pass
    loss = float(out["loss"].detach())
    assert math.isfinite(loss) and loss == pytest.approx(expect, rel=1e-6)
    assert 0.0 <= float(out["time_top1"]) <= 100.0
    out["loss"].backward()
    assert task.encoder.patch_embed.proj.weight.grad is not None
    # only the batch's keys entered the queues, not the reversed ones
    assert int(task.queue_ptr) == 2
    torch.testing.assert_close(task.queue1[:2], k1)
    torch.testing.assert_close(task.queue2[:2], k2)
    torch.testing.assert_close(task.queue1[2:], queue1[2:], rtol=0, atol=0)
    torch.testing.assert_close(task.queue2[2:], queue2[2:], rtol=0, atol=0)


def test_reverse_views_forward_on_video_swin(monkeypatch):
    """Reversed clips through the online encoder too: four queries, each against the other view's key in its own
    direction, with that key reversed (target) and its own clip reversed (online) as extra negatives."""
    task = _video_task(queue_len=8, reverse_views=True)
    x1, x2 = torch.randn(2, 3, 4, 16, 16, dtype=torch.double), torch.randn(2, 3, 4, 16, 16, dtype=torch.double)
    queue1, queue2 = task.queue1.clone(), task.queue2.clone()
    views = [x1, x2, x1.flip(2), x2.flip(2)]
    q = [F.normalize(task.predictor(task.projector(task.encoder(v))), dim=1).detach() for v in views]
    k = [_keys(task, v) for v in views]
    expect = (_direct(q[0], k[1], queue2, k[3], q[2]) + _direct(q[1], k[0], queue1, k[2], q[3]) +
              _direct(q[2], k[3], queue2, k[1], q[0]) + _direct(q[3], k[2], queue1, k[0], q[1])) / 2

    calls = []
    forward = task.encoder.forward
    monkeypatch.setattr(task.encoder, "forward", lambda x: calls.append(x.shape) or forward(x))
    out = task((x1, x2))
    assert calls == [(8, 3, 4, 16, 16)]  # one online pass over [x1, x2, x1 reversed, x2 reversed]
    assert float(out["loss"].detach()) == pytest.approx(expect, rel=1e-6)
    out["loss"].backward()
    assert int(task.queue_ptr) == 2
    torch.testing.assert_close(task.queue1[:2], k[0])


def test_reverse_views_push_a_clip_away_from_its_reversal():
    """The online negative carries gradient on both sides: a gradient step lowers the similarity of a clip's
    embedding and its reversal's, which the target-only negative cannot do (its keys take no gradient)."""
    torch.manual_seed(0)
    task = _video_task(queue_len=8, reverse_views=True)
    x1, x2 = torch.randn(2, 4, 3, 4, 16, 16, dtype=torch.double)

    def similarity() -> float:
        with torch.no_grad():
            q = F.normalize(task.predictor(task.projector(task.encoder(torch.cat([x1, x1.flip(2)])))), dim=1)
        return float((q[:4] * q[4:]).sum(1).mean())

    before = similarity()
    opt = torch.optim.SGD([p for p in task.parameters() if p.requires_grad], lr=0.05)
    for _ in range(3):
        opt.zero_grad()
        task((x1, x2))["loss"].backward()
        opt.step()
    assert similarity() < before


def test_palindromic_clip_cannot_beat_its_reversed_key():
    """A clip that reads the same backwards: its reversed key is its positive, so each term is at least log 2."""
    task = _video_task(queue_len=8)
    a, b = torch.randn(2, 2, 3, 2, 16, 16, dtype=torch.double)
    x1, x2 = torch.cat([a, a.flip(2)], 2), torch.cat([b, b.flip(2)], 2)  # frames [f0, f1, f1, f0]
    torch.testing.assert_close(reverse_time(x1), x1, rtol=0, atol=0)
    out = task((x1, x2))
    assert float(out["loss"].detach()) >= 2 * math.log(2) - 1e-9


# ------------------------------------------------------------------------------------------------ configs and data
def test_reverse_negatives_on_images_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"moby\.reverse_negatives=true needs clips .*'shapes'"):
        config_from_dict({"data": {"dataset": "shapes"}, "moby": {"reverse_negatives": True}}, MoBYConfig)
    assert pretrain_main(["--output-dir", str(tmp_path), "--opt", *TINY, "moby.reverse_negatives=true"]) == 2
    assert "moby.reverse_negatives=true needs clips" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "last.pth")
    cfg = config_from_dict({"data": {"dataset": "spin_zoom"}, "moby": {"reverse_negatives": True}}, MoBYConfig)
    assert cfg.data.video


def test_spin_zoom_gives_two_clip_views(tmp_path):
    from moby.data import build_pretrain_sets
    cfg = config_from_dict({"data": {"dataset": "spin_zoom", "root": str(tmp_path / "sz"), "num_train": 8,
                                     "num_val": 4, "img_size": 16, "clip_len": 8, "frame_interval": 1},
                            "aug": {"hflip": 0.0}}, MoBYConfig)
    train, bank, query = build_pretrain_sets(cfg)
    assert (len(train), len(bank), len(query)) == (8, 8, 4)
    item = train[1]
    assert item["view1"].shape == item["view2"].shape == (3, 8, 16, 16) and item["label"] == 1
    assert not torch.equal(item["view1"], item["view2"])
    assert query.classes == ["clockwise", "anticlockwise", "zoom_in", "zoom_out"]


def test_spin_zoom_recipe_pretrains_and_its_best_fine_tunes(tmp_path):
    """One epoch of configs/moby/tiny_spin_zoom.yaml on a few clips; simmim.finetune loads its best.pth."""
    from cli.finetune import main as finetune
    from core.engine.checkpoint import load_checkpoint
    root = str(tmp_path / "sz")
    common = ["train.progress=false", "train.tensorboard=false", "train.device=cpu", "data.num_workers=0",
              f"data.root={root}", "data.num_train=16", "data.num_val=8", "train.epochs=1"]
    pre = str(tmp_path / "pre")
    assert pretrain_main(["--config", "configs/moby/tiny_spin_zoom.yaml", "--output-dir", pre, "--opt", *common,
                          "data.batch_size=8", "moby.queue_len=16", "train.eval_interval=1",
                          "sched.warmup_epochs=0"]) == 0
    log = open(os.path.join(pre, "log.txt")).read()
    assert "time_top1" in log
    best = load_checkpoint(os.path.join(pre, "best.pth"))
    ft = str(tmp_path / "ft")
    assert finetune(["--config", "configs/simmim/tiny_spin_zoom_ft.yaml", "--output-dir", ft, "--opt", *common,
                     f"model.pretrained={pre}/best.pth", "finetune.label_fraction=0.5"]) == 0
    assert f"initial weights: {pre}/best.pth (ours format); missing keys none; unexpected keys none" in \
        open(os.path.join(ft, "log.txt")).read()
    out = load_checkpoint(os.path.join(ft, "last.pth"))
    k = "layers.0.blocks.0.attn.qkv.weight"
    assert not torch.equal(out["model"][k], best["model"][k]) and out["model"]["head.fc.weight"].shape[0] == 4
