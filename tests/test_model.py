"""Attention forms, FLOPs against the paper, the public API, and clear errors."""
import subprocess
import sys

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from core import create_model, list_models, load_pretrained
from core.nn.attention import WindowAttention
from core.nn.flops import report, window_attention_macs
from core.nn.mask import shifted_window_mask
from core.nn.window import window_partition
from helpers import TINY_MODEL as TINY


@pytest.mark.parametrize("window,size", [((7, 7), (14, 14)), ((2, 4, 4), (4, 8, 8))])
def test_sdpa_and_explicit_attention_agree(window, size):
    attn = WindowAttention(32, 4, window).train()
    torch.nn.init.normal_(attn.relative_position_bias_table, std=1.0)
    x = torch.randn(2, *size, 32)
    windows = window_partition(x, window)
    mask = shifted_window_mask(size, window, tuple(w // 2 for w in window))
    outs, grads = [], []
    for impl in ("sdpa", "math"):
        attn.attn_impl = impl
        inp = windows.clone().requires_grad_(True)
        out = attn(inp, window, mask)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append((inp.grad, attn.relative_position_bias_table.grad.clone()))
        attn.zero_grad()
    assert (outs[0] - outs[1]).abs().max() < 1e-5
    assert (grads[0][0] - grads[1][0]).abs().max() < 1e-4
    assert (grads[0][1] - grads[1][1]).abs().max() < 1e-4


@pytest.mark.parametrize("h,w,C,M,heads", [(56, 56, 96, 7, 3), (28, 28, 192, 7, 6), (12, 12, 64, 12, 2)])
def test_window_attention_flops_match_the_paper(h, w, C, M, heads):
    """Omega(W-MSA) = 4hwC^2 + 2M^2hwC multiply-accumulates (the counter reports 2 FLOPs per MAC)."""
    attn = WindowAttention(C, heads, (M, M), attn_impl="math")
    windows = window_partition(torch.zeros(1, h, w, C), (M, M))
    with FlopCounterMode(display=False) as counter:
        attn(windows, (M, M), None)
    assert counter.get_total_flops() // 2 == window_attention_macs(h, w, C, M)


@pytest.mark.parametrize("name,gmacs,mparams", [
    ("swin_t", 4.49, 28.29), ("swin_s", 8.74, 49.61), ("swin_b", 15.43, 87.77), ("swin_b_384", 47.08, 87.90),
    ("video_swin_t", 88.0, 28.2)])  # Video Swin paper, Table 1: 88 G, 28.2 M at 32x224x224
def test_model_flops_and_params(name, gmacs, mparams):
    """The paper's 4.5/8.7/15.4/47.0 G and 28/50/88/88 M; PyTorch's counter on timm's models: 4.49/8.74/15.43/47.08."""
    r = report(name)
    assert r["gmacs"] == pytest.approx(gmacs, rel=0.01)
    assert r["mparams"] == pytest.approx(mparams, rel=0.01)


def test_grad_checkpointing_gives_the_same_gradients():
    model = create_model("swin_t", **TINY, drop_path_rate=0.0)
    x = torch.randn(2, 3, 40, 40)
    grads = []
    for ckpt in (False, True):
        model.set_grad_checkpointing(ckpt)
        model.zero_grad()
        model(x).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_multiscale_outputs_and_features():
    model = create_model("swin_t", num_classes=10).eval()
    with torch.no_grad():
        outs = model.forward_multiscale(torch.randn(1, 3, 224, 160))
        feats = model.forward_features(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 96, 56, 40), (1, 192, 28, 20), (1, 384, 14, 10), (1, 768, 7, 5)]
    assert feats.shape == (1, 7, 7, 768)


def test_any_input_size_runs():
    model = create_model("swin_t", **TINY).eval()
    for hw in [(33, 17), (5, 9), (64, 64)]:
        with torch.no_grad():
            assert model(torch.randn(1, 3, *hw)).shape == (1, 5)


@pytest.mark.parametrize("shape,match", [
    ((3, 32, 32), r"expected a 4-d input \(B, 3, H, W\), got shape \(3, 32, 32\)"),
    ((1, 1, 32, 32), r"expected 3 input channels \(B, 3, H, W\)"),
    ((1, 3, 0, 32), r"expected positive sizes"),
])
def test_bad_inputs_fail_with_the_expectation(shape, match):
    with pytest.raises(ValueError, match=match):
        create_model("swin_t", **TINY)(torch.zeros(shape))


def test_bad_config_values_name_the_field():
    with pytest.raises(ValueError, match="window_size must have 2 entries"):
        create_model("swin_t", window_size=(7, 7, 7))
    with pytest.raises(ValueError, match=r"dim \(96\) must be divisible by num_heads \(5\)"):
        create_model("swin_t", num_heads=(5, 6, 12, 24))
    with pytest.raises(ValueError, match="compat must be one of"):
        create_model("swin_t", compat="mmdet")
    with pytest.raises(ValueError, match=r"window_size must be positive integers, got \(0, 0\)"):
        create_model("swin_t", window_size=0)
    with pytest.raises(ValueError, match=r"depths must be positive integers, got \(2, 0, 6, 2\)"):
        create_model("swin_t", depths=(2, 0, 6, 2))
    with pytest.raises(ValueError, match="unknown model 'swin_q'"):
        create_model("swin_q")


def test_checkpoint_that_does_not_fit_lists_the_keys(tmp_path):
    src = create_model("swin_t", **TINY)
    sd = src.state_dict()
    sd.pop("layers.0.blocks.0.norm1.weight")
    sd["layers.0.blocks.0.extra"] = torch.zeros(1)
    torch.save({"model": sd}, tmp_path / "bad.pth")
    other = create_model("swin_t", **TINY | {"num_classes": 7})
    with pytest.raises(ValueError) as e:
        load_pretrained(other, tmp_path / "bad.pth")
    msg = str(e.value)
    assert "missing keys: layers.0.blocks.0.norm1.weight" in msg
    assert "unexpected keys: layers.0.blocks.0.extra" in msg
    assert "head.fc.weight: checkpoint (5, 48) vs model (7, 48)" in msg and "reset_head=True" in msg


def test_head_reset_and_map_and_table_resize():
    src = create_model("swin_t", **TINY)
    dst = create_model("swin_t", **TINY | {"num_classes": 3, "window_size": 6})
    report = load_pretrained(dst, src.state_dict(), head_map=[4, 0, 2])
    assert torch.equal(dst.head.fc.weight, src.head.fc.weight[[4, 0, 2]])
    assert "layers.0.blocks.0.attn.relative_position_bias_table" in report.resized
    assert dst.layers[0].blocks[0].attn.relative_position_bias_table.shape == (121, 2)
    fresh = create_model("swin_t", **TINY | {"num_classes": 3})
    before = fresh.head.fc.weight.clone()
    load_pretrained(fresh, src.state_dict(), reset_head=True)
    assert torch.equal(fresh.head.fc.weight, before)
    assert torch.equal(fresh.layers[1].downsample.reduction.weight, src.layers[1].downsample.reduction.weight)


def test_registry_is_lazy_and_complete():
    code = ("import sys, core; assert 'video_swin' not in sys.modules and 'swin_mlp' not in sys.modules; "
            "core.create_model('video_swin_t', embed_dim=16, depths=(1,), num_heads=(1,)); "
            "assert 'video_swin' in sys.modules and 'swin_mlp' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    names = list_models()
    for n in ["swin_t", "swin_s", "swin_b", "swin_l", "swin_b_384", "swin_l_384", "video_swin_t", "video_swin_l",
              "swin_mlp_t_c24", "video_swin_mlp_t"]:
        assert n in names


def test_layer_decay_groups_follow_simmim():
    model = create_model("swin_t")
    assert model.num_layers_for_lr_decay == 14
    assert model.group_id("patch_embed.proj.weight") == 0
    assert model.group_id("layers.0.blocks.1.attn.qkv.weight") == 2
    assert model.group_id("layers.1.downsample.reduction.weight") == 2  # with the last block before it
    assert model.group_id("layers.3.blocks.1.mlp.fc2.bias") == 12
    assert model.group_id("head.fc.weight") == 13


def test_a_headless_model_never_drops_its_features():
    """head_drop_rate belongs to the classifier: a headless model (num_classes=0, e.g. MoBY's backbones) returns
    the same pooled features in training mode; a classifier added later gets the dropout back."""
    from core.nn.model import SwinTransformer
    torch.manual_seed(0)
    m = SwinTransformer(ndim=3, patch_size=(2, 4, 4), window_size=(2, 2, 2), embed_dim=16, depths=(1, 1),
                        num_heads=(1, 2), num_classes=0, drop_path_rate=0.0, head_drop_rate=0.5).train()
    x = torch.randn(2, 3, 4, 16, 16)
    torch.testing.assert_close(m(x), m(x), rtol=0, atol=0)
    m.reset_classifier(3)
    assert isinstance(m.head.drop, torch.nn.Dropout) and m.head.drop.p == 0.5


def test_head_time_bins_fails_fast_where_it_cannot_pool_time():
    with pytest.raises(ValueError, match=r"head_time_bins pools the time axis of video models \(ndim=3\); got 4"):
        create_model("swin_t", head_time_bins=4)
    with pytest.raises(ValueError, match="head_time_bins must be a positive integer, got 0"):
        create_model("video_swin_t", head_time_bins=0)
    video = create_model("video_swin_t", embed_dim=16, depths=(1,), num_heads=(1,), num_classes=2, head_time_bins=3)
    with pytest.raises(ValueError, match=r"head_time_bins=3 pools the time axis of \(B, T, H, W, C\)"):
        video.head(torch.randn(2, 4, 4, 16))
