"""Typed run configuration: dataclass schema, YAML loading with ``_base_`` inheritance, ``--opt`` overrides.

A recipe is a YAML file whose top-level sections match the fields of its schema. The root :class:`Config`
holds what every method shares (``model``, ``optim``, ``sched``, ``train``); each task's schema adds its own
sections (classification: ``data``, ``aug``; pretraining: its own). ``_base_: other.yaml`` (or a list) names
files, relative to this one, that are loaded first and deep-merged under it. Unknown keys, values of the
wrong type and out-of-range values raise :class:`ConfigError` naming the key, the file it came from and
the expected value. A section may define ``check(self)`` for cross-field rules (raise ConfigError).
``--opt key=value`` sets one value; a mapping given with ``--opt`` replaces the inherited one as a whole.

Methods extend the schema by subclassing the root with their sections, then passing it to :func:`load_config`::

    @dataclass
    class VideoConfig(Config):
        data: VideoDataConfig = field(default_factory=VideoDataConfig)

    cfg = load_config("configs/video_swin/x.yaml", ["train.epochs=5"], schema=VideoConfig)
"""
from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal, Union

import yaml

__all__ = [
    "ConfigError", "fld", "ModelConfig", "LoaderConfig", "OptimConfig", "SchedConfig", "TrainConfig", "Config",
    "load_config", "read_recipe", "config_from_dict", "config_to_dict", "dump_config", "parse_overrides", "validate",
    "check_registered",
]

OPT_SOURCE = "--opt"


class ConfigError(ValueError):
    """A config key is unknown, mistyped or out of range; the message names key and file."""


def fld(default: Any = dataclasses.MISSING, *, ge: float | None = None, gt: float | None = None,
        le: float | None = None, lt: float | None = None, help: str = "") -> Any:
    """A dataclass field with optional numeric bounds (checked by :func:`validate`) and help text."""
    meta = {k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, help=help).items() if v not in (None, "")}
    if isinstance(default, (list, dict, set)):
        value = default
        return field(default_factory=lambda: copy.deepcopy(value), metadata=meta)
    return field(default=default, metadata=meta)


def check_registered(key: str, value: str, registered: Iterable[str], what: str, note: str = "") -> None:
    """A field that names something registered (a data set): ConfigError listing the registered names. The registry
    is the one source of the names; a schema never lists them again."""
    names = sorted(set(registered))
    if value not in names:
        raise ConfigError(f"config value out of range: {key} = {value!r}, expected {what}: {', '.join(names)}{note}")


# ----------------------------------------------------------------------------------------------- schema
@dataclass
class ModelConfig:
    """Which model to build: ``core.create_model(name, num_classes=..., drop_path_rate=..., **kwargs)``."""
    name: str = "swin_t"
    num_classes: int = fld(1000, ge=0, help="0 = take it from the dataset")
    drop_path_rate: float | None = fld(None, ge=0.0, lt=1.0, help="null = the variant's own value")
    pretrained: str = fld("", help="checkpoint path loaded with core.load_pretrained before training")
    pretrained_kwargs: dict[str, Any] = fld({}, help="extra load_pretrained arguments, e.g. {reset_head: true}")
    kwargs: dict[str, Any] = fld({}, help="extra create_model keyword arguments (embed_dim, depths, ...)")


@dataclass
class LoaderConfig:
    """What :func:`core.engine.data.build_loaders` reads; every task's data section subclasses it."""
    batch_size: int = fld(128, ge=1, help="per process; the global batch is batch_size * world_size * accum_steps")
    eval_batch_size: int = fld(0, ge=0, help="0 = batch_size")
    num_workers: int = fld(8, ge=0)
    pin_memory: bool = True


@dataclass
class OptimConfig:
    """Optimizer (timm create_optimizer_v2) and parameter grouping."""
    name: str = "adamw"
    lr: float = fld(1e-3, gt=0.0, help="peak lr at global batch lr_base_size (absolute if lr_base_size=0)")
    lr_base_size: int = fld(0, ge=0, help="scale lr, warmup_lr and min_lr by global_batch / lr_base_size")
    weight_decay: float = fld(0.05, ge=0.0)
    eps: float = fld(1e-8, gt=0.0)
    betas: list[float] = fld([0.9, 0.999])
    momentum: float = fld(0.9, ge=0.0, lt=1.0)
    clip_grad: float = fld(5.0, ge=0.0, help="max global grad norm, 0 = off")
    accum_steps: int = fld(1, ge=1)
    layer_decay: float = fld(1.0, gt=0.0, le=1.0, help="layer-wise lr decay (uses model.group_id), 1 = off")
    lr_mult: dict[str, float] = fld({}, help="param-name prefix -> lr multiplier; key 'backbone' = all but head.")
    no_weight_decay_keywords: list[str] = fld(["relative_position_bias_table", "mask_token", "absolute_pos_embed"])

    def check(self) -> None:
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"config value out of range: optim.betas = {self.betas}, expected two numbers in [0, 1)")
        for k, v in self.lr_mult.items():
            if v < 0:
                raise ConfigError(f"config value out of range: optim.lr_mult.{k} = {v}, expected >= 0")


