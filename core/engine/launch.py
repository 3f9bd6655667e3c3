"""What every entry point shares: arguments, config loading, model building, error reporting, the run itself.

    def setup(cfg, run) -> (task, train_loader, val_loader): ...   # run: RunContext (folder, resume, processes)
    sys.exit(launch(argv, schema=MyConfig, setup=setup, description=__doc__))
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import time
from typing import Any, Callable, Sequence

import torch.nn as nn

from ..convert import load_pretrained
from ..nn.registry import create_model
from . import distributed as du
from .callbacks import EXIT_DIVERGED, Diverged
from .checkpoint import CheckpointError, load_error
from .config import Config, ConfigError, dump_config, load_config
from .data import DataError
from .files import WriteError
from .metrics import setup_logging
from .preempt import EXIT_PREEMPTED, Preempted, RunLock, mark_preempted, preempted_before
from .rundir import RunContext, latest_run_dir, resolve_run, runs_root
from .strategy import find_last, strategy_class
from .trainer import Trainer

__all__ = ["parse_args", "build_model", "pretrained_source", "describe_load", "launch", "report_error"]

Setup = Callable[[Any, RunContext], tuple[Any, Any, Any]]
EXIT_NONFINITE = 3  # a non-finite loss or weights stopped the run (train.nonfinite=stop)


def parse_args(argv: Sequence[str] | None = None, description: str | None = None,
               default_config: str | None = None) -> argparse.Namespace:
    """--config PATH [--opt k=v ...] [--resume PATH] [--output-dir DIR] [--eval-only]."""
    main_spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    prog = f"python -m {main_spec.name}" if main_spec is not None else None
    p = argparse.ArgumentParser(prog=prog, description=description.splitlines()[0] if description else None)
    p.add_argument("--config", default=default_config,
                   help="recipe YAML (may use _base_); default: " + (default_config or "the config.yaml of --output-dir"))
    p.add_argument("--opt", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. train.epochs=5 model.drop_path_rate=0.2")
    p.add_argument("--resume", default=None, metavar="PATH|auto",
                   help="checkpoint to continue (= --opt train.resume=PATH); 'auto': the newest run of this recipe "
                        "that holds a last.pth, else a fresh run")
    p.add_argument("--output-dir", default=None, help="run folder (= --opt train.output_dir=DIR); default: a new "
                   "outputs/<recipe name>/<timestamp>; a named folder holding last.pth is continued")
    p.add_argument("--eval-only", action="store_true", help="evaluate the run's best.pth (or --resume PATH) and "
                   "write eval_results.json; training records are left untouched")
    return p.parse_args(argv)


def build_model(cfg: Config, num_classes: int | None = None, *, initial_weights: bool = True,
                **overrides: Any) -> nn.Module:
    """``create_model(model.name, num_classes, **model.kwargs)`` (drop_path_rate when set), then, with
    ``initial_weights``, ``load_pretrained(model, model.pretrained, **model.pretrained_kwargs)``.

    Fields left unset keep the variant's own values. Pass ``initial_weights=not run.continuing`` where a checkpoint
    of the run replaces them anyway (a resume, an evaluation); building a model never looks at a run folder.
    """
    m = cfg.model
    kwargs = dict(m.kwargs)
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if m.drop_path_rate is not None:
        kwargs["drop_path_rate"] = m.drop_path_rate
    kwargs.update(overrides)
    if m.pretrained_kwargs.get("inflate") and not m.pretrained:
        raise ConfigError("model.pretrained is empty but model.pretrained_kwargs.inflate is true: give a 2D "
                          "ImageNet checkpoint (ours, timm or official) to inflate")
    try:
        model = create_model(m.name, **kwargs)
    except TypeError as e:  # an unknown keyword argument of the model
        raise ConfigError(f"model {m.name!r} does not take the arguments given in model.kwargs "
                          f"{sorted(m.kwargs)}: {e}") from None
    except ValueError as e:  # the model's own check of its arguments (sizes, windows, heads)
        raise ConfigError(f"model {m.name!r} with model.kwargs {dict(m.kwargs)}: {e}") from None
    if m.pretrained and initial_weights:
        path, load_kwargs = pretrained_source(m.pretrained, model, dict(m.pretrained_kwargs))
        try:
            report = load_pretrained(model, path, **load_kwargs)
        except (ConfigError, CheckpointError):
            raise
        except Exception as e:  # noqa: BLE001 -- unreadable, unsafe or unfitting weights: one line naming the file
            raise CheckpointError(f"model.pretrained = {m.pretrained}: {load_error(e) if _is_load(e) else e}") from None
        logging.getLogger("swin").info(f"initial weights: {describe_load(m.pretrained, report)}")
    return model


def pretrained_source(pretrained: str, model: nn.Module, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``model.pretrained`` as a file, or a registered name (``core.list_pretrained()``): downloaded by rank 0 first
    (one line on failure, on every rank), read with weights_only; a head of other classes is replaced (the 1K rows
    of a 22K head for 1000 classes), so fine-tuning from a 22K or K400 model needs no flag."""
    if os.path.isfile(pretrained):
        return pretrained, kwargs
    from ..hub import HubError, UnknownPretrained, download, get_pretrained, imagenet_22k_to_1k, read_checkpoint
    try:
        entry = get_pretrained(pretrained)
    except UnknownPretrained as e:
        raise ConfigError(f"model.pretrained = {pretrained!r} is neither a file nor registered weights ({e})") from None
    problem = None
    if du.is_main():
        try:
            download(entry.name)
        except HubError as e:
            problem = str(e)
    problem = du.broadcast_object(problem) if du.is_dist() else problem
    if problem:
        raise CheckpointError(f"model.pretrained = {pretrained}: {problem}")
    classes = getattr(model, "num_classes", None)
    if classes is not None and classes != entry.num_classes and not kwargs.get("inflate"):
        if entry.labels == "imagenet-22k" and classes == 1000:
            kwargs.setdefault("head_map", imagenet_22k_to_1k())
        else:
            kwargs.setdefault("reset_head", True)
    try:
        return read_checkpoint(download(entry.name, progress=False)), kwargs
    except HubError as e:
        raise CheckpointError(f"model.pretrained = {pretrained}: {e}") from None


