"""Divergence: a loss that runs away (optim.lr=10) stops the run with exit 4 and a line in log.txt, and no
diverged epoch becomes best.pth; mostly skipped steps (train.nonfinite=skip) stop it too; the guard is on by
default and configurable."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from core.engine.callbacks import Callback, Diverged, DivergenceGuard
from core.engine.strategy import DDPStrategy
from faults.helpers_faults import run
from helpers import engine_cfg


def _fake(tmp_path, *opts):
    tr = SimpleNamespace(cfg=engine_cfg("train.log_interval=2", *opts), device=torch.device("cpu"),
                         output_dir=str(tmp_path), state=SimpleNamespace(skipped=0, epoch=1),
                         geo=SimpleNamespace(iters_per_epoch=100), strategy=DDPStrategy, vetoed=[])
    tr.veto_best = tr.vetoed.append
    return tr


def _feed(guard, tr, losses, start=0):
    """Steps of ``losses`` through the guard's hooks (one update per step)."""
    for i, v in enumerate(losses, start):
        guard.on_train_step(tr, {"loss": torch.tensor(v)})
        guard.on_step_end(tr, 0, i)


def test_loss_above_k_times_its_minimum_for_n_intervals_stops(tmp_path):
    tr, guard = _fake(tmp_path), DivergenceGuard()
    guard.on_fit_start(tr)
    _feed(guard, tr, [2.0, 2.0, 1.0, 1.0, 30.0, 30.0, 0.5, 0.5])  # one interval above 10 x 1.0, then back: goes on
    _feed(guard, tr, [9.0, 9.0, 20.0, 20.0], 8)  # 9 > 10 x 0.5 = 5, then 20: two in a row, still going
    with pytest.raises(Diverged, match=r"diverged at epoch 1 iteration 14: mean loss 50 above 10 x its running "
                                       r"minimum 0.5 for 3 log intervals in a row; no checkpoint was written"):
        _feed(guard, tr, [50.0, 50.0], 12)  # the third
    guard = DivergenceGuard()  # the same losses with the guard turned off
    tr = _fake(tmp_path, "train.divergence_factor=0")
    _feed(guard, tr, [2.0, 2.0, 1.0, 1.0, 9.0, 9.0, 20.0, 20.0, 50.0, 50.0])


def test_an_epoch_above_the_bound_is_vetoed_and_non_finite_losses_are_ignored(tmp_path):
    tr, guard = _fake(tmp_path), DivergenceGuard()
    guard.on_fit_start(tr)
    _feed(guard, tr, [1.0, 1.0, 40.0, float("nan"), 1.0, 1.0])  # one interval at 40 (the NaN left out)
    guard.on_epoch_end(tr, {})
    assert len(tr.vetoed) == 1 and "above 10 x the running minimum 1" in tr.vetoed[0]
    _feed(guard, tr, [1.0, 1.0, 1.0, 1.0])
    guard.on_epoch_end(tr, {})
    assert len(tr.vetoed) == 1  # a calm epoch may become best


def test_mostly_skipped_steps_stop(tmp_path):
    tr, guard = _fake(tmp_path, "train.nonfinite=skip"), DivergenceGuard()
    guard.on_fit_start(tr)
    for i in range(10):
        tr.state.skipped += i % 2  # half skipped: allowed (not more than 0.5)
        _feed(guard, tr, [1.0], i)
    tr.state.skipped += 1
    with pytest.raises(Diverged, match=r"6 of 11 steps of the epoch skipped as non-finite \(more than "
                                       r"train.divergence_max_skipped=0.5\)"):
        _feed(guard, tr, [1.0], 10)


def test_a_vetoed_epoch_never_becomes_best(tmp_path):
    from core.classification.task import ClassificationTask
    from core.engine import Trainer

    class Veto(Callback):
        def on_epoch_end(self, trainer, row):
            trainer.veto_best("test veto")

    batch = (torch.randn(8, 4), torch.randint(0, 3, (8,)))
    tr = Trainer(engine_cfg(output_dir=str(tmp_path)), ClassificationTask(nn.Linear(4, 3)), [batch], [batch],
                 callbacks=[Veto()])
    tr.fit()
    assert not os.path.exists(tmp_path / "best.pth") and os.path.exists(tmp_path / "last.pth")
    assert "epoch 2 is not considered for best.pth: test veto" in open(tmp_path / "log.txt").read()


def test_lr_10_stops_with_exit_4_and_no_best(tmp_path):
    out = str(tmp_path / "run")
    r = run(out, "optim.lr=10", "train.log_interval=1", "sched.warmup_epochs=0")
    assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
    log = open(os.path.join(out, "log.txt")).read()
    assert "stopped: diverged at epoch 1 iteration 4: mean loss" in log and "for 3 log intervals in a row" in log
    assert not os.path.exists(os.path.join(out, "best.pth")) and not os.path.exists(os.path.join(out, "results.json"))
