"""Weights in and out: every supported checkpoint layout into ours, and one ``load_pretrained`` for every model.

Formats (``formats``, ``hf``) are detected from the keys; model families register their own steps with
:func:`register_converter` next to their builders, pretraining methods their checkpoint layouts with
:func:`register_layout`; ``inflate`` turns 2D weights into 3D ones.
"""
from ..nn.position import infer_table_window
from .formats import (
                      FORMATS,
                      convert_state_dict,
                      detect_format,
                      pretraining_method,
                      read_state_dict,
                      register_layout,
                      unwrap,
)
from .load import LoadReport, load_pretrained, register_converter

__all__ = ["FORMATS", "convert_state_dict", "detect_format", "pretraining_method", "read_state_dict",
           "register_layout", "unwrap", "LoadReport", "infer_table_window", "load_pretrained", "register_converter"]