def _is_load(e: BaseException) -> bool:
    """An error of torch.load itself (not a shape or key mismatch, whose message is already ours)."""
    return not isinstance(e, ValueError) or "WeightsUnpickler" in str(e)


def describe_load(path: str, report: Any) -> str:
    """One line on what loading a checkpoint did (format, pretraining method, resized tables, keys, head)."""
    parts = [f"{path} ({getattr(report, 'format', '?')} format"
             + (f", {report.pretraining} encoder" if getattr(report, "pretraining", None) else "") + ")"]
    if getattr(report, "inflated", False):
        parts.append("inflated 2D -> 3D")
    if getattr(report, "resized", None):
        parts.append(f"{len(report.resized)} bias table(s) resized")
    parts.append(f"missing keys {report.missing or 'none'}" if hasattr(report, "missing") else "")
    parts.append(f"unexpected keys {report.unexpected or 'none'}" if hasattr(report, "unexpected") else "")
    if getattr(report, "new_head", False):
        parts.append("new classifier head (freshly initialised)")
    return "; ".join(p for p in parts if p)


def launch(argv: Sequence[str] | None, *, schema: type, setup: Setup, description: str | None = None,
           default_config: str | None = None) -> int:
    """Parse args, load the config, ``setup(cfg, info) -> (task, train_loader, val_loader)``, train.

    Returns a process exit code: 0; 2 with one line naming the problem for config, data, checkpoint and write errors
    (a full disk: the file, the folder and its free space);
    3 when non-finite values stopped training; 4 when the divergence guard stopped it; 75 when a signal stopped it
    after writing a checkpoint.
    """
    args = parse_args(argv, description, default_config)
    if preempted_before():  # torchrun restarted a worker of a job that stopped for preemption: do not train on
        print("this job was preempted (a checkpoint is written); not starting again", file=sys.stderr)
        return EXIT_PREEMPTED
    if args.config is None:  # an existing run folder brings its own recipe
        saved = os.path.join(args.output_dir or "", "config.yaml")
        if not (args.output_dir and os.path.isfile(saved)):
            print("config error: give --config RECIPE.yaml (or --output-dir of a run, whose config.yaml is used)",
                  file=sys.stderr)
            return 2
        args.config = saved
    try:
        cfg = load_config(args.config, args.opt, schema=schema)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    # set directly, not through YAML parsing, so any path string is taken as it is
    if args.output_dir:
        cfg.train.output_dir = args.output_dir
    if args.eval_only:
        cfg.train.eval_only = True
        if args.output_dir and not args.resume:  # the folder's best.pth, not what its training resumed from
            cfg.train.resume = ""
    info = du.init_distributed(cfg.train.device)
    lock: RunLock | None = None
    fresh_dir: str | None = None  # a run folder this call created, removed again if the run fails to start
    try:
        if args.resume == "auto":
            latest = latest_run_dir(cfg, strategy_class(cfg.train.strategy).MARKER)
            if latest and not cfg.train.output_dir:
                cfg.train.output_dir = latest
        elif args.resume:
            cfg.train.resume = args.resume
        if cfg.train.eval_only and not (cfg.train.output_dir or cfg.train.resume):
            latest = latest_run_dir(cfg, "best.pth")  # evaluate the newest run of the recipe
            if latest is None:
                raise ConfigError(f"--eval-only: no run of {cfg.name!r} with a best.pth under {runs_root(cfg)}; "
                                  f"give --output-dir RUN or --resume CHECKPOINT")
            cfg.train.output_dir = latest
        fresh = not cfg.train.output_dir
        run = resolve_run(cfg, info)  # the folder, the checkpoint to continue and the processes, decided once
        fresh_dir = run.output_dir if fresh and info.is_main else None
        if info.is_main and not run.eval_only:
            lock = RunLock(run.output_dir)
            taken = lock.acquire()  # before anything is written there: a second run into the folder fails, untouched
        setup_logging(run.output_dir, info.is_main)
        if lock is not None and taken:
            logging.getLogger("swin").warning(taken)
        if info.is_main:
            print("resolved config:\n" + dump_config(cfg), flush=True)
        started = time.perf_counter()
        task, train_loader, val_loader = setup(cfg, run)
        logging.getLogger("swin").info(f"set up in {time.perf_counter() - started:.1f}s (data sets, model, loaders; "
                                       f"'done in' below counts the training alone)")
        Trainer(cfg, task, None if run.eval_only else train_loader, val_loader, info=info, run=run).fit()
        return 0
    except Preempted:
        mark_preempted()  # for core.engine.torchrun_wrapper: the job exits 75 to its caller
        return EXIT_PREEMPTED  # the checkpoint is written and the log says how to continue
    except FloatingPointError as e:
        logging.getLogger("swin").error(f"stopped: {e}")
        return EXIT_NONFINITE
    except Diverged as e:
        logging.getLogger("swin").error(f"stopped: {e}")
        return EXIT_DIVERGED
    except (ConfigError, DataError, CheckpointError, WriteError) as e:
        if lock is not None:
            lock.release()
            lock = None
        removed = fresh_dir is not None and not _has_checkpoint(fresh_dir)
        if removed:
            _remove_run_dir(fresh_dir)  # a failed start leaves no run behind (the error is printed)
        return report_error(e, info.rank, log=not removed)  # a folder the user named keeps its log
    finally:
        if lock is not None:
            lock.release()
        du.cleanup()


