"""Speed of one MoBY pretraining step of Swin-T: ``python -m bench.moby_step [--device cuda] [--batch 64]``.

A step is what the engine runs per iteration: both views through the online backbone, projector and predictor,
both through the momentum target, the symmetric loss against two 4096 x 256 queues, backward, AdamW, the
momentum update and the enqueue. Reported: median seconds per step, images per second (an image = one pair of
views, as MoBY counts its batch), peak memory (CUDA allocator, or the process's peak RSS on the CPU); printed as
one markdown row and appended as a JSON line to --out.
"""
from __future__ import annotations

import argparse

import torch

from bench.run import append_jsonl, peak_gib, timeit
from core import create_model
from core.engine.device import autocast
from moby.task import MoBY


def build(name: str, queue_len: int) -> MoBY:
    """The official Swin-T MoBY: drop path 0.2 online, 0 target, heads 4096 -> 256."""
    online = create_model(name, num_classes=0, drop_path_rate=0.2)
    target = create_model(name, num_classes=0, drop_path_rate=0.0)
    return MoBY(online, target, proj_dim=256, hidden_dim=4096, queue_len=queue_len)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="swin_t")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=0, help="images per step (default: 64 on CUDA, 8 on the CPU)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"])
    p.add_argument("--queue", type=int, default=4096)
    p.add_argument("--warmup", type=int, default=0, help="default: 3 on CUDA, 1 on the CPU")
    p.add_argument("--repeat", type=int, default=0, help="default: 10 on CUDA, 3 on the CPU")
    p.add_argument("--out", default="", help="append the result as a JSON line here")
    a = p.parse_args(argv)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    batch = a.batch or (64 if cuda else 8)
    amp = {"auto": torch.bfloat16 if cuda else None, "none": None, "bf16": torch.bfloat16,
           "fp16": torch.float16}[a.amp]
    torch.manual_seed(0)
    task = build(a.model, a.queue).to(device).train()
    opt = torch.optim.AdamW([q for q in task.parameters() if q.requires_grad], lr=1e-4, weight_decay=0.05)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    views = (torch.randn(batch, 3, a.size, a.size, device=device), torch.randn(batch, 3, a.size, a.size, device=device))

    def step() -> None:
        with autocast(device, amp):
            loss = task(views)["loss"]
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
        task.after_update(1, 1000)

    sec = timeit(step, device, a.warmup or (3 if cuda else 1), a.repeat or (10 if cuda else 3))
    peak, peak_kind = peak_gib(device)
    row = {"task": "moby_step", "model": a.model, "device": device.type,
           "gpu": torch.cuda.get_device_name(device) if cuda else "cpu",
           "amp": "none" if amp is None else str(amp).replace("torch.", ""),
           "batch": batch, "size": a.size, "queue": a.queue, "threads": torch.get_num_threads(), "sec": sec,
           "images_per_s": batch / sec, "peak_gib": peak, "peak_kind": peak_kind}
    print(f"| MoBY {a.model} step | {row['gpu']} | {row['amp']} | batch {batch} at {a.size} | {sec:.3f} s | "
          f"{row['images_per_s']:.1f} img/s | peak {peak:.2f} GiB ({row['peak_kind']}) |")
    append_jsonl(a.out, [row])
    return row


if __name__ == "__main__":
    main()
