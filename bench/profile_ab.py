"""Where two steps differ, operator by operator: ``python -m bench.profile_ab --task swin_t --mode train --amp bf16``.

Profiles ours and a second contender (default: the task's reference, timm or torchvision) in one process,
alternating for ``--rounds`` calls each after two warm-ups, and prints the mean self CPU time per operator side by
side: on a machine shared with other jobs the alternation lets both see the same load, which separate
``bench.profile_step`` runs do not.
"""
from __future__ import annotations

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

from bench.run import DEFAULT_REFS, contenders, make_step, parse_clip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--task", default="swin_t", choices=["swin_t", "swin3d_t"])
    p.add_argument("--mode", default="train", choices=["infer", "train"])
    p.add_argument("--amp", default="bf16", choices=["none", "bf16"])
    p.add_argument("--models", nargs=2, default=None, metavar=("A", "B"),
                   help="two contenders (default: ours and the task's reference), e.g. ours 'ours(math)'")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--clip", type=parse_clip, default=[2, 8, 112, 112], help="BxTxHxW (swin3d_t)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--rows", type=int, default=22)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.randn(a.batch, 3, 224, 224) if a.task == "swin_t" else torch.randn(a.clip[0], 3, *a.clip[1:])
    names = a.models or ["ours", DEFAULT_REFS[a.task][0]]
    builders = contenders(a.task, ["auto", "math", "sdpa"])
    amp = torch.bfloat16 if a.amp == "bf16" else None
    steps = {n: make_step(builders[n](), x, a.mode, amp, False) for n in names}
    for step in steps.values():
        step()
        step()
    total = {n: collections.Counter() for n in names}
    calls = {n: collections.Counter() for n in names}
    for _ in range(a.rounds):
        for n, step in steps.items():
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            for e in prof.key_averages():
                total[n][e.key] += e.self_cpu_time_total / 1e3 / a.rounds
                calls[n][e.key] = e.count
    print(f"{a.task} {'x'.join(map(str, x.shape))} {a.mode} {a.amp}, {torch.get_num_threads()} threads, "
          f"mean of {a.rounds} alternating profiled calls (self CPU ms)")
    print(f"| operator | {names[0]} | {names[1]} | calls |\n|---|---|---|---|")
    keys = sorted(set(total[names[0]]) | set(total[names[1]]), key=lambda k: -sum(total[n][k] for n in names))
    for k in keys[:a.rows]:
        print(f"| {k} | {total[names[0]][k]:.1f} | {total[names[1]][k]:.1f} | "
              f"{calls[names[0]][k]} / {calls[names[1]][k]} |")
    print(f"| **total** | **{sum(total[names[0]].values()):.1f}** | **{sum(total[names[1]].values()):.1f}** | |")


if __name__ == "__main__":
    main()
