"""The training loop on the task contract: accumulation, custom tasks, best.pth, errors, resume refusal."""
from __future__ import annotations

import json
import os

import pytest
import torch
import torch.nn as nn

from core.classification.task import ClassificationTask
from core.engine import Task, Trainer
from core.engine.config import ConfigError
from core.engine.device import resolve_amp
from helpers import engine_cfg, tiny_swin

pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------- loop
class _Step(Task):
    """A task from two functions: step(task, batch) -> loss or (loss, scalars); evaluate(task) -> metrics."""
    backbone_attr = "net"

    def __init__(self, net, step, evaluate=None):
        super().__init__()
        self.net, self._step, self._eval = net, step, evaluate

    def forward(self, batch):
        out = self._step(self, batch)
        loss, scalars = out if isinstance(out, tuple) else (out, {})
        return {"loss": loss, **scalars}

    def evaluate(self, loader, env):
        return self._eval(self) if self._eval else {}


def _ce(net):
    return ClassificationTask(net, nn.CrossEntropyLoss())


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
        cfg = engine_cfg("train.epochs=1", "sched.warmup_epochs=0", "optim.clip_grad=1.0", "train.amp=none", *opts,
                   output_dir=str(tmp_path / str(len(outs))))
        model = _Linear()
        tr = Trainer(cfg, _ce(model), loader, None)
        assert tr.geo.updates_per_epoch == 2 and tr.geo.global_batch == 8
        tr.fit()
        assert tr.state.updates == 2
        outs.append(model.state_dict())
    for k in outs[0]:
        torch.testing.assert_close(outs[0][k], outs[1][k], rtol=1e-5, atol=1e-6)


def test_custom_step_without_validation(tmp_path):
    calls = []

    def step(task, batch):
        x, _ = batch
        out = task.net(x)
        calls.append(len(x))
        return out.pow(2).mean(), {"aux": 2.0}

    cfg = engine_cfg("train.log_interval=1", output_dir=str(tmp_path))
    res = Trainer(cfg, _Step(_Linear(), step), _batches(3, 4), None).fit()
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

    def step(task, batch):
        return task.net(batch[0]).pow(2).mean(), {"count": 7.0}

    def evaluate(task):
        return {"top1": next(scores), "count": 3}

    cfg = engine_cfg("train.epochs=3", output_dir=str(tmp_path))
    res = Trainer(cfg, _Step(_Linear(), step, evaluate), _batches(2, 4), None).fit()
    assert res["best"] == {"top1": 70.0, "count": 3, "epoch": 2}
    assert res["final"]["count"] == 7.0 and res["final"]["val_count"] == 3 and res["final"]["top1"] == 60.0
    assert torch.load(tmp_path / "best.pth", weights_only=True)["epoch"] == 2
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 3


def test_nonfinite_loss_is_an_error(tmp_path):
    cfg = engine_cfg(output_dir=str(tmp_path))
    tr = Trainer(cfg, _Step(_Linear(), lambda t, b: t.net(b[0]).sum() * float("nan")), _batches(2, 4), None)
    with pytest.raises(FloatingPointError, match=r"loss is nan at epoch 1 iteration 1"):
        tr.fit()


def test_refuses_to_overwrite_checkpoint_without_resume(tmp_path):
    cfg = engine_cfg("train.epochs=1", "sched.warmup_epochs=0", output_dir=str(tmp_path))
    Trainer(cfg, _ce(_Linear()), _batches(2, 4), None).fit()
    before = (tmp_path / "last.pth").read_bytes()
    cfg = engine_cfg("train.epochs=1", "sched.warmup_epochs=0", "train.auto_resume=false", output_dir=str(tmp_path))
    from core.engine.checkpoint import CheckpointError
    with pytest.raises(CheckpointError, match=r"last.pth exists and train.auto_resume=false"):
        Trainer(cfg, _ce(_Linear()), _batches(2, 4), None).fit()
    assert (tmp_path / "last.pth").read_bytes() == before


