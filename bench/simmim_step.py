"""Speed of one SimMIM pretraining step for Swin-B at 192 (window 6, mask patch 32, ratio 0.6):
``python -m bench.simmim_step [--device cuda] [--batch 128] [--amp bf16] [--compile]``.

A step is what the engine runs per iteration: masks drawn, forward with the mask token, decoder, masked L1,
backward, gradient clipping at 5 and an AdamW update over the layer-decay (0.9) parameter groups. Reported: median
seconds per step, images/s and peak memory (CUDA: max allocated; CPU: the process's peak resident set).
Prints one JSON line (also appended to --out when given).
"""
from __future__ import annotations

import argparse
import json

import torch

from bench.run import append_jsonl, peak_gib, timeit
from core import create_model
from core.engine.device import autocast
from core.engine.optim import build_param_groups
from simmim import MaskGenerator, SimMIM


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--model", default="swin_b")
    p.add_argument("--size", type=int, default=192)
    p.add_argument("--window", type=int, default=6)
    p.add_argument("--batch", type=int, default=0, help="0 = 128 on CUDA, 4 on CPU")
    p.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--warmup", type=int, default=0, help="0 = 5 on CUDA, 1 on CPU")
    p.add_argument("--repeat", type=int, default=0, help="0 = 20 on CUDA, 3 on CPU")
    p.add_argument("--out", default="")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    batch, warmup, repeat = a.batch or (128 if cuda else 4), a.warmup or (5 if cuda else 1), a.repeat or (20 if cuda else 3)
    amp = {"auto": torch.bfloat16 if cuda else None, "none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[a.amp]

    torch.manual_seed(0)
    encoder = create_model(a.model, num_classes=0, window_size=a.window, drop_path_rate=0.1)
    task = SimMIM(encoder, MaskGenerator(a.size, 32, encoder.patch_size, 0.6)).to(device)
    if a.compile:
        task.encoder.compile()
    groups = build_param_groups(task, 0.05, layer_decay=0.9)
    opt = torch.optim.AdamW([{k: v for k, v in g.items() if k not in ("names", "lr_scale")} for g in groups], lr=1e-4)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    x = torch.randn(batch, 3, a.size, a.size, device=device)

    def step() -> None:
        with autocast(device, amp):
            loss = task((x, None))["loss"]
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        torch.nn.utils.clip_grad_norm_(task.parameters(), 5.0)
        (scaler.step(opt), scaler.update()) if scaler is not None else opt.step()
        opt.zero_grad(set_to_none=True)

    task.train()
    sec = timeit(step, device, warmup, repeat)
    peak, peak_kind = peak_gib(device)
    row = {"task": "simmim_pretrain_step", "model": a.model, "input": [batch, 3, a.size, a.size], "window": a.window,
           "device": device.type, "gpu": torch.cuda.get_device_name(device) if cuda else "cpu",
           "amp": str(amp).replace("torch.", "") if amp else "none", "compile": a.compile,
           "threads": torch.get_num_threads(), "sec": sec, "images_per_s": batch / sec, "peak_gib": peak,
           "peak_kind": peak_kind}
    print(json.dumps(row))
    append_jsonl(a.out, [row])
    return row


if __name__ == "__main__":
    main()
