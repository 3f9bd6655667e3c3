"""Video Swin-T against the video models a user would pick instead: ``python -m bench.video_models``.

The peers are pytorchvideo's Kinetics-400 zoo architectures built by its own hub builders with random weights
(``pytorchvideo.models.hub.mvit_base_16x4`` and ``slowfast_r50`` with ``pretrained=False``, and
``pytorchvideo.models.x3d.create_x3d``, which is the hub's ``x3d_m`` at other clip sizes; nothing is downloaded),
next to ours (``video_swin_t`` from the registry, 400 classes). Per model and clip size: parameters,
multiply-accumulates of one clip (PyTorch's flop counter / 2, as papers and the pytorchvideo zoo count them),
clips/s of inference (forward under no_grad) and of a training step (forward + cross-entropy + backward + AdamW;
bench.run's ``make_step``), the models of one clip timed in interleaved rounds (bench.run's ``bench_group``, median
of ``--repeat``), and each step's peak memory (CUDA allocator, or live CPU tensors under the profiler), and the
published Kinetics-400 top-1 with the test views it was measured with.

Clip sizes: ``same`` builds every model for the one clip of ``--clip T S`` (the models that fix their input size
get the matching pos-embedding / pooling sizes: MViT ``temporal_size``/``spatial_size``, X3D
``input_clip_length``/``input_crop_size``, SlowFast ``head_pool_kernel_sizes``); ``zoo`` builds each at the clip of
its published number, where that differs. SlowFast's T is its fast pathway; the slow one takes every 4th frame
(alpha = 4, as pytorchvideo's PackPathway). Prints a markdown table and appends JSON lines to ``--out``.
"""
from __future__ import annotations

import argparse
import datetime
import platform
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from bench.run import append_jsonl, bench_group, make_step
from core import create_model
from core.nn.flops import count_macs


