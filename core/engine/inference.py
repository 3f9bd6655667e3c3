"""What the inference tools load (their options and reports are the commands' kit, ``cli/kit.py``): a checkpoint's
recipe and model (any format load_pretrained reads) or registered weights by name, class names, input expansion
(files, folders, globs), top-k rows and stage features.

The recipe of a checkpoint is its saved ``config`` entry (our training checkpoints), else the ``config.yaml``
beside it (a run folder), else the schema's defaults with ``--model NAME`` (official, timm, torchvision files).
"""
from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import torch
import torch.nn as nn

from ..convert import load_pretrained, read_state_dict
from .checkpoint import CheckpointError, load_checkpoint
from .config import SCHEMA_KEY, ConfigError, config_from_dict, load_config, parse_overrides, read_recipe
from .data import DataError
from .device import amp_choice
from .launch import build_model

__all__ = ["LoadedModel", "load_model", "load_for_inference", "pretrained_recipe", "checkpoint_recipe", "class_names",
           "expand_inputs", "output_stems", "topk_rows", "ToolError", "pick_device", "stage_features", "check_stage",
           "check_target"]

ToolError = (ConfigError, CheckpointError, DataError)


@dataclass
class LoadedModel:
    """A model in eval mode with the recipe it came with."""
    model: nn.Module
    cfg: Any
    num_classes: int
    format: str        # source layout: ours, timm, torchvision, official, official_video
    recipe: str        # where the recipe came from: "checkpoint", "<path>/config.yaml" or "--model NAME"
    classes: list[str] | None = None  # the class names saved in the checkpoint (ours), if any


def checkpoint_recipe(ckpt_path: str, ckpt: dict, schema: type, model_name: str | None = None,
                opts: Sequence[str] = ()) -> tuple[Any, str]:
    """(config of type ``schema``, where it came from); ``opts`` are ``--opt key=value`` overrides. Sections of the
    training method that ``schema`` does not have (a fine-tuning recipe's ``finetune``) are set aside: inference
    needs the model and the data settings."""
    beside = os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "config.yaml")
    problem = ""
    try:
        if isinstance(ckpt.get("config"), dict):
            tree = parse_overrides(list(opts), _inference_sections(ckpt["config"], schema))
            return config_from_dict(tree, schema), "checkpoint"
        if os.path.isfile(beside):
            tree = parse_overrides(list(opts), _inference_sections(read_recipe(beside), schema))
            return config_from_dict(tree, schema), beside
    except ConfigError as e:
        problem = f"its saved recipe is not a {schema.__name__} ({e})"
    if not model_name:
        why = problem or "it holds no recipe (no 'config' entry, no config.yaml beside it)"
        raise ConfigError(f"{ckpt_path}: {why}; pass --model NAME (e.g. swin_t, video_swin_t)")
    cfg = load_config(None, [f"model.name={model_name}", *opts], schema=schema)
    return cfg, f"--model {model_name}"


def _inference_sections(tree: dict, schema: type) -> dict:
    """A saved recipe without its schema name and without the sections (mappings) that ``schema`` has no field for."""
    fields = {f.name for f in dataclasses.fields(schema)}
    return {k: v for k, v in tree.items() if k != SCHEMA_KEY and (k in fields or not isinstance(v, dict))}


def _head_classes(sd: dict[str, torch.Tensor]) -> int:
    w = sd.get("head.fc.weight")
    return int(w.shape[0]) if w is not None else 0