def error_kind(e: BaseException) -> str:
    return ("config" if isinstance(e, ConfigError) else "data" if isinstance(e, DataError) else
            "checkpoint" if isinstance(e, CheckpointError) else "write")


def report_error(e: BaseException, rank: int = 0, *, log: bool = True, code: int = 2) -> int:
    """One ``<kind> error: ...`` line on stderr (and into log.txt); under ``core.engine.torchrun_wrapper`` each rank
    hands its line to the wrapper instead, which prints every distinct line once. Returns ``code``."""
    line = f"{error_kind(e)} error: {e}"
    if log:
        logging.getLogger("swin.warnings").error(line)  # into log.txt too (rank 0, once it is open)
    errors = os.environ.get("SWIN_ERRORS_DIR")
    if errors and os.path.isdir(errors):
        from .files import atomic_write_text
        atomic_write_text(os.path.join(errors, f"rank{rank}.json"), json.dumps({"code": code, "line": line}))
    else:
        print(line, file=sys.stderr)
    return code


def _has_checkpoint(run_dir: str) -> bool:
    return find_last(run_dir) is not None or os.path.isfile(os.path.join(run_dir, "best.pth"))


def _remove_run_dir(run_dir: str) -> None:
    """Remove a run folder this call created (its log released first), and its recipe's folder when that is left
    empty."""
    for name in ("swin", "swin.warnings"):  # release log.txt before it goes
        for h in list(logging.getLogger(name).handlers):
            if isinstance(h, logging.FileHandler):
                logging.getLogger(name).removeHandler(h)
                h.close()
    shutil.rmtree(run_dir, ignore_errors=True)
    parent = os.path.dirname(os.path.abspath(run_dir))
    with contextlib.suppress(OSError):
        os.rmdir(parent)  # only when empty