@dataclass
class SchedConfig:
    """Learning-rate schedule, stepped per optimizer update (timm schedulers, t_in_epochs=False)."""
    name: Literal["cosine", "multistep", "constant"] = "cosine"
    warmup_epochs: float = fld(20.0, ge=0.0)
    warmup_lr: float = fld(1e-6, ge=0.0)
    min_lr: float = fld(1e-5, ge=0.0)
    decay_epochs: list[float] = fld([], help="multistep: epochs at which lr is multiplied by decay_rate")
    decay_rate: float = fld(0.1, gt=0.0)


@dataclass
class TrainConfig:
    """Run control: epochs, precision, checkpointing, logging."""
    epochs: int = fld(300, ge=1)
    seed: int = 0
    amp: Literal["auto", "none", "bf16", "fp16"] = fld(
        "auto", help="auto = bf16 where the device computes it natively (CUDA with bf16, a CPU with avx512_bf16 or "
                     "AMX), fp32 elsewhere; bf16 on a CPU without it and fp16 on a CPU are refused")
    compile: bool = False
    grad_checkpointing: bool = False
    ema: bool = False
    ema_decay: float = fld(0.9998, ge=0.0, le=1.0)
    output_dir: str = fld("", help="'' = outputs/<config file stem>")
    resume: str = fld("", help="checkpoint to resume from; '' = <output_dir>/last.pth if it exists")
    auto_resume: bool = True
    eval_only: bool = False
    eval_interval: int = fld(1, ge=1, help="evaluate every N epochs (and after the last)")
    save_interval: int = fld(1, ge=1)
    log_interval: int = fld(10, ge=1, help="iterations between metrics.jsonl rows")
    checkpoint_interval: int = fld(0, ge=0, help="optimizer updates between mid-epoch last.pth saves (resumed "
                                                 "exactly), 0 = at epoch ends only")
    nonfinite: Literal["stop", "skip"] = fld("stop", help="a non-finite loss or gradient: stop the run (checked at "
                                                          "log intervals), or skip that step and count it (checked "
                                                          "every step)")
    divergence_factor: float = fld(10.0, ge=0.0, help="divergence guard: stop the run (exit 4) when the mean loss of "
                                                   "divergence_intervals log intervals in a row exceeds this times "
                                                   "its running minimum (at least 0.1); 0 = off")
    divergence_intervals: int = fld(3, ge=1, help="divergence guard: log intervals in a row above the bound")
    divergence_max_skipped: float = fld(0.5, ge=0.0, le=1.0, help="divergence guard, train.nonfinite=skip: stop "
                                                                   "when more than this fraction of an epoch's steps "
                                                                   "were skipped (checked from 10 steps on)")
    max_iters_per_epoch: int = fld(0, ge=0, help="debug: stop each epoch after N iterations, 0 = full")
    tensorboard: bool = True
    progress: bool = True
    curves: bool = fld(True, help="draw curves.png next to the run at its end (loss, lr, the task's best metric; "
                                  "the environment variable SWIN_SUITE_CURVES=0 turns it off, e.g. in tests)")
    device: str = fld("auto", help="auto | cpu | cuda")
    find_unused_parameters: bool = False
    deterministic: bool = False
    strategy: Literal["ddp", "fsdp"] = fld("ddp", help="ddp = replicate the model on every rank; fsdp = shard "
                                                       "parameters, gradients and optimizer state (FSDP2, "
                                                       "core.engine.sharding) with sharded checkpoints")
    fsdp_mesh: list[int] = fld([], help="fsdp device mesh: [] = shard over all ranks; [R, S] = replicate over R "
                                        "groups of S ranks (HSDP), R * S = world size")
    fsdp_cpu_offload: bool = fld(False, help="fsdp: keep sharded parameters, gradients and optimizer state in CPU "
                                             "memory (CUDA runs; a no-op on CPU)")
    fsdp_reshard_after_forward: bool = fld(True, help="fsdp: free the gathered parameters after each block's "
                                                      "forward (less memory, one more all-gather in backward)")

    def check(self) -> None:
        if self.fsdp_mesh and (len(self.fsdp_mesh) not in (1, 2) or min(self.fsdp_mesh) < 1):
            raise ConfigError(f"config value out of range: train.fsdp_mesh = {self.fsdp_mesh}, expected [] (all "
                              f"ranks), [S] or [R, S] with positive sizes")
        from .strategy import strategy_class  # the strategy refuses what it cannot run, with the reason
        strategy_class(self.strategy).check(self)


