"""Test helpers shared by every test module: paths, tiny model sizes, random weights, a 2-process torchrun."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ROOT / "configs"
DIGITS = str(CONFIGS / "swin" / "tiny_digits.yaml")
# a tiny 2D Swin for engine runs, as a --opt override and as create_model arguments
TINY_OPT = "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}"
TINY_ENGINE = dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=4, patch_size=4)
# a tiny two-stage model for model-level tests (two blocks per stage: plain and shifted windows)
TINY_MODEL = dict(embed_dim=24, depths=(2, 2), num_heads=(2, 4), window_size=4, num_classes=5)


def interrupt_at(monkeypatch, step: int) -> None:
    """Make every trainer's ``step``-th training step (counted from 1) raise KeyboardInterrupt, as a kill would."""
    from core.engine import callbacks

    class Interrupt(callbacks.Callback):
        calls = 0

        def on_train_step(self, trainer, out):
            self.calls += 1
            if self.calls == step:
                raise KeyboardInterrupt("killed")

    monkeypatch.setattr(callbacks, "EXTRA", [Interrupt()])


def tiny_swin(**kw) -> torch.nn.Module:
    """A 10-class two-stage Swin of one block per stage (TINY_ENGINE)."""
    from core import create_model
    return create_model("swin_t", num_classes=10, **TINY_ENGINE, **kw)


def engine_cfg(*opts: str, output_dir: str = ""):
    """A classification config for short CPU engine runs, plus ``opts`` overrides."""
    from core.classification.config import ClassificationConfig
    from core.engine.config import load_config
    return load_config(None, ["train.progress=false", "train.tensorboard=false", "train.epochs=2", "train.device=cpu",
                              "sched.warmup_epochs=1", f"train.output_dir={output_dir}", *opts], ClassificationConfig)


def tiny_kwargs(name: str) -> dict:
    """create_model overrides that shrink any registered variant to two stages of two blocks, keeping its family.

    Window and patch keep the variant's number of axes; Swin-MLP keeps its channels per head.
    """
    from core.nn.registry import model_defaults
    d = model_defaults(name)
    ndim = d.get("ndim", 2)
    heads = d.get("num_heads", (3, 6))
    dim = d.get("embed_dim", 96)
    per_head = dim // heads[0]
    kw = dict(depths=(2, 2), num_heads=(1, 2), embed_dim=per_head, num_classes=3)
    kw["window_size"] = (2, 4, 4) if ndim == 3 else 4
    kw["patch_size"] = (2, 4, 4) if ndim == 3 else 4
    return kw


def tiny_input(name: str, batch: int = 2) -> torch.Tensor:
    """An input for :func:`tiny_kwargs` models, not divisible by the window (padding and masks are exercised)."""
    from core.nn.registry import model_defaults
    ndim = model_defaults(name).get("ndim", 2)
    return torch.randn(batch, 3, *((6, 36, 28) if ndim == 3 else (36, 28)))


def randomize_(model: torch.nn.Module) -> torch.nn.Module:
    """Random weights everywhere (norms and biases too), so that equivalence tests exercise every parameter."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and "norm" in name:
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model


def torchrun(module: str, *args: str, nproc: int = 2, timeout: int = 240) -> str:
    """Run ``python -m module args`` under a 2-process torchrun on CPU; returns stdout, fails on error or hang."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", module, *args]
    # own session, so a hang kills torchrun and its workers together
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        log, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        log, err = proc.communicate()
        pytest.fail(f"torchrun timed out:\n{log[-3000:]}\n{err[-3000:]}")
    assert proc.returncode == 0, log[-3000:] + err[-3000:]
    return log


def translating_clip(shift: tuple[int, int], frames: int = 4, size: int = 32) -> torch.Tensor:
    """(1, 3, T, H, W): a smooth periodic pattern moved by ``shift`` = (dx, dy) pixels a frame."""
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    out = []
    for t in range(frames):
        u, v = xx - shift[0] * t, yy - shift[1] * t
        img = torch.sin(2 * math.pi * u / 16) + torch.cos(2 * math.pi * v / 16) + 0.5 * torch.sin(
            2 * math.pi * (u + v) / 32)
        out.append(img.expand(3, size, size))
    return torch.stack(out, 1)[None]
