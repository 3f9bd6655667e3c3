"""Config faults: every range-checked field of every schema, set out of range, fails at load naming the field,
the value and the bound."""
from __future__ import annotations

import dataclasses

import pytest

from core.classification.config import ClassificationConfig
from core.engine.config import ConfigError, load_config
from core.video.config import VideoConfig


def _bounded_fields(schema: type, prefix: str = "") -> list[tuple[str, str, float]]:
    """(dotted key, bound kind, bound) of every field declared with fld(ge=/gt=/le=/lt=)."""
    out = []
    for f in dataclasses.fields(schema):
        tp = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if tp is not None and dataclasses.is_dataclass(tp):
            out += _bounded_fields(tp, f"{prefix}{f.name}.")
            continue
        for op in ("ge", "gt", "le", "lt"):
            if op in f.metadata:
                out.append((f"{prefix}{f.name}", op, f.metadata[op]))
    return out


CASES = sorted({(s.__name__, *c) for s in (ClassificationConfig, VideoConfig) for c in _bounded_fields(s)})


def test_the_suite_covers_the_schemas():
    assert len(CASES) >= 40  # every bounded field of both schemas, tried below


@pytest.mark.parametrize("schema, key, op, bound", CASES)
def test_out_of_range_fails_naming_field_value_and_bound(schema, key, op, bound):
    cls = {"ClassificationConfig": ClassificationConfig, "VideoConfig": VideoConfig}[schema]
    step = 1 if isinstance(bound, int) else 0.5
    value = {"ge": bound - step, "gt": bound, "le": bound + step, "lt": bound}[op]
    word = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}[op]
    with pytest.raises(ConfigError, match=rf"config value out of range: {key} = .*, expected {word} {bound}"):
        load_config(None, [f"{key}={value}"], schema=cls)