class PackPathway(nn.Module):
    """SlowFast on one (B, C, T, H, W) clip: the fast pathway is the clip, the slow one every alpha-th frame."""

    def __init__(self, model: nn.Module, alpha: int = 4) -> None:
        super().__init__()
        self.model, self.alpha = model, alpha

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        idx = torch.linspace(0, t - 1, max(1, t // self.alpha), device=x.device).long()
        return self.model([x.index_select(2, idx), x])


def _video_swin_t(t: int, s: int) -> nn.Module:
    return create_model("video_swin_t", num_classes=400)  # any clip size: windows are padded


def _mvit_b_16x4(t: int, s: int) -> nn.Module:
    from pytorchvideo.models import hub
    return hub.mvit_base_16x4(pretrained=False, temporal_size=t, spatial_size=s)


def _x3d_m(t: int, s: int) -> nn.Module:
    from pytorchvideo.models.x3d import create_x3d
    # hub.x3d_m fixes the clip (16, 224) and passes nothing else: X3D-M is create_x3d's default expansion
    return create_x3d(input_clip_length=t, input_crop_size=s)


def _slowfast_r50(t: int, s: int) -> nn.Module:
    from pytorchvideo.models import hub
    alpha = 4
    pool = ((max(1, t // alpha), s // 32, s // 32), (t, s // 32, s // 32))
    return PackPathway(hub.slowfast_r50(pretrained=False, head_pool_kernel_sizes=pool), alpha)


@dataclass(frozen=True)
class Peer:
    """A contender: its builder at clip (T, S), the clip of its published number, and that number."""
    label: str
    build: Callable[[int, int], nn.Module]
    zoo_clip: tuple[int, int]
    top1: float
    views: str  # test views of the published top-1 (temporal clips x spatial crops)
    zoo_gmacs: float  # published cost of one view
    zoo_mparams: float
    source: str


# Published numbers: pytorchvideo docs/source/model_zoo.md (Kinetics-400 table; its "Flops (G)" are fvcore counts,
# i.e. multiply-accumulates, of one test view: X3D and SlowFast are trained at 224 and tested on 256 x 256 crops,
# MViT at 224); Video Swin-T: Liu et al., "Video Swin Transformer" (CVPR 2022), Table 1 (ImageNet-1K pretrained,
# 32x2 clips, 224 test crops).
PEERS: dict[str, Peer] = {
    "video_swin_t": Peer("Video Swin-T (ours)", _video_swin_t, (32, 224), 78.8, "4x3", 88.0, 28.2,
                         "Video Swin paper"),
    "mvit_b_16x4": Peer("MViT-B 16x4", _mvit_b_16x4, (16, 224), 78.85, "5x1", 70.80, 36.61, "pytorchvideo zoo"),
    "x3d_m": Peer("X3D-M", _x3d_m, (16, 256), 75.94, "10x3", 6.72, 3.79, "pytorchvideo zoo"),
    "slowfast_r50": Peer("SlowFast R50 8x8", _slowfast_r50, (32, 256), 76.94, "10x3", 65.71, 34.57,
                         "pytorchvideo zoo"),
}


def measure_cost(model: nn.Module, t: int, s: int) -> tuple[float, float]:
    """(GMACs of one clip, M params), counted on the meta device (no arithmetic)."""
    params = sum(p.numel() for p in model.parameters()) / 1e6
    meta = model.to("meta").eval()
    macs, _ = count_macs(meta, [torch.zeros(1, 3, t, s, s, device="meta")])
    return macs / 1e9, params


def run_clip(names: list[str], t: int, s: int, kind: str, args: argparse.Namespace, device: torch.device) -> list[dict]:
    """Rows of the models ``names`` at one clip: cost, then each mode timed in interleaved rounds (bench.run)."""
    rows = {}
    for name in names:
        peer = PEERS[name]
        gmacs, mparams = measure_cost(peer.build(t, s), t, s)
        rows[name] = {"bench": "video_models", "model": name, "label": peer.label, "clip": [t, s, s],
                      "clip_kind": kind, "batch": args.batch, "device": str(device), "threads": torch.get_num_threads(),
                      "gpu": torch.cuda.get_device_name() if device.type == "cuda" else "cpu", "amp": args.amp,
                      "gmacs": gmacs, "mparams": mparams, "top1": peer.top1, "views": peer.views,
                      "zoo_gmacs": peer.zoo_gmacs, "zoo_mparams": peer.zoo_mparams, "source": peer.source}
    amp = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.amp]
    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, t, s, s, device=device)
    for mode in args.modes:
        torch.manual_seed(0)
        steps = {name: make_step(PEERS[name].build(t, s), x, mode, amp, False) for name in names}
        for name, r in bench_group(steps, x, args.warmup, args.repeat, memory=not args.no_memory).items():
            rows[name].update({f"{mode}_sec": r["sec"], f"{mode}_clips_per_s": r["items_per_s"],
                               f"{mode}_peak_gib": r["peak_gib"], f"{mode}_spread": r["spread"]})
        del steps
    return list(rows.values())



def _rate(r: dict, mode: str) -> str:
    """clips/s of a mode (and its peak memory), or '-' when it was not timed."""
    if f"{mode}_sec" not in r:
        return "-"
    peak = r[f"{mode}_peak_gib"]
    return f"{r[f'{mode}_clips_per_s']:.2f}" + (f" ({peak:.1f} GiB)" if peak == peak else "")

def table(rows: list[dict]) -> str:
    """The RESULTS.md table: one line per model and clip."""
    lines = ["| model | clip T x H x W | params (M) | GMACs / clip | inference clips/s | training step clips/s "
             "| K400 top-1 (views) | published GMACs x views |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        t, h, w = r["clip"]
        clip = f"{t}x{h}x{w}" + (f" (slow {max(1, t // 4)})" if r["model"] == "slowfast_r50" else "")
        clip += " (zoo)" if (t, h) == PEERS[r["model"]].zoo_clip else ""
        lines.append(f"| {r['label']} | {clip} | {r['mparams']:.2f} | {r['gmacs']:.2f} | {_rate(r, 'infer')} | "
                     f"{_rate(r, 'train')} | {r['top1']:.2f} ({r['views']}) | {r['zoo_gmacs']:g} x {r['views']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--models", nargs="+", default=list(PEERS), choices=list(PEERS))
    p.add_argument("--clip", type=int, nargs=2, default=[16, 224], metavar=("T", "S"),
                   help="the common clip: T frames of S x S (SlowFast: T is the fast pathway)")
    p.add_argument("--clips", nargs="+", default=["same"], choices=["same", "zoo"],
                   help="same: every model at --clip; zoo: each at its published clip where that differs")
    p.add_argument("--modes", nargs="+", default=["infer", "train"], choices=["infer", "train"])
    p.add_argument("--batch", type=int, default=1, help="clips per call")
    p.add_argument("--amp", default="none", choices=["none", "bf16", "fp16"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="torch threads on CPU (0: default)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory call of each step (CPU: profiler)")
    p.add_argument("--out", default="outputs/bench.jsonl", help="JSON lines appended here ('' = none)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    import pytorchvideo
    versions = {"torch": torch.__version__, "pytorchvideo": pytorchvideo.__version__}
    groups: dict[tuple[int, int, str], list[str]] = {}  # models timed together (interleaved) share a clip
    for kind in args.clips:
        for name in args.models:
            t, size = tuple(args.clip) if kind == "same" else PEERS[name].zoo_clip
            if not any((t, size) == k[:2] and name in v for k, v in groups.items()):
                groups.setdefault((t, size, kind), []).append(name)
    rows = []
    for (t, size, kind), names in groups.items():
        rows += run_clip(names, t, size, kind, args, device)
        for r in rows[-len(names):]:
            print(f"{r['model']} {t}x{size}x{size}: " + ", ".join(
                f"{k} {v:.3g}" for k, v in r.items() if k.endswith(("clips_per_s", "gmacs", "peak_gib"))), flush=True)
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    for r in rows:
        r.update(versions, date=date, machine=platform.machine())
    print(f"\n{date}, {device}, batch {args.batch}, {torch.get_num_threads()} threads, "
          + ", ".join(f"{k} {v}" for k, v in versions.items()) + "\n")
    print(table(rows))
    append_jsonl(args.out, rows)


if __name__ == "__main__":
    main()
