"""Export a model for deployment: ONNX or torch.export graphs of a fixed input size (the shifted-window masks, relative
position indices and folded attention biases as constants), or the weights in timm's / transformers' layout (the
command: ``cli/export.py``, ``python -m core.export``)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn as nn
import yaml

from .convert import load_pretrained, read_state_dict
from .engine.checkpoint import load_checkpoint
from .nn.attention import WindowAttention
from .nn.registry import create_model

FORMATS = ("onnx", "pt2", "timm", "hf")
SUFFIX = {"onnx": ".onnx", "pt2": ".pt2", "timm": ".pth", "hf": ".pth"}


def saved_recipe(checkpoint: Any) -> dict[str, Any]:
    """The recipe a checkpoint of ours was trained with (its ``config``), or {}."""
    cfg = checkpoint.get("config") if isinstance(checkpoint, dict) else None
    return cfg if isinstance(cfg, dict) else {}


def model_kwargs(checkpoint: dict, given: str | None) -> dict[str, Any]:
    """create_model overrides: --kwargs (YAML mapping), else ``model.kwargs`` of the checkpoint's saved recipe."""
    if given:
        kw = yaml.safe_load(given)
        if not isinstance(kw, dict):
            raise ValueError(f"--kwargs must be a YAML mapping, e.g. '{{embed_dim: 32}}', got {given!r}")
        return kw
    return dict((saved_recipe(checkpoint).get("model") or {}).get("kwargs") or {})


def model_name(checkpoint: Any, given: str | None) -> str:
    """MODEL as given, checked against the recipe's ``model.name``; else the recipe's."""
    saved = (saved_recipe(checkpoint).get("model") or {}).get("name")
    if given and saved and given != saved:
        raise ValueError(f"the checkpoint is a {saved!r} (its recipe's model.name), not {given!r}: give {saved} "
                         f"or leave MODEL out")
    if not (given or saved):
        raise ValueError("the checkpoint holds no recipe naming its model: give MODEL, e.g. swin_t")
    return given or saved


def recipe_input(checkpoint: Any, model: nn.Module) -> list[int]:
    """1 x C x (T x) S x S: the size the recipe trained at (crop_size / img_size, clip_len), else 224 (T 32)."""
    data = saved_recipe(checkpoint).get("data") or {}
    size = int(data.get("crop_size") or data.get("img_size") or 224)
    time = [int(data.get("clip_len") or 32)] if model.ndim == 3 else []
    return [1, model.in_chans, *time, size, size]


def export_model(name: str | None, checkpoint: str, kwargs: str | None = None) -> tuple[nn.Module, str, list[int]]:
    """``create_model(name)`` with the checkpoint's class count and recipe kwargs, its weights loaded, eval mode;
    its name and the input shape its recipe trained at."""
    raw = load_checkpoint(checkpoint)  # weights_only; a missing, corrupt or unsafe file is one CheckpointError
    name = model_name(raw, name)
    sd, _ = read_state_dict(raw)
    kw = model_kwargs(raw, kwargs)
    kw.setdefault("num_classes", sd["head.fc.weight"].shape[0] if "head.fc.weight" in sd else 0)
    model = create_model(name, **kw)
    load_pretrained(model, sd)
    model = deployable(model.eval())
    return model, name, recipe_input(raw, model)


def deployable(model: nn.Module) -> nn.Module:
    """Plain matmul-softmax-matmul attention (same numbers as SDPA; every runtime has these ops)."""
    for m in model.modules():
        if isinstance(m, WindowAttention):
            m.attn_impl = "math"
    return model


def example_input(shape: Sequence[int], dynamic_batch: bool) -> torch.Tensor:
    """A random input of ``shape``; a dynamic batch is traced at 2 (a size-1 dimension would be specialised)."""
    shape = list(shape)
    if dynamic_batch and shape[0] == 1:
        shape[0] = 2
    return torch.randn(*shape)


def export_pt2(model: nn.Module, x: torch.Tensor, out: Path, dynamic_batch: bool) -> None:
    """torch.export to a .pt2 archive (load with torch.export.load(path).module())."""
    dyn = ({0: torch.export.Dim("batch", min=1, max=4096)},) if dynamic_batch else None
    program = torch.export.export(model, (x,), dynamic_shapes=dyn)
    torch.export.save(program, str(out))


def export_onnx(model: nn.Module, x: torch.Tensor, out: Path, dynamic_batch: bool, opset: int = 18) -> None:
    """ONNX with input ``input`` and output ``output`` (the logits, or pooled features without a head)."""
    dyn = {"input": {0: "batch"}, "output": {0: "batch"}} if dynamic_batch else None
    torch.onnx.export(model, (x,), str(out), input_names=["input"], output_names=["output"], dynamic_axes=dyn,
                      opset_version=opset, dynamo=False)


def export(model: nn.Module, fmt: str, out: Path, input_shape: Sequence[int] = (1, 3, 224, 224),
           dynamic_batch: bool = False) -> Path:
    """Write ``model`` in ``fmt`` to ``out``; returns the path."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt in ("timm", "hf"):
        from .convert.hf import to_hf, to_timm
        torch.save((to_timm if fmt == "timm" else to_hf)(model.state_dict()), out)
        return out
    model = deployable(model.eval())
    model.check_input(torch.empty(*input_shape, device="meta"))
    x = example_input(input_shape, dynamic_batch)
    with torch.no_grad():
        model(x)  # fills the per-size caches (masks, index tables, folded bias): the graph reads them as constants
        (export_pt2 if fmt == "pt2" else export_onnx)(model, x, out, dynamic_batch)
    return out


if __name__ == "__main__":  # the documented ``python -m core.export``; the command is cli.export
    from cli.export import main
    sys.exit(main())