@dataclass
class Config:
    """Root of a recipe: the sections every method shares. Tasks subclass it with their own sections."""
    name: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sched: SchedConfig = field(default_factory=SchedConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------------------------- yaml
class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


def _read_yaml(path: str) -> dict:
    """Read one YAML mapping, with a clear error for missing files and syntax errors."""
    if not os.path.isfile(path):
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path) as f:
            data = _yaml_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse YAML in {path}: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


def _merge(dst: dict, src: dict, src_file: str, sources: dict, prefix: str = "") -> None:
    """Deep-merge ``src`` into ``dst`` in place, recording the file each leaf key came from."""
    for k, v in src.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            sources.setdefault(key, src_file)
            _merge(dst[k], v, src_file, sources, key + ".")
        else:
            dst[k] = copy.deepcopy(v)
            sources[key] = src_file
            if isinstance(v, dict):
                _record(v, src_file, sources, key + ".")


def _record(d: dict, src_file: str, sources: dict, prefix: str) -> None:
    for k, v in d.items():
        sources[f"{prefix}{k}"] = src_file
        if isinstance(v, dict):
            _record(v, src_file, sources, f"{prefix}{k}.")


PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _shipped(path: str) -> str:
    """A recipe path as given, else the shipped recipe of that relative path (``configs/...`` from any folder)."""
    if os.path.isabs(path) or os.path.isfile(path):
        return path
    shipped = os.path.join(PROJECT_ROOT, path)
    return shipped if os.path.isfile(shipped) else path


def _load_tree(path: str, sources: dict, stack: tuple[str, ...] = ()) -> dict:
    """Load a YAML file and its ``_base_`` chain into one merged dict."""
    path = os.path.abspath(_shipped(path) if not stack else path)
    if path in stack:
        raise ConfigError(f"circular _base_ chain: {' -> '.join(stack + (path,))}")
    data = _read_yaml(path)
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a file name or a list of file names, got {bases!r}")
    merged: dict = {}
    for base in bases:
        base_path = os.path.join(os.path.dirname(path), base)
        if not os.path.isfile(base_path):
            raise ConfigError(f"{path}: _base_ file not found: {base_path}")
        _merge(merged, _load_tree(base_path, sources, stack + (path,)), base_path, {})
        # re-record sources of the base subtree (the recursive call recorded them already)
    _merge(merged, data, path, sources)
    return merged


def _parse_override(item: str) -> tuple[list[str], Any]:
    """``"a.b=1"`` -> (["a", "b"], 1); the value is parsed as YAML (safe loader)."""
    if "=" not in item:
        raise ConfigError(f"{OPT_SOURCE} {item!r}: expected key=value, e.g. train.epochs=5")
    key, _, raw = item.partition("=")
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"{OPT_SOURCE} {item!r}: bad key {key!r}")
    try:
        value = _yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"{OPT_SOURCE} {item!r}: cannot parse value: {e}") from None
    return key.split("."), value


def parse_overrides(overrides: list[str] | None, tree: dict | None = None, sources: dict | None = None) -> dict:
    """Apply ``["a.b=1", "c=[2, 3]"]`` to ``tree`` (a new dict by default) and return it.

    Each item sets one value: a mapping given as the value replaces the one in ``tree``, it is not merged.
    """
    tree = {} if tree is None else tree
    sources = {} if sources is None else sources
    for item in overrides or []:
        parts, value = _parse_override(item)
        node = tree
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{OPT_SOURCE} {item!r}: {p} is set to a value and used as a section")
        node[parts[-1]] = copy.deepcopy(value)
        key = ".".join(parts)
        sources[key] = OPT_SOURCE
        if isinstance(value, dict):
            _record(value, OPT_SOURCE, sources, key + ".")
    return tree


