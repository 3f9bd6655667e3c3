"""Multi-view testing of a Video Swin checkpoint: ``python -m video_swin.test [--checkpoint RUN/best.pth]``.

Every test video is cut into data.num_clips clips x data.num_crops crops (the paper's 4x3 views); the view
scores are averaged per video. Prints top-1/top-5 and writes per-video scores (test_scores.csv) and
test_results.json next to the checkpoint. The recipe and class names are those saved in the checkpoint (else the
config.yaml and classes.txt beside it), so a lone best.pth copied anywhere is tested as it was trained.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from typing import Sequence

import torch

from cli.kit import add_amp_arg, model_opts
from core.engine import build_model, latest_run_dir, load_config
from core.engine import distributed as du
from core.engine.checkpoint import CheckpointError, load_checkpoint
from core.engine.config import ConfigError
from core.engine.data import DataError, build_loaders
from core.engine.device import amp_choice, amp_name
from core.engine.inference import checkpoint_recipe, saved_classes
from core.video.config import VideoConfig
from core.video.data import collate_videos
from core.video.datasets import build_datasets, check_classes
from core.video.pytorchvideo_data import build_pytorchvideo_loaders
from core.video.task import predict_views, view_metrics
from video_swin import DEFAULT_CONFIG


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default="", help="default: best.pth of the newest run of the embedded default")
    p.add_argument("--config", default="", help="default: the recipe saved in the checkpoint (else config.yaml "
                                                "next to it)")
    p.add_argument("--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="", help="folder for test_scores.csv / test_results.json")
    add_amp_arg(p)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    ckpt_path = args.checkpoint
    if not ckpt_path:
        latest = latest_run_dir(load_config(DEFAULT_CONFIG, [], schema=VideoConfig), "best.pth")
        if latest is None:
            print("error: no --checkpoint given and no run of the embedded default with a best.pth under "
                  "outputs/tiny_moving_shapes/ (run `python -m video_swin.train` first)", file=sys.stderr)
            return 2
        ckpt_path = os.path.join(latest, "best.pth")
    try:
        ckpt = load_checkpoint(ckpt_path)
        if args.config:
            cfg = load_config(args.config, model_opts(args), schema=VideoConfig)
        else:
            cfg, _ = checkpoint_recipe(ckpt_path, ckpt, VideoConfig, opts=model_opts(args))
    except (ConfigError, CheckpointError) as e:  # config or checkpoint unusable: one clear line
        print(f"error: {e}", file=sys.stderr)
        return 2
    saved = saved_classes(ckpt)
    info = du.init_distributed(cfg.train.device)
    try:
        try:
            amp_dtype, why = amp_choice(cfg.train.amp, info.device)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        _, test_set, num_classes = build_datasets(cfg, split="test")
        if saved and list(saved) != list(test_set.classes):
            raise ConfigError(f"{ckpt_path} was trained on {len(saved)} classes ({', '.join(saved[:4])}, ...) that "
                              f"differ from the test data's {len(test_set.classes)}")
        if not saved:
            check_classes(os.path.dirname(ckpt_path), test_set.classes)
        model = build_model(cfg, num_classes, initial_weights=False).to(info.device)
        model.load_state_dict(ckpt["model"])
        loaders = build_pytorchvideo_loaders if cfg.data.backend == "pytorchvideo" else build_loaders
        _, loader = loaders(cfg, None, test_set, info, collate_fn=collate_videos)
        if info.is_main:
            print(f"testing {ckpt_path} on {len(test_set)} videos, amp {amp_name(amp_dtype)} ({why})", flush=True)
        # the bar (stderr) is closed and ends its line before the result line is printed, so that line stands alone
        scores, labels, index, skipped = predict_views(model, loader, info.device, amp_dtype, cfg.data.single_frame,
                                                       leave=True)
        sys.stderr.flush()
        metrics = view_metrics(scores, labels, skipped)
        views = f"{cfg.data.num_clips}x{cfg.data.num_crops}"
        if info.is_main:
            out = args.out or os.path.dirname(ckpt_path)
            os.makedirs(out, exist_ok=True)
            with open(os.path.join(out, "test_scores.csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["video", "label", "pred"] + list(test_set.classes))
                for i, s, y in zip(index.tolist(), scores.tolist(), labels.tolist()):
                    w.writerow([test_set.samples[i][0], y, int(torch.tensor(s).argmax())] + [f"{v:.6f}" for v in s])
            with open(os.path.join(out, "test_results.json"), "w") as f:
                json.dump({"checkpoint": ckpt_path, "views": views, **metrics, "skipped": list(skipped)}, f, indent=2)
            print(f"{views} views, {metrics['count']} videos ({metrics['skipped_videos']} unreadable skipped): "
                  + "  ".join(f"top-{k[3:]} {v:.2f}%" for k, v in metrics.items() if k.startswith("top"))
                  + f"  -> {out}/test_scores.csv", flush=True)
        return 0
    except (ConfigError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        du.cleanup()


if __name__ == "__main__":
    sys.exit(main())