def load_model(ckpt_path: str, schema: type, *, model_name: str | None = None, opts: Sequence[str] = (),
               need_head: bool = True, device: torch.device | str = "cpu") -> LoadedModel:
    """Build the checkpoint's model from its recipe and load its weights (strictly) for inference."""
    ckpt = load_checkpoint(ckpt_path)
    cfg, recipe = checkpoint_recipe(ckpt_path, ckpt, schema, model_name, opts)
    amp_choice(cfg.train.amp, torch.device(device))  # an unusable precision (--amp) stops here, as one line
    if model_name and recipe != f"--model {model_name}" and model_name != cfg.model.name:
        raise ConfigError(f"--model {model_name} but {ckpt_path} was trained as {cfg.model.name}")
    try:
        sd, fmt = read_state_dict(ckpt)
    except ValueError as e:
        raise CheckpointError(f"{ckpt_path}: {e}") from None
    num_classes = _head_classes(sd)
    if need_head and num_classes == 0:
        raise CheckpointError(f"{ckpt_path} has no classifier head (a backbone): extract features instead, "
                              f"or fine-tune it first")
    try:
        model = build_model(cfg, num_classes, initial_weights=False)
    except ValueError as e:
        raise ConfigError(f"cannot build model {cfg.model.name!r}: {e}") from None
    try:
        load_pretrained(model, ckpt)
    except ValueError as e:
        raise CheckpointError(f"{ckpt_path}: {e}") from None
    saved = saved_classes(ckpt)
    return LoadedModel(model.to(device).eval(), cfg, num_classes, fmt, recipe, saved)


def saved_classes(ckpt: Mapping[str, Any]) -> list[str] | None:
    """The class names a checkpoint of ours carries (its ``meta``), None for other files."""
    meta = ckpt.get("meta")
    classes = meta.get("classes") if isinstance(meta, dict) else None
    return list(classes) if classes else None