# ----------------------------------------------------------------------------------------------- typing
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp))
        return f"{origin.__name__}[{args}]"
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against type ``tp`` (int accepted for float); return it, possibly converted."""
    def fail() -> ConfigError:
        return ConfigError(f"config key '{key}' in {where}: expected {_type_name(tp)}, "
                           f"got {type(value).__name__} {value!r}")

    if tp is Any:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is Literal:
        if value not in args:
            raise fail()
        return value
    if origin in (Union, types.UnionType):
        for a in args:
            try:
                return _coerce(value, a, key, where)
            except ConfigError:
                continue
        raise fail()
    if tp is type(None):
        if value is not None:
            raise fail()
        return None
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise fail()
        item_tp = args[0] if args else Any
        return [_coerce(v, item_tp, f"{key}[{i}]", where) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise fail()
        ktp, vtp = args if args else (Any, Any)
        return {_coerce(k, ktp, key, where): _coerce(v, vtp, f"{key}.{k}", where) for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise fail()
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail()
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise fail()
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise fail()
    return value


def _build(cls: type, data: dict, sources: dict, prefix: str = "") -> Any:
    """Instantiate dataclass ``cls`` from a nested dict, checking keys and types."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        where = sources.get(key, "config")
        if k not in fields:
            close = difflib.get_close_matches(str(k), list(fields), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else ""
            raise ConfigError(f"unknown config key '{key}' in {where}{hint} "
                              f"(valid keys of '{prefix.rstrip('.') or 'root'}': {', '.join(fields)})")
        tp = hints[k]
        if dataclasses.is_dataclass(tp):
            if not isinstance(v, dict):
                raise ConfigError(f"config key '{key}' in {where}: expected a section (mapping), got {v!r}")
            kwargs[k] = _build(tp, v, sources, key + ".")
        else:
            kwargs[k] = _coerce(v, tp, key, where)
    return cls(**kwargs)


def validate(cfg: Any, prefix: str = "", sources: dict | None = None) -> None:
    """Check numeric bounds declared with :func:`fld` and cross-field rules; raise ConfigError naming the source."""
    sources = sources or {}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            validate(value, key + ".", sources)
            continue
        m = f.metadata
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        for op, ok, word in (("ge", lambda a, b: a >= b, ">="), ("gt", lambda a, b: a > b, ">"),
                             ("le", lambda a, b: a <= b, "<="), ("lt", lambda a, b: a < b, "<")):
            if op in m and not ok(value, m[op]):
                where = f" (set in {sources[key]})" if key in sources else ""
                raise ConfigError(f"config value out of range: {key} = {value!r}, expected {word} {m[op]}{where}")
    for klass in reversed(type(cfg).__mro__):  # every piece's own check, base pieces first
        own = klass.__dict__.get("check")
        if own is not None:
            own(cfg)


# ----------------------------------------------------------------------------------------------- api
def config_from_dict(data: dict, schema: type = Config, sources: dict | None = None) -> Any:
    """Build and validate a config of type ``schema`` from a nested dict."""
    cfg = _build(schema, data, sources or {})
    validate(cfg, sources=sources)
    return cfg


def read_recipe(path: str) -> dict:
    """The merged YAML tree of a recipe and its ``_base_`` chain, before validation (to peek at a field)."""
    return _load_tree(path, {})


def load_config(path: str | None, overrides: list[str] | None = None, schema: type | None = None) -> Any:
    """Load a YAML recipe (with ``_base_`` chain) plus ``--opt`` overrides into a validated ``schema``.

    Without ``schema``, a resolved config written by :func:`dump_config` (a run's config.yaml) is read with
    the schema it names; anything else with the root :class:`Config`.
    """
    sources: dict = {}
    tree = _load_tree(path, sources) if path else {}
    recorded = tree.pop(SCHEMA_KEY, None)
    if schema is None:
        schema = _schema_by_name(recorded, path) if recorded else Config
    parse_overrides(overrides, tree, sources)
    cfg = config_from_dict(tree, schema, sources)
    if hasattr(cfg, "name") and not cfg.name and path:
        cfg.name = os.path.splitext(os.path.basename(path))[0]
    return cfg


def config_to_dict(cfg: Any) -> dict:
    """Plain nested dict of a config (YAML- and torch.load(weights_only=True)-safe)."""
    return dataclasses.asdict(cfg)


def dump_config(cfg: Any) -> str:
    """The resolved config as YAML text, naming its schema (``_schema_``) so that load_config reads it back."""
    tree = {SCHEMA_KEY: f"{type(cfg).__module__}.{type(cfg).__qualname__}", **config_to_dict(cfg)}
    return yaml.safe_dump(tree, sort_keys=False, default_flow_style=None)


SCHEMA_KEY = "_schema_"


def _schema_by_name(name: Any, path: str | None) -> type:
    """The Config subclass a dumped config names (module.Class); ConfigError if it is not one."""
    import importlib
    module, _, cls = str(name).rpartition(".")
    try:
        schema = getattr(importlib.import_module(module), cls) if module else None
    except ImportError:
        schema = None
    if not (isinstance(schema, type) and issubclass(schema, Config)):
        raise ConfigError(f"{path}: {SCHEMA_KEY} = {name!r} is not a config schema (a subclass of "
                          f"core.engine.config.Config); pass schema= explicitly")
    return schema
