"""MoBY under 2-process torchrun DDP on CPU (gloo): both ranks hold identical queues holding the keys of both ranks,
with cross-rank BatchNorm in the heads. This module is also the worker torchrun runs (``-m tests.test_moby_ddp``)."""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_moby import TINY  # noqa: E402

BATCH, QUEUE, STEPS = 8, 48, 2
OPTS = [*TINY, "train.epochs=1", f"train.max_iters_per_epoch={STEPS}", f"data.batch_size={BATCH}",
        f"moby.queue_len={QUEUE}", "sched.warmup_epochs=0", "train.amp=none"]  # fp32: ranks compared to 1e-5


def worker(out: str, *extra: str) -> None:
    """One rank: pretrain STEPS steps through the engine, then send its queues and last keys to rank 0."""
    import torch.nn.functional as F

    from core.engine import Trainer, load_config, resolve_run
    from core.engine import distributed as du
    from moby.config import MoBYConfig
    from moby.runs import DEFAULT_CONFIG, setup_pretrain

    cfg = load_config(DEFAULT_CONFIG, [*OPTS, f"train.output_dir={out}", *extra], MoBYConfig)
    info = du.init_distributed("cpu")
    # the cross-rank BatchNorm on two halves = BatchNorm on the whole batch, forward and backward
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(10, 4, generator=g), torch.randn(10, 4, generator=g)
    half = slice(5 * info.rank, 5 * info.rank + 5)
    bn_full, bn = torch.nn.BatchNorm1d(4), du.convert_sync_batchnorm(torch.nn.BatchNorm1d(4), info.device)
    xr = x[half].clone().requires_grad_()
    (bn(xr) * w[half]).sum().backward()
    xf = x.clone().requires_grad_()
    (bn_full(xf) * w).sum().backward()
    with torch.no_grad():
        out_err = float((bn(x[half]) - bn_full(x)[half]).abs().max())
    bn_err = max(float((xr.grad - xf.grad[half]).abs().max()), out_err,
                 float((bn.running_var - bn_full.running_var).abs().max()))
    run = resolve_run(cfg, info)
    task, train_loader, knn = setup_pretrain(cfg, run)
    keys: list[torch.Tensor] = []
    task.projector_k.register_forward_hook(lambda m, i, o: keys.append(F.normalize(o.detach().float(), dim=1)))
    Trainer(cfg, task, train_loader, knn, run=run).fit()
    from core.engine.sharding import full_backbone_state, is_sharded
    online, target = full_backbone_state(task, "encoder."), full_backbone_state(task, "encoder_k.")
    moved = max((float((online[k] - target[k]).abs().max()) for k in online), default=0.0)
    sharded = is_sharded(task.encoder.layers[0].blocks[0]) and is_sharded(task.encoder_k.layers[0].blocks[0])
    state = {"online": online, "target": target, "moved": moved, "sharded": sharded,
             "queue1": task.queue1, "queue2": task.queue2, "ptr": int(task.queue_ptr), "k": int(task.k),
             "keys": keys, "sync_bn": isinstance(task.projector.net[1], du.GlobalBatchNorm), "bn_err": bn_err}
    states = du.all_gather_object(state)
    if info.is_main:
        torch.save(states, os.path.join(out, "ranks.pt"))
    du.cleanup()


def test_two_ranks_hold_identical_queues_with_keys_of_both(tmp_path):
    _check_two_ranks(str(tmp_path / "ddp"))


@pytest.mark.slow
def test_moby_under_fsdp_equals_ddp_with_both_encoders_sharded(tmp_path):
    """train.strategy=fsdp: the momentum encoder is sharded like the online one and updated shard by shard; both
    end where DDP's do (fp32, the summation order may differ), the queues replicated and identical on both ranks."""
    r0, r1 = _check_two_ranks(str(tmp_path / "fsdp"), "train.strategy=fsdp")
    assert r0["sharded"] and r1["sharded"]
    ref, _ = _check_two_ranks(str(tmp_path / "ddp"))
    assert not ref["sharded"] and 0 < r0["moved"] < 1
    # zero gradient by construction: the key bias (softmax ignores a shift) and the last norm's bias (the projector's
    # BatchNorm removes it); AdamW turns their rounding-noise gradients into steps of +-lr, in either direction
    noise = ("attn.qkv.bias", "norm.bias")
    for part in ("online", "target"):
        for k, v in ref[part].items():
            loose = part == "online" and k.endswith(noise)
            torch.testing.assert_close(r0[part][k], v, rtol=1e-5, atol=2e-3 if loose else 1e-6, msg=f"{part} {k}")
    torch.testing.assert_close(r0["queue1"], ref["queue1"], rtol=1e-5, atol=1e-6)


def _check_two_ranks(out: str, *extra: str) -> tuple[dict, dict]:
    from helpers import torchrun
    log = torchrun("tests.test_moby_ddp", out, *extra)
    assert f"global batch {2 * BATCH}" in log
    r0, r1 = torch.load(os.path.join(out, "ranks.pt"), weights_only=True)
    assert r0["sync_bn"] and r1["sync_bn"] and r0["bn_err"] < 1e-5 and r1["bn_err"] < 1e-5
    assert r0["ptr"] == r1["ptr"] == STEPS * 2 * BATCH and r0["k"] == r1["k"] == STEPS
    for q in ("queue1", "queue2"):
        torch.testing.assert_close(r0[q], r1[q], rtol=0, atol=0)
    # the last step's keys (view 1, view 2) of rank r sit at rows start + r * BATCH of queue 1 and queue 2
    start = (STEPS - 1) * 2 * BATCH
    for r, rank_state in enumerate((r0, r1)):
        k1, k2 = rank_state["keys"][-2:]
        torch.testing.assert_close(r0["queue1"][start + r * BATCH:start + (r + 1) * BATCH], k1)
        torch.testing.assert_close(r0["queue2"][start + r * BATCH:start + (r + 1) * BATCH], k2)
    assert not torch.allclose(r0["keys"][-2], r1["keys"][-2])  # the ranks saw different images
    return r0, r1


if __name__ == "__main__":
    worker(sys.argv[1], *sys.argv[2:])