def test_grad_checkpointing_switch(tmp_path):
    cfg = engine_cfg("train.grad_checkpointing=true", output_dir=str(tmp_path))
    model = tiny_swin()
    Trainer(cfg, _ce(model), [], None)
    assert all(stage.grad_checkpointing for stage in model.layers)
    with pytest.raises(ConfigError, match=r"train.grad_checkpointing=true but _Linear has no set_grad_checkpointing"):
        Trainer(cfg, _ce(_Linear()), [], None)


def test_amp_resolution(monkeypatch):
    from core.engine import device as dev
    from core.engine.config import ConfigError
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: True)
    assert resolve_amp("auto", torch.device("cpu")) is torch.bfloat16
    assert resolve_amp("bf16", torch.device("cpu")) is torch.bfloat16
    assert resolve_amp("none", torch.device("cpu")) is None
    with pytest.raises(ConfigError, match="fp16 on CPU"):
        resolve_amp("fp16", torch.device("cpu"))
    monkeypatch.setattr(dev, "cpu_has_native_bf16", lambda: False)
    assert dev.amp_choice("auto", torch.device("cpu")) == (None, "auto: CPU has no native bf16")
    with pytest.raises(ConfigError, match=r"train.amp=bf16: the CPU \(.*\) has no native bf16"):
        resolve_amp("bf16", torch.device("cpu"))


def test_native_bf16_detection_matches_cpu_flags():
    flags = open("/proc/cpuinfo").read().split() if os.path.exists("/proc/cpuinfo") else None
    if flags is None:
        pytest.skip("no /proc/cpuinfo")
    from core.engine.device import cpu_has_native_bf16
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)




class _Counting(Task):
    """A task with state outside its backbone: a buffer advanced by after_update (like a momentum schedule)."""
    backbone_attr = "net"
    best_metric = "neg_loss"

    def __init__(self):
        super().__init__()
        self.net = _Linear()
        self.proj = nn.Linear(3, 2)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.seen: list[tuple[int, int]] = []

    def forward(self, batch):
        return {"loss": self.proj(self.net(batch[0])).pow(2).mean(), "twice": torch.tensor(2.0)}

    def after_update(self, step, total_steps):
        self.updates += 1
        self.seen.append((step, total_steps))

    def evaluate(self, loader, env):
        return {"neg_loss": -float(self.proj.weight.detach().norm())}


def test_task_state_hooks_and_resume(tmp_path):
    cfg = engine_cfg("train.epochs=2", "train.log_interval=2", output_dir=str(tmp_path))
    task = _Counting()
    res = Trainer(cfg, task, _batches(3, 4), None).fit()
    assert task.seen == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (6, 6)] and int(task.updates) == 6
    ckpt = torch.load(tmp_path / "last.pth", weights_only=True)
    # the deliverable is the backbone alone, in its own names; the rest of the task is saved beside it
    assert set(ckpt["model"]) == {"body.weight", "body.bias", "head.weight", "head.bias"}
    assert set(ckpt["task"]) == {"proj.weight", "proj.bias", "updates"} and int(ckpt["task"]["updates"]) == 6
    assert res["final"]["twice"] == 2.0 and "neg_loss" in res["best"]
    # resumed with more epochs: the counter continues from the checkpoint, not from zero
    resumed = _Counting()
    Trainer(engine_cfg("train.epochs=3", output_dir=str(tmp_path)), resumed, _batches(3, 4), None).fit()
    assert int(resumed.updates) == 9 and resumed.seen[0][0] == 7
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["iter"] for r in rows if r["kind"] == "train"][:2] == [2, 3]  # one row per log interval


def test_trainer_refuses_a_plain_module(tmp_path):
    with pytest.raises(TypeError, match=r"Trainer runs a core.engine.task.Task, got _Linear"):
        Trainer(engine_cfg(output_dir=str(tmp_path)), _Linear(), _batches(1, 4), None)


