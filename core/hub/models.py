"""``create_model`` with pretrained weights by name, and ``load_weights`` for a model built elsewhere."""
from __future__ import annotations

from typing import Any

import torch.nn as nn

from ..convert import LoadReport, load_pretrained
from ..nn import registry as _models
from .files import download, read_checkpoint
from .labels import imagenet_22k_to_1k
from .registry import Pretrained, archs, get_pretrained


def load_weights(model: nn.Module, name: str | Pretrained, *, source: str | None = None, progress: bool = True,
                 **load_kwargs: Any) -> LoadReport:
    """Download the weights ``name`` and load them into ``model`` with :func:`core.load_pretrained`
    (``load_kwargs``: ``reset_head``, ``head_map``, ``inflate``, ``strict``, ...). A file that does not fit the
    model is the loader's error, naming the weights, the file and the keys."""
    entry = name if isinstance(name, Pretrained) else get_pretrained(name)
    path = download(entry.name, source=source, progress=progress)
    try:
        return load_pretrained(model, read_checkpoint(path), **load_kwargs)
    except ValueError as e:
        raise ValueError(f"pretrained {entry.name} ({path}): {e}") from None


def _entry(name: str, pretrained: bool | str | None) -> Pretrained | None:
    """The entry ``name`` / ``pretrained`` ask for (None: a plain registered model)."""
    if "." in name:
        if isinstance(pretrained, str) and pretrained:
            raise ValueError(f"create_model({name!r}, pretrained={pretrained!r}): give the tag once")
        return get_pretrained(name)
    if isinstance(pretrained, str) and pretrained:
        return get_pretrained(name, pretrained)
    return get_pretrained(name) if pretrained else None


def create_model(name: str, pretrained: bool | str = False, *, source: str | None = None, progress: bool = True,
                 **kwargs: Any) -> nn.Module:
    """Build a registered model, or the architecture of pretrained weights, and load them.

    ``create_model("swin_t")``: random weights. ``create_model("swin_t.ms_in1k", pretrained=True)`` or
    ``create_model("swin_t", pretrained="ms_in1k")``: the named weights (``pretrained=True`` with a bare arch: its
    default weights); a name with a tag and ``pretrained=False`` builds that architecture untrained. Keyword
    arguments override the entry's (another ``num_classes``: a fresh head; 1000 for ImageNet-22K weights: the rows
    of the 1K classes, as the official loader does). The model's ``pretrained_cfg`` says which weights it fits.
    """
    entry = _entry(name, pretrained)
    if entry is None:
        try:
            return _models.create_model(name, **kwargs)
        except ValueError as e:
            if not (str(e).startswith("unknown model") and name in archs()):  # a hub arch, e.g. swin_v2_l_w12
                raise
            entry = get_pretrained(name)
    args = {**entry.overrides, "num_classes": entry.num_classes, **kwargs}
    model = _models.create_model(entry.model, **args)
    if pretrained:
        head: dict[str, Any] = dict(reset_head=args["num_classes"] != entry.num_classes)
        if entry.labels == "imagenet-22k" and args["num_classes"] == 1000:  # the official 22K -> 1K head rows
            head = dict(head_map=imagenet_22k_to_1k())
        load_weights(model, entry, source=source, progress=progress, **head)
    model.pretrained_cfg = entry.cfg()
    return model
