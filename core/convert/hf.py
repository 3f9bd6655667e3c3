"""Hugging Face transformers Swin layouts <-> ours, and ours -> timm (weights to publish elsewhere).

transformers' ``SwinModel`` (``embeddings.*``, ``encoder.layers.*``, ``layernorm.*``), ``SwinForImageClassification``
and ``SwinForMaskedImageModeling`` (the same under ``swin.``, plus ``classifier.*`` or ``decoder.*``) keep
patch merging at the end of a stage (ours: the start of the next) and separate query/key/value projections
(ours: one fused qkv, rows ordered q, k, v). Both the names of transformers >= 5 (``attention.q_proj``,
``mlp.fc1``) and the legacy ones of transformers 4 and the hub's files (``attention.self.query``,
``intermediate.dense``) are read. Conversion is exact; derived buffers are dropped.
"""
from __future__ import annotations

import re
from typing import Mapping

import torch

StateDict = dict[str, torch.Tensor]
HF_PREFIX = "swin."

# per-block renames (transformers -> ours), q/k/v handled apart: transformers >= 5 names, then the legacy ones of
# transformers 4 and of the checkpoints on the hub (attention.self.query, intermediate.dense, ...)
_BLOCK = {
    "layernorm_before.": "norm1.",
    "attention.relative_position_bias.relative_position_bias_table": "attn.relative_position_bias_table",
    "attention.o_proj.": "attn.proj.",
    "layernorm_after.": "norm2.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}
_LEGACY = {
    "attention.self.relative_position_bias_table": "attn.relative_position_bias_table",
    "attention.output.dense.": "attn.proj.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
}
_QKV = {"q_proj": 0, "k_proj": 1, "v_proj": 2, "self.query": 0, "self.key": 1, "self.value": 2}
_TOP = {
    "embeddings.patch_embeddings.projection.": "patch_embed.proj.",
    "embeddings.norm.": "patch_embed.norm.",
    "layernorm.": "norm.",
}
_DROPPED = ("relative_position_index", "embeddings.mask_token", "decoder.")  # derived, or SimMIM's own parts


def is_hf_swin(sd: Mapping[str, torch.Tensor]) -> bool:
    """True for a transformers SwinModel / SwinFor* state dict (``[swin.]embeddings.patch_embeddings.*``)."""
    return any(k.startswith(("embeddings.patch_embeddings.", HF_PREFIX + "embeddings.patch_embeddings.")) for k in sd)


def _rename(key: str, table: Mapping[str, str]) -> str | None:
    for old, new in table.items():
        if key.startswith(old):
            return new + key[len(old):]
    return None


def from_hf(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """transformers SwinModel / SwinForImageClassification / SwinForMaskedImageModeling -> our layout."""
    out: StateDict = {}
    qkv: dict[str, dict[str, torch.Tensor]] = {}
    for key, v in sd.items():
        k = key[len(HF_PREFIX):] if key.startswith(HF_PREFIX) else key
        if k.endswith(_DROPPED[0]) or k.startswith(_DROPPED[1:]):
            continue
        if k.startswith("embeddings.position_embeddings"):
            raise ValueError("transformers checkpoint uses absolute position embeddings (use_absolute_embeddings=True), "
                             "which this Swin does not have")
        if k.startswith("classifier."):
            out["head.fc." + k[len("classifier."):]] = v
            continue
        m = re.match(r"encoder\.layers\.(\d+)\.(downsample\.|blocks\.(\d+)\.)(.*)", k)
        if m is None:
            new = _rename(k, _TOP)
            if new is None:
                raise ValueError(f"unexpected key in a transformers Swin checkpoint: {key!r}")
            out[new] = v
            continue
        stage, part, rest = int(m.group(1)), m.group(2), m.group(4)
        if part == "downsample.":  # end of stage i there = start of stage i + 1 here
            out[f"layers.{stage + 1}.downsample.{rest}"] = v
            continue
        prefix = f"layers.{stage}.blocks.{m.group(3)}."
        q = re.match(r"attention\.(q_proj|k_proj|v_proj|self\.query|self\.key|self\.value)\.(weight|bias)$", rest)
        if q:
            qkv.setdefault(prefix + "attn.qkv." + q.group(2), {})[_QKV[q.group(1)]] = v
            continue
        new = _rename(rest, _BLOCK) or _rename(rest, _LEGACY)
        if new is None:
            raise ValueError(f"unexpected key in a transformers Swin checkpoint: {key!r}")
        out[prefix + new] = v
    for k, parts in qkv.items():
        if set(parts) != {0, 1, 2}:
            raise ValueError(f"transformers checkpoint lacks part of the query/key/value projections of {k}")
        out[k] = torch.cat([parts[0], parts[1], parts[2]])
    return out


def to_hf(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Our 2D Swin -> transformers (>= 5 names): SwinForImageClassification (``swin.*``, ``classifier.*``) when
    it has a head, else SwinModel; ``load_state_dict`` into a model of the same SwinConfig, then save_pretrained."""
    _check_2d_swin(sd, "transformers")
    has_head = "head.fc.weight" in sd
    pre = HF_PREFIX if has_head else ""
    top = {v: k for k, v in _TOP.items()}
    block = {v: k for k, v in _BLOCK.items()}
    out: StateDict = {}
    for k, v in sd.items():
        if k.startswith("head.fc."):
            out["classifier." + k[len("head.fc."):]] = v
            continue
        m = re.match(r"layers\.(\d+)\.(downsample\.|blocks\.(\d+)\.)(.*)", k)
        if m is None:
            new = _rename(k, top)
            if new is None:
                raise ValueError(f"no transformers name for {k!r}")
            out[pre + new] = v
            continue
        stage, part, rest = int(m.group(1)), m.group(2), m.group(4)
        if part == "downsample.":
            out[f"{pre}encoder.layers.{stage - 1}.downsample.{rest}"] = v
            continue
        prefix = f"{pre}encoder.layers.{stage}.blocks.{m.group(3)}."
        if rest.startswith("attn.qkv."):
            for name, chunk in zip(("q_proj", "k_proj", "v_proj"), v.chunk(3)):
                out[f"{prefix}attention.{name}.{rest[len('attn.qkv.'):]}"] = chunk.clone()
            continue
        new = _rename(rest, block)
        if new is None:
            raise ValueError(f"no transformers name for {k!r}")
        out[prefix + new] = v
    return out


def to_timm(sd: Mapping[str, torch.Tensor]) -> StateDict:
    """Our 2D Swin -> timm ``swin_*_patch4_window*`` (timm's layout is ours: merging at stage start, head.fc).

    Checked, not renamed: a 3D, Swin-MLP or Swin V2 model has no timm counterpart with these names.
    """
    _check_2d_swin(sd, "timm")
    return {k: v.clone() for k, v in sd.items()}


def _check_2d_swin(sd: Mapping[str, torch.Tensor], target: str) -> None:
    """Fail fast unless ``sd`` is a plain 2D Swin (V1) state dict in our layout."""
    patch = sd.get("patch_embed.proj.weight")
    if patch is None or not any(k.endswith("attn.qkv.weight") for k in sd):
        raise ValueError(f"only a Swin (V1) state dict in our layout can be exported to {target}")
    if patch.ndim != 4:
        raise ValueError(f"{target} has no {patch.ndim - 2}D Swin: export a 2D model")
    if any("cpb_mlp" in k or "logit_scale" in k for k in sd):
        raise ValueError(f"a Swin V2 state dict cannot be exported to {target}'s Swin (V1) layout")
