"""Our Swin reproduces timm, torchvision and official-format checkpoints number for number (float32)."""
import pytest
import timm
import torch
import torchvision
from timm.models.swin_transformer import checkpoint_filter_fn

from core import create_model, load_pretrained
from core.nn.position import relative_position_index
from helpers import randomize_

TOL = 1e-4


def max_diff(a, b, x):
    with torch.no_grad():
        ya, yb = a(x), b(x)
    assert ya.abs().mean() > 1e-2  # outputs are not degenerate
    return (ya - yb).abs().max().item()


@pytest.mark.parametrize("size", [(224, 224), (448, 224), (200, 152)])
def test_timm(size):
    ref = randomize_(timm.create_model("swin_tiny_patch4_window7_224", img_size=size)).eval()
    ours = create_model("swin_t", compat="timm").eval()
    report = load_pretrained(ours, ref.state_dict(), source_img_size=size)
    assert report.format == "ours" and not report.missing
    assert max_diff(ref, ours, torch.randn(2, 3, *size)) < TOL


@pytest.mark.parametrize("size", [(224, 224), (200, 152), (120, 180)])
def test_timm_dynamic_img_size(size):
    """timm built at 224 with dynamic_img_size=True keeps its windows at any input and rolls before padding."""
    ref = randomize_(timm.create_model("swin_tiny_patch4_window7_224", dynamic_img_size=True)).eval()
    ours = create_model("swin_t", compat="timm_dynamic").eval()
    load_pretrained(ours, ref.state_dict())
    assert max_diff(ref, ours, torch.randn(2, 3, *size)) < TOL
    # the other modes differ at a size not divisible by the window: timm_dynamic is needed there
    if size == (200, 152):
        other = create_model("swin_t", compat="timm").eval()
        load_pretrained(other, ref.state_dict())
        assert max_diff(ref, other, torch.randn(2, 3, *size)) > 1e-2


@pytest.mark.parametrize("size", [(224, 224), (448, 224), (200, 152)])
def test_torchvision(size):
    ref = randomize_(torchvision.models.swin_t()).eval()
    ours = create_model("swin_t", compat="torchvision").eval()
    assert load_pretrained(ours, ref.state_dict()).format == "torchvision"
    assert max_diff(ref, ours, torch.randn(2, 3, *size)) < TOL


def to_official(timm_sd, model):
    """An official microsoft/Swin-Transformer 'model' entry: merging at stage end, head.weight, index/mask buffers."""
    out = {}
    for k, v in timm_sd.items():
        parts = k.split(".")
        if k.startswith("layers.") and parts[2] == "downsample":
            k = ".".join(["layers", str(int(parts[1]) - 1)] + parts[2:])
        k = k.replace("head.fc.", "head.")
        out[k] = v
        if k.endswith("attn.relative_position_bias_table"):
            out[k.replace("relative_position_bias_table", "relative_position_index")] = relative_position_index((7, 7))
    return {"model": out, "epoch": 299}


@pytest.mark.parametrize("size", [(224, 224), (448, 224)])
def test_official_format_matches_timms_own_converter(size, tmp_path):
    """Official checkpoint -> ours (our converter) and -> timm (timm's checkpoint_filter_fn) agree."""
    src = randomize_(timm.create_model("swin_tiny_patch4_window7_224", img_size=size))
    ckpt = to_official(src.state_dict(), src)
    assert "layers.0.downsample.reduction.weight" in ckpt["model"] and "head.weight" in ckpt["model"]
    torch.save(ckpt, tmp_path / "swin_tiny_official.pth")
    ref = timm.create_model("swin_tiny_patch4_window7_224", img_size=size).eval()
    ref.load_state_dict(checkpoint_filter_fn(ckpt["model"], ref), strict=False)
    ours = create_model("swin_t").eval()
    assert load_pretrained(ours, tmp_path / "swin_tiny_official.pth").format == "official"
    assert max_diff(ref, ours, torch.randn(2, 3, *size)) < TOL


def test_all_three_agree_at_divisible_sizes():
    """In the default (official) mode, torchvision weights give torchvision's outputs at 448x224."""
    ref = randomize_(torchvision.models.swin_t()).eval()
    ours = create_model("swin_t").eval()
    load_pretrained(ours, ref.state_dict())
    assert max_diff(ref, ours, torch.randn(1, 3, 448, 224)) < TOL


def test_references_disagree_at_odd_sizes():
    """At 200x152 the three behaviours differ, which is why compat exists."""
    ref = randomize_(torchvision.models.swin_t()).eval()
    official, tv = create_model("swin_t").eval(), create_model("swin_t", compat="torchvision").eval()
    load_pretrained(official, ref.state_dict())
    load_pretrained(tv, ref.state_dict())
    assert max_diff(official, tv, torch.randn(1, 3, 200, 152)) > 1e-3