def class_names(num_classes: int, ckpt_path: str, classes_file: str | None = None,
                fallback: Sequence[str] | None = None, saved: Sequence[str] | None = None) -> list[str]:
    """``--classes FILE``, else the names ``saved`` in the checkpoint, else classes.txt beside it, else ``fallback``,
    else "0", "1", ..."""
    path = classes_file or os.path.join(os.path.dirname(os.path.abspath(ckpt_path)), "classes.txt")
    if saved and not classes_file:
        names, source = list(saved), f"{ckpt_path} (its saved class names)"
    elif os.path.isfile(path):
        names = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines() if ln.strip()]
        source = path
    elif classes_file:
        raise DataError(f"--classes {classes_file}: file not found")
    else:
        names, source = list(fallback or []), "the recipe"
        if not names:
            return [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise DataError(f"{source} names {len(names)} classes but the checkpoint's head has {num_classes}")
    return names


def expand_inputs(items: Iterable[str], extensions: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files from paths, folders (searched recursively for ``extensions``) and globs, in the given order.

    Returns (files, problems): an item that is neither a file, a folder nor a matching glob is a problem
    ``(item, reason)``; files are not opened here.
    """
    files: list[str] = []
    problems: list[tuple[str, str]] = []
    exts = tuple(e.lower() for e in extensions)

    def in_folder(d: str) -> list[str]:
        return sorted(str(p) for p in Path(d).rglob("*") if p.is_file() and p.suffix.lower() in exts)

    for item in items:
        if os.path.isdir(item):
            found = in_folder(item)
            files += found
            if not found:
                problems.append((item, f"no files ending in {', '.join(exts)} in this folder"))
        elif os.path.exists(item):
            files.append(item)
        elif glob.has_magic(item):
            found = sorted(glob.glob(item, recursive=True))
            for f in found:
                files += in_folder(f) if os.path.isdir(f) else [f]
            if not found:
                problems.append((item, "no file matches this pattern"))
        else:
            problems.append((item, "file not found"))
    return list(dict.fromkeys(files)), problems


def output_stems(paths: Sequence[str]) -> dict[str, str]:
    """An output name per input: its stem, or where stems repeat (``a/0.mp4``, ``b/0.mp4``) its path below the
    inputs' common folder with ``__`` for the separators (``a__0``), so no output overwrites another."""
    stems = {p: os.path.splitext(os.path.basename(p))[0] for p in paths}
    if len(set(stems.values())) == len(stems):
        return stems
    root = os.path.commonpath([os.path.abspath(os.path.dirname(p)) for p in paths])
    return {p: os.path.splitext(os.path.relpath(os.path.abspath(p), root))[0].replace(os.sep, "__") for p in paths}



def topk_rows(probs: torch.Tensor, classes: Sequence[str], k: int) -> list[dict[str, Any]]:
    """The k most probable classes of one score vector: [{"class", "index", "prob"}]."""
    p, i = probs.float().topk(min(k, probs.numel()))
    return [{"class": classes[j], "index": j, "prob": float(v)} for v, j in zip(p.tolist(), i.tolist())]



def load_for_inference(checkpoint: str | None, schema: type, *, model: str | None = None, opts: Sequence[str] = (),
                       device: torch.device | str = "cpu", **kwargs: Any) -> tuple[LoadedModel, str]:
    """(:func:`load_model` of ``checkpoint``, its path); without a checkpoint, the registered weights ``model`` =
    ``<arch>.<tag>`` (downloaded) with their release's recipe and class names."""
    name, classes = model, None
    if not checkpoint:
        if not model:
            raise ConfigError("give --checkpoint FILE, or --model <arch>.<tag> of registered weights "
                              "(python -c 'import core; print(core.list_pretrained())')")
        checkpoint, name, recipe, classes = pretrained_recipe(model)
        opts = [*recipe, *opts]
    loaded = load_model(checkpoint, schema, model_name=name, opts=opts, device=device, **kwargs)
    loaded.classes = loaded.classes or classes
    return loaded, checkpoint


def pretrained_recipe(name: str) -> tuple[str, str, list[str], list[str] | None]:
    """(the downloaded file, its model name, the recipe overrides of its release, its class names) of registered
    weights ``<arch>.<tag>``; errors as one line (ConfigError: unknown name, CheckpointError: no download)."""
    import yaml

    from ..hub import HubError, UnknownPretrained, class_names, download, get_pretrained
    try:
        entry = get_pretrained(name)
        path = download(entry.name)
    except UnknownPretrained as e:
        raise ConfigError(f"--model {name}: {e}") from None
    except HubError as e:
        raise CheckpointError(f"--model {name}: {e}") from None
    plain = {k: list(v) if isinstance(v, tuple) else v for k, v in entry.overrides.items()}
    opts = [f"model.kwargs={yaml.safe_dump(plain, default_flow_style=True).strip()}"] if plain else []
    size = entry.input_size
    if len(size) == 4:  # (C, T, H, W): the release's clip, its sampling and test views
        opts += [f"data.clip_len={size[1]}", f"data.crop_size={size[-1]}"]
        opts += [f"data.frame_interval={entry.frame_interval}"] if entry.frame_interval else []
        if entry.test_views:
            clips, crops = entry.test_views.split("x")
            opts += [f"data.num_clips={clips}", f"data.num_crops={crops}"]
    else:
        opts += [f"data.img_size={size[-1]}"]
    return path, entry.model, opts, (class_names(entry.labels) if entry.labels else None)



def pick_device(pref: str) -> torch.device:
    """auto = cuda when available, else cpu; or the device named."""
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {pref} but CUDA is not available")
    return torch.device(pref)



def stage_features(model: nn.Module, x: torch.Tensor, stage: int, pooling: str) -> torch.Tensor:
    """Stage ``stage`` (1-based; the last one after the final norm, = ``forward_features``) of a batch, then the
    mean over its tokens (B, C) with pooling "mean", or the map (B, *spatial', C) with "none"."""
    f = model.forward_features(x) if stage == len(model.layers) else model.forward_stages(x)[stage - 1]
    return f.flatten(1, -2).mean(1) if pooling == "mean" else f


def check_stage(stage: int | None, model: nn.Module) -> int:
    """The 1-based stage to read (default: the last); ConfigError naming the range."""
    n = len(model.layers)
    stage = n if stage is None else stage
    if not 1 <= stage <= n:
        raise ConfigError(f"--stage {stage}: this model has stages 1 to {n}")
    return stage



def check_target(target: str | None, classes: Sequence[str]) -> int | None:
    """``--target``: a class index or name (None: the predicted class); ConfigError naming the range."""
    if target is None:
        return None
    if target in classes and not target.lstrip("-").isdigit():
        return list(classes).index(target)
    try:
        index = int(target)
    except ValueError:
        raise ConfigError(f"--target {target}: not a class name of this model nor an index 0 to "
                          f"{len(classes) - 1}") from None
    if not 0 <= index < len(classes):
        raise ConfigError(f"--target {target}: this model has classes 0 to {len(classes) - 1}")
    return index
