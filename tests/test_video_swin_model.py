"""Video Swin: torchvision swin3d and official (mmaction2) equivalence, shrinking windows, 2D -> 3D inflation."""
import re

import pytest
import timm
import torch
from torchvision.models.video import swin3d_t
from torchvision.models.video.swin_transformer import SwinTransformer3d

from core import create_model, load_pretrained
from core.nn.position import relative_position_index
from helpers import randomize_

TOL = 1e-4
SMALL = dict(embed_dim=24, depths=(2, 2, 2, 2), num_heads=(1, 2, 3, 4))


def small_torchvision():
    return randomize_(SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=24, depths=[2, 2, 2, 2], num_heads=[1, 2, 3, 4],
                                        window_size=[8, 7, 7], num_classes=400)).eval()


def compare(ref, ours, shape):
    x = torch.randn(1, 3, *shape)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert a.abs().mean() > 1e-2
    return (a - b).abs().max().item()


@pytest.mark.parametrize("shape", [(16, 224, 224), (10, 256, 232)])
def test_torchvision_swin3d(shape):
    """torchvision's swin3d layout (its smaller widths: the code path is the same as swin3d_t)."""
    ref = small_torchvision()
    ours = create_model("video_swin_t", compat="torchvision", **SMALL).eval()
    assert load_pretrained(ours, ref.state_dict()).format == "torchvision"
    assert compare(ref, ours, shape) < TOL


def test_torchvision_swin3d_t_keys_load():
    ours = create_model("video_swin_t")
    report = load_pretrained(ours, swin3d_t().state_dict())
    assert report.format == "torchvision" and not report.missing and not report.unexpected


def to_mmaction2(tv_sd):
    """The official Video-Swin-Transformer checkpoint layout, from torchvision's (independently written) keys."""
    out = {}
    for k, v in tv_sd.items():
        m = re.match(r"features\.(\d+)\.(.*)", k)
        if m:
            idx, rest = int(m.group(1)), m.group(2)
            if idx % 2 == 0:
                rest = rest.replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
                k = f"backbone.layers.{idx // 2}.blocks.{rest}"
            else:
                k = f"backbone.layers.{idx // 2}.downsample.{rest}"
        elif k.startswith("head."):
            k = "cls_head.fc_cls." + k[len("head."):]
        elif not k.endswith("relative_position_index"):
            k = "backbone." + k
        out[k] = v
    return {"meta": {"epoch": 30}, "state_dict": out}


@pytest.mark.parametrize("shape", [(16, 224, 224), (10, 256, 232)])
def test_official_video_format(shape, tmp_path):
    ref = small_torchvision()
    ckpt = to_mmaction2(ref.state_dict())
    assert "backbone.layers.0.downsample.reduction.weight" in ckpt["state_dict"]
    assert "cls_head.fc_cls.weight" in ckpt["state_dict"]
    torch.save(ckpt, tmp_path / "swin_tiny_k400.pth")
    ours = create_model("video_swin_t", **SMALL).eval()
    assert load_pretrained(ours, tmp_path / "swin_tiny_k400.pth").format == "official_video"
    assert compare(ref, ours, shape) < TOL


def test_window_shrinks_correctly_on_every_axis():
    """A clip small in H (not T): ours looks up true offsets; the [:N, :N] slice would not."""
    model = create_model("video_swin_t", **SMALL).eval()
    attn = model.layers[3].blocks[0].attn
    x = torch.randn(1, 3, 16, 160, 96)  # stage 4: 8 x 5 x 3 tokens -> window (8, 5, 3)
    with torch.no_grad():
        feats = model.forward_stages(x)
    assert feats[3].shape[1:4] == (8, 5, 3)
    bias = attn.relative_position_bias((8, 5, 3))
    coords = torch.stack(torch.meshgrid(torch.arange(8), torch.arange(5), torch.arange(3), indexing="ij")).flatten(1)
    rel = coords[:, :, None] - coords[:, None, :]
    direct = ((rel[0] + 7) * 13 + rel[1] + 6) * 13 + rel[2] + 6
    assert torch.equal(bias, attn.relative_position_bias_table[direct].permute(2, 0, 1))
    n = 8 * 5 * 3
    sliced = attn.relative_position_bias_table[relative_position_index((8, 7, 7))[:n, :n]].permute(2, 0, 1)
    assert not torch.allclose(bias, sliced)


def test_any_clip_size_runs():
    model = create_model("video_swin_t", **SMALL).eval()
    for shape in [(1, 3, 3, 17, 23), (2, 3, 9, 64, 40)]:
        with torch.no_grad():
            assert model(torch.randn(shape)).shape == (shape[0], 400)
    assert model.forward_features(torch.randn(1, 3, 16, 64, 64)).shape == (1, 8, 2, 2, 192)
    with pytest.raises(ValueError, match=r"expected a 5-d input \(B, 3, T, H, W\)"):
        model(torch.randn(1, 3, 64, 64))


TINY_2D = dict(embed_dim=24, depths=(2, 2), num_heads=(2, 4), window_size=7)


def _image_and_clip():
    image = torch.randn(1, 3, 112, 112)
    return image, image[:, :, None].repeat(1, 1, 16, 1, 1)  # T=16 -> 8 temporal tokens = one window, no padding


@pytest.mark.parametrize("source", ["ours", "timm", "official"])
def test_inflation_repeats_the_image_model(source):
    """An inflated model on a clip of one repeated image gives the 2D model's pooled features."""
    model_2d = randomize_(create_model("swin_t", num_classes=10, **TINY_2D)).eval()
    sd = model_2d.state_dict()
    if source == "timm":
        ref = timm.models.swin_transformer.SwinTransformer(img_size=112, num_classes=10, embed_dim=24, depths=(2, 2),
                                                           num_heads=(2, 4), window_size=7)
        ref.load_state_dict(sd, strict=False)
        sd = ref.state_dict()
    elif source == "official":
        sd = {"model": {re.sub(r"layers\.1\.downsample", "layers.0.downsample", k).replace("head.fc.", "head."): v
                        for k, v in sd.items()}}
    model_3d = create_model("video_swin_t", **TINY_2D | {"window_size": (8, 7, 7)}).eval()
    report = load_pretrained(model_3d, sd, inflate=True)
    assert not report.missing and not report.unexpected
    image, clip = _image_and_clip()
    with torch.no_grad():
        f2 = model_2d.forward_head(model_2d.forward_features(image), pre_logits=True)
        f3 = model_3d.forward_head(model_3d.forward_features(clip), pre_logits=True)
    assert f2.abs().mean() > 1e-2
    assert (f2 - f3).abs().max() < 1e-4


def test_inflation_resizes_a_different_window():
    model_2d = create_model("swin_t", **TINY_2D | {"window_size": 12})
    model_3d = create_model("video_swin_t", **TINY_2D | {"window_size": (8, 7, 7)})
    load_pretrained(model_3d, model_2d.state_dict(), inflate=True)
    table = model_3d.layers[0].blocks[0].attn.relative_position_bias_table
    assert table.shape == (15 * 13 * 13, 2)
    # repeated along the temporal offsets
    assert torch.equal(table.view(15, 169, 2)[0], table.view(15, 169, 2)[14])