# ----------------------------------------------------------------------------------------------- data wait
class _SlowLoader:
    """Batches that each take ``delay`` seconds to arrive, as from a loader that cannot keep up."""

    def __init__(self, batches, delay):
        self.batches, self.delay, self.batch_size = batches, delay, len(batches[0][0])

    def __len__(self):
        return len(self.batches)

    def __iter__(self):
        import time
        for b in self.batches:
            time.sleep(self.delay)
            yield b


def test_data_wait_is_measured_and_a_loader_bound_epoch_warned(tmp_path):
    cfg = engine_cfg("train.epochs=1", "sched.warmup_epochs=0", "train.log_interval=2", output_dir=str(tmp_path))
    res = Trainer(cfg, _ce(_Linear()), _SlowLoader(_batches(4, 4), 0.25), None).fit()
    final = res["final"]
    assert 0.95 <= final["data_wait_s"] <= 2.0 and final["data_wait"] > 0.6  # 4 x 0.25 s of a ~1.1 s epoch
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(r["data_wait"] > 0.5 for r in rows if r.get("kind") == "train")
    log = (tmp_path / "log.txt").read_text()
    assert "waited" in log and "loader-bound" in log and "data.num_workers" in log
    fast = Trainer(engine_cfg("train.epochs=1", "sched.warmup_epochs=0", output_dir=str(tmp_path / "fast")),
                   _ce(_Linear()), _batches(4, 4), None).fit()
    assert fast["final"]["data_wait"] < 0.3
    # a sub-second epoch that mostly waits (a linear probe on cached features) is not warned about
    short = Trainer(engine_cfg("train.epochs=1", "sched.warmup_epochs=0", output_dir=str(tmp_path / "short")),
                    _ce(_Linear()), _SlowLoader(_batches(4, 4), 0.02), None).fit()
    assert short["final"]["data_wait"] > 0.3 and "loader-bound" not in (tmp_path / "short" / "log.txt").read_text()


# ----------------------------------------------------------------------------------------------- callbacks
def test_callbacks_see_every_hook_can_add_to_the_row_and_stop_the_run(tmp_path):
    from core.engine import Callback
    from core.engine.preempt import Preempted

    class Probe(Callback):
        def __init__(self):
            self.calls = []

        def on_fit_start(self, trainer):
            self.calls.append("fit_start")

        def on_train_step(self, trainer, out):
            self.calls.append("step")
            return {**out, "doubled": out["loss"].detach() * 2}  # a replacement the loop logs

        def on_step_end(self, trainer, epoch, iteration):
            self.calls.append(f"update {epoch}.{iteration}")

        def on_epoch_end(self, trainer, row):
            self.calls.append("epoch_end")
            row["probe"] = 1.0

        def on_save(self, trainer, path):
            self.calls.append(f"save {os.path.basename(path)}")

        def on_fit_end(self, trainer, results):
            self.calls.append("fit_end")

    probe = Probe()
    cfg = engine_cfg("train.epochs=2", "sched.warmup_epochs=0", "train.log_interval=1", output_dir=str(tmp_path))
    res = Trainer(cfg, _ce(_Linear()), _batches(2, 4), None, callbacks=[probe]).fit()
    assert probe.calls == ["fit_start", "step", "update 0.0", "step", "epoch_end", "save last.pth",
                           "step", "update 1.0", "step", "epoch_end", "save last.pth", "fit_end"]
    assert res["final"]["probe"] == 1.0
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r.get("kind") == "train"]
    assert all(abs(r["doubled"] - 2 * r["loss"]) < 1e-6 for r in train)

    class StopAfterFirstUpdate(Callback):
        def on_step_end(self, trainer, epoch, iteration):
            trainer.request_stop()

    cfg = engine_cfg("train.epochs=2", "sched.warmup_epochs=0", output_dir=str(tmp_path / "stopped"))
    with pytest.raises(Preempted, match="stopped by SIGTERM at epoch 1 iteration 1/2"):
        Trainer(cfg, _ce(_Linear()), _batches(2, 4), None, callbacks=[StopAfterFirstUpdate()]).fit()
    assert (tmp_path / "stopped" / "last.pth").is_file()
