"""Class names of the label sets the released weights predict, in the order of their classifier rows.

ImageNet-1K and Kinetics-400 come from torchvision's weight metadata, the ImageNet-22K synsets and names from
timm's info files (read at run time), Kinetics-600 and Something-Something V2 from the files in ``data/``
(mmaction2's label maps: alphabetical for Kinetics, the official label ids for SSv2).
"""
from __future__ import annotations

import functools
import pkgutil

LABEL_SETS = ("imagenet-1k", "imagenet-22k", "kinetics-400", "kinetics-600", "something-something-v2")
# Microsoft's ImageNet-22K (Swin, Swin V2): Google's 21843-synset list without its two classes that have no
# images, whose rows hold the list's last two synsets (Swin-Transformer data/imagenet22k_dataset.py)
_EMPTY_22K = (9205, 15027)
_TEDDY = ("n04399382", "n03013580")  # ImageNet-1K's teddy bear is not in 22K; Swin's map points at "teddy" (garment)


def _timm_info(name: str) -> list[str]:
    data = pkgutil.get_data("timm.data", f"_info/{name}")
    if data is None:
        raise FileNotFoundError(f"timm.data/_info/{name}")
    return data.decode().splitlines()


@functools.cache
def imagenet_22k_synsets() -> tuple[str, ...]:
    """The 21841 WordNet ids of the ImageNet-22K classifier rows of Microsoft's Swin / Swin V2 releases."""
    goog = [s for s in _timm_info("imagenet21k_goog_synsets.txt") if s]
    rows = goog[:21841]
    for row, extra in zip(_EMPTY_22K, goog[21841:]):
        rows[row] = extra
    return tuple(rows)


@functools.cache
def imagenet_22k_to_1k() -> tuple[int, ...]:
    """For each ImageNet-1K class, its row in the 22K classifier (Swin's ``map22kto1k.txt``): a ``head_map``."""
    rows = {s: i for i, s in enumerate(imagenet_22k_synsets())}
    ids = [s for s in _timm_info("imagenet_synsets.txt") if s]
    return tuple(rows[_TEDDY[1] if s == _TEDDY[0] else s] for s in ids)


@functools.cache
def _names(label_set: str) -> tuple[str, ...]:
    if label_set == "imagenet-1k":
        from torchvision.models import Swin_T_Weights
        return tuple(Swin_T_Weights.IMAGENET1K_V1.meta["categories"])
    if label_set == "kinetics-400":
        from torchvision.models.video import Swin3D_T_Weights
        return tuple(Swin3D_T_Weights.KINETICS400_V1.meta["categories"])
    if label_set == "imagenet-22k":
        lemmas = dict(line.split("\t", 1) for line in _timm_info("imagenet_synset_to_lemma.txt") if line)
        return tuple(lemmas[s] for s in imagenet_22k_synsets())
    file = {"kinetics-600": "kinetics600.txt", "something-something-v2": "something_something_v2.txt"}[label_set]
    data = pkgutil.get_data(__package__, f"data/{file}")
    assert data is not None
    return tuple(line for line in data.decode().splitlines() if line)


def class_names(label_set: str) -> list[str]:
    """The class names of ``label_set`` (one of ``LABEL_SETS``), or of the label set of pretrained weights
    ``name`` (e.g. ``"video_swin_t.ms_in1k_ft_k400"``), in classifier-row order."""
    if label_set not in LABEL_SETS:
        from .registry import get_pretrained
        try:
            entry = get_pretrained(label_set)
        except ValueError:
            raise ValueError(f"unknown label set {label_set!r}; known: {', '.join(LABEL_SETS)} "
                             "(or a pretrained name)") from None
        if entry.labels is None:
            raise ValueError(f"{entry.name} has no classifier (a pretraining checkpoint): no class names")
        label_set = entry.labels
    return list(_names(label_set))
