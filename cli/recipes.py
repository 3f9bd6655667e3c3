"""What a command peeks at in a recipe before choosing its schema: the model name, the top-level sections."""
from __future__ import annotations

import os
from typing import Sequence

from core.engine.config import ConfigError, parse_overrides, read_recipe
from core.engine.launch import parse_args


def recipe_tree(argv: Sequence[str]) -> dict:
    """The recipe of ``--config`` (or a run folder's config.yaml) with the ``--opt`` overrides; {} when unreadable
    (the launcher then reports the problem); {} for ``--help``, which the chosen command's launcher answers."""
    if {"-h", "--help"} & set(argv):
        return {}
    args = parse_args(list(argv))
    path = args.config or (os.path.join(args.output_dir, "config.yaml") if args.output_dir else None)
    try:  # read_recipe finds the shipped configs/... from any folder, as the launcher's loader does
        return parse_overrides(args.opt, read_recipe(path) if path else {})
    except ConfigError:
        return {}


def recipe_model_name(argv: Sequence[str]) -> str:
    """``model.name`` of the recipe, '' when it names none."""
    model = recipe_tree(argv).get("model")
    return str(model.get("name", "")) if isinstance(model, dict) else ""


def recipe_sections(argv: Sequence[str]) -> set[str]:
    """The recipe's top-level keys (``moby``, ``mim``, ``finetune``, ...)."""
    return set(recipe_tree(argv))
