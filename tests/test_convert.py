"""load_pretrained beyond equivalence: head maps of any array type, hints that name the fix, pretraining layouts."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from core import create_model, load_pretrained
from helpers import TINY_MODEL


def _tiny(**kw):
    return create_model("swin_t", **{**TINY_MODEL, **kw})


@pytest.mark.parametrize("as_type", [list, torch.tensor, np.array])
def test_head_map_as_list_tensor_or_array(as_type):
    src = _tiny(num_classes=7)
    dst = _tiny(num_classes=3)
    rows = [6, 0, 2]
    report = load_pretrained(dst, src.state_dict(), head_map=as_type(rows))
    assert not report.new_head
    assert torch.equal(dst.head.fc.weight, src.head.fc.weight[rows]) and torch.equal(dst.head.fc.bias,
                                                                                     src.head.fc.bias[rows])


def test_2d_checkpoint_into_a_video_model_names_inflation():
    video = create_model("video_swin_t", embed_dim=24, depths=(2, 2), num_heads=(2, 4), window_size=(2, 4, 4))
    with pytest.raises(ValueError, match=r"is for a 2D model, SwinTransformer is 3D .*This is a 2D checkpoint: "
                                         r"inflate it .*inflate: true.*inflate=True"):
        load_pretrained(video, _tiny().state_dict())


def test_bias_table_mismatch_suggests_source_img_size():
    src = _tiny(window_size=3)  # e.g. a timm model built for a small input: 5x5 tables
    sd = {k: v for k, v in src.state_dict().items()}
    sd["layers.0.blocks.0.attn.relative_position_bias_table"] = torch.zeros(4, 2)  # not a square window's table
    with pytest.raises(ValueError, match=r"pass source_img_size=\(H, W\)"):
        load_pretrained(_tiny(), sd)


@pytest.mark.parametrize("method", ["moby", "simmim"])
def test_official_pretraining_layouts_give_the_online_encoder_and_a_fresh_head(method):
    enc = _tiny(num_classes=0)
    sd = {f"encoder.{k}": v for k, v in enc.state_dict().items()}
    if method == "moby":  # Transformer-SSL: momentum encoder, projectors, predictor, queues
        sd.update({f"encoder_k.{k}": v + 1 for k, v in enc.state_dict().items()})
        sd.update({"projector.linear1.weight": torch.zeros(8, 48), "predictor.linear1.weight": torch.zeros(8, 8),
                   "queue1": torch.zeros(8, 4), "queue2": torch.zeros(8, 4), "queue_ptr": torch.zeros(1)})
    else:  # SimMIM: encoder with its mask token, a 1x1-conv decoder
        sd.update({"encoder.mask_token": torch.zeros(1, 1, 24), "decoder.0.weight": torch.zeros(3072, 48, 1, 1)})
    clf = _tiny(num_classes=10)
    head = clf.head.fc.weight.clone()
    report = load_pretrained(clf, {"model": sd})
    assert report.pretraining == method and report.new_head and torch.equal(clf.head.fc.weight, head)
    for k, v in enc.state_dict().items():
        assert torch.equal(clf.state_dict()[k], v), k  # the online encoder, not the momentum one


def test_the_head_hint_names_what_differs():
    """A head of another class count is named as such; a head of the same classes but another width (another size
    of model) is not called a class-count problem."""
    from core import create_model, load_pretrained
    small = dict(depths=(1, 1), num_heads=(1, 2), window_size=4)
    ten_a = create_model("swin_t", num_classes=10, embed_dim=16, **small)
    ten_b = create_model("swin_t", num_classes=10, embed_dim=24, **small)
    five = create_model("swin_t", num_classes=5, embed_dim=16, **small)
    with pytest.raises(ValueError) as e:
        load_pretrained(ten_b, ten_a.state_dict())
    assert "class count differs" not in str(e.value) and "head's input width differs" in str(e.value)
    with pytest.raises(ValueError, match=r"the class count differs: 10 in the checkpoint, 5 in the model"):
        load_pretrained(five, ten_a.state_dict())
