"""Swin V2 (swin_v2/): equivalence with timm and torchvision (random weights, float32), the official checkpoint
format, a window-8 checkpoint in a window-16 model, 3D and inflation, FLOPs/params, recipes."""
from __future__ import annotations

import json
import math

import pytest
import timm
import torch
import torchvision
from timm.models.swin_transformer_v2 import checkpoint_filter_fn

import core
from core import load_pretrained
from core.nn.flops import count_macs, report
from helpers import CONFIGS, randomize_
from swin_v2 import ContinuousPositionBias, log_spaced_coords

torch.set_num_threads(min(2, torch.get_num_threads()))
TOL = 1e-4
SHORT = dict(depths=(2, 2, 2, 2))  # stage 3 of swin_v2_t shortened, for time, where the size varies


def randomize_v2_(model: torch.nn.Module) -> torch.nn.Module:
    """randomize_, and logit scales spread on both sides of the clamp at log(100), so the clamp is exercised."""
    randomize_(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                p.copy_(torch.linspace(0.5, 5.5, p.numel()).view_as(p))
    return model.eval()


def max_diff(ref, ours, size, batch=2):
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape and want.abs().mean() > 1e-2  # not degenerate
    return (got - want).abs().max().item()


# ------------------------------------------------------------------------------------------- equivalence
@pytest.mark.parametrize("size,kw,impl", [((256, 256), {}, "sdpa"), ((200, 152), SHORT, "math")])
def test_timm(size, kw, impl):
    # 200x152 -> 50x38, 25x19, 13x10, 7x5: padding, odd merges, stage 4 shrinks its window to 7x5
    ref = randomize_v2_(timm.create_model("swinv2_tiny_window8_256", img_size=size, **kw))
    ours = core.create_model("swin_v2_t", compat="timm", attn_impl=impl, **kw).eval()
    rep = load_pretrained(ours, ref.state_dict())
    assert rep.format == "ours" and not rep.resized
    assert max_diff(ref, ours, size) < TOL


@pytest.mark.parametrize("size", [(256, 256), (230, 198)])
def test_torchvision(size):
    ref = randomize_v2_(torchvision.models.swin_v2_t())
    assert ref.features[1][0].attn.qkv.bias.abs().sum() > 0  # torchvision zeroes the k third at each forward
    ours = core.create_model("swin_v2_t", compat="torchvision").eval()
    assert load_pretrained(ours, ref.state_dict()).format == "torchvision"
    assert max_diff(ref, ours, size) < TOL


def to_official(timm_sd):
    """An official microsoft/Swin-Transformer V2 'model' entry: merging at stage end, head.weight, derived buffers."""
    out = {}
    for k, v in timm_sd.items():
        parts = k.split(".")
        if k.startswith("layers.") and parts[2] == "downsample":
            k = ".".join(["layers", str(int(parts[1]) - 1)] + parts[2:])
        out[k.replace("head.fc.", "head.")] = v
        if k.endswith("attn.logit_scale"):
            out[k.replace("logit_scale", "relative_coords_table")] = torch.zeros(1, 15, 15, 2)
            out[k.replace("logit_scale", "relative_position_index")] = torch.zeros(64, 64, dtype=torch.long)
    return {"model": out, "epoch": 299}


def test_official_format_matches_timms_own_converter(tmp_path):
    src = randomize_v2_(timm.create_model("swinv2_tiny_window8_256"))
    ckpt = to_official(src.state_dict())
    assert "layers.0.downsample.norm.weight" in ckpt["model"] and "head.weight" in ckpt["model"]
    assert tuple(ckpt["model"]["layers.0.downsample.norm.weight"].shape) == (192,)  # V2: norm after reduction
    torch.save(ckpt, tmp_path / "swinv2_tiny_patch4_window8_256.pth")
    ref = timm.create_model("swinv2_tiny_window8_256").eval()
    ref.load_state_dict(checkpoint_filter_fn(ckpt, ref))
    ours = core.create_model("swin_v2_t").eval()
    assert load_pretrained(ours, tmp_path / "swinv2_tiny_patch4_window8_256.pth").format == "official"
    assert max_diff(ref, ours, (256, 256), batch=1) < TOL
    assert core.load_pretrained(ours, ckpt).format == "official"  # core alone places timm/official V2 keys


@pytest.mark.parametrize("pretrained", [8, 0])
def test_window8_checkpoint_in_window16_model(pretrained):
    """No table to resize: the same weights, the bias MLP evaluated on the 16-window's offsets."""
    sd = randomize_v2_(timm.create_model("swinv2_tiny_window8_256", **SHORT)).state_dict()
    ref = timm.create_model("swinv2_tiny_window16_256", pretrained_window_sizes=(pretrained,) * 4, **SHORT).eval()
    ref.load_state_dict(sd)
    ours = core.create_model("swin_v2_t_w16", pretrained_window_size=pretrained, compat="timm", **SHORT).eval()
    rep = load_pretrained(ours, sd)
    assert not rep.resized and not rep.missing and not rep.mismatched
    assert ours.layers[0].blocks[0].attn.cpb_mlp.bias((16, 16)).shape == (3, 256, 256)
    assert max_diff(ref, ours, (256, 256), batch=1) < TOL


def test_per_stage_pretrained_windows_match_timm():
    """timm's window12to16 layout: pretrained_window_sizes (12, 12, 12, 6), at 256 (stage 4 shrinks to 8)."""
    kw = dict(embed_dim=32, depths=(1, 1, 1, 2), num_heads=(1, 2, 4, 8))
    ref = randomize_v2_(timm.create_model("swinv2_base_window12to16_192to256", **kw))
    ours = core.create_model("swin_v2_b_w16", pretrained_window_sizes=(12, 12, 12, 6), compat="timm", **kw).eval()
    load_pretrained(ours, ref.state_dict())
    assert max_diff(ref, ours, (256, 256), batch=1) < TOL
    with pytest.raises(ValueError, match="one entry per stage"):
        core.create_model("swin_v2_t", pretrained_window_sizes=(8, 8))


# ------------------------------------------------------------------------------------------- the bias
def test_log_spaced_coords_and_bias_range():
    c = log_spaced_coords((8, 8), (8, 8)).view(15, 15, 2)
    assert torch.equal(c[7, 7], torch.zeros(2))  # offset 0
    assert c[14, 7, 0].item() == pytest.approx(math.log2(9) / 3)  # offset +7 of 8 -> 8 -> log2(9)/3
    assert c[0, 7, 0].item() == pytest.approx(-math.log2(9) / 3)
    assert c[8, 7, 0].item() == pytest.approx(math.log2(8 / 7 + 1) / 3)
    # pretrained window 8 in a window 16: offsets keep their 8-window values, the new ones extrapolate
    assert torch.allclose(log_spaced_coords((16, 16), (8, 8)).view(31, 31, 2)[8:23, 8:23], c)
    bias = ContinuousPositionBias(2, 4).bias((5, 3))
    assert bias.shape == (4, 15, 15) and 0 < bias.min() and bias.max() < 16


def test_3d_bias_of_inflated_mlp_ignores_time():
    cpb2 = randomize_(ContinuousPositionBias(2, 3))
    cpb3 = ContinuousPositionBias(3, 3, pretrained_window_size=(2, 8, 8))
    sd = {k: torch.cat([torch.zeros(512, 1), v], 1) if k == "0.weight" else v for k, v in cpb2.state_dict().items()}
    cpb3.load_state_dict(sd)
    b2 = cpb2.bias((8, 8)).view(3, 8, 8, 8, 8)[:, :7, :7, :7, :7].reshape(3, 49, 49)
    b3 = cpb3.bias((2, 7, 7)).view(3, 2, 49, 2, 49)  # a 7x7 spatial window, offsets scaled as the 8-window's
    for t0 in range(2):
        for t1 in range(2):
            torch.testing.assert_close(b3[:, t0, :, t1], b2)


# ------------------------------------------------------------------------------------------- 3D
def test_video_swin_v2_forward_backward():
    model = core.create_model("video_swin_v2_t", num_classes=5, embed_dim=32, depths=(2, 2), num_heads=(2, 4)).train()
    assert model.window_size == (8, 7, 7) and model.patch_size == (2, 4, 4)
    out = model(torch.randn(1, 3, 8, 56, 60))  # 4x14x15 tokens: T shorter than the window, H/W padded
    assert out.shape == (1, 5)
    out.square().mean().backward()
    assert model.layers[0].blocks[1].attn.cpb_mlp[0].weight.grad[:, 0].abs().sum() > 0  # the time offset
    assert {"layers.0.blocks.0.attn.cpb_mlp.0.weight", "layers.0.blocks.0.attn.logit_scale"} <= model.no_weight_decay()


def test_inflated_model_on_repeated_frames_gives_2d_features():
    kw = dict(embed_dim=32, depths=(2, 2), num_heads=(2, 4), num_classes=3)
    m2 = randomize_v2_(core.create_model("swin_v2_t", window_size=4, **kw))
    m3 = core.create_model("video_swin_v2_t", window_size=(2, 4, 4), **kw).eval()
    rep = load_pretrained(m3, m2.state_dict(), inflate=True)
    assert rep.inflated and not rep.resized and tuple(m3.layers[0].blocks[0].attn.cpb_mlp[0].weight.shape) == (512, 3)
    x = torch.randn(2, 3, 40, 52)
    with torch.no_grad():
        f2 = m2.forward_features(x).mean((1, 2))
        f3 = m3.forward_features(x.unsqueeze(2).expand(-1, -1, 8, -1, -1)).mean((1, 2, 3))
    torch.testing.assert_close(f3, f2, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------------------------------- FLOPs and params
def test_swin_v2_t_matches_the_paper():
    r = report("swin_v2_t", (1, 3, 256, 256))
    assert round(r["mparams"], 1) == 28.3 and round(r["gmacs"], 1) == 5.9  # 28.35 M, 5.94 G


@pytest.mark.parametrize("name,timm_name", [("swin_v2_t", "swinv2_tiny_window8_256"),
                                            ("swin_v2_b_w16", "swinv2_base_window16_256")])
def test_flops_and_params_match_timm(name, timm_name):
    with torch.device("meta"):
        ref = timm.create_model(timm_name).eval()
    x = torch.zeros(1, 3, 256, 256, device="meta")
    macs, _ = count_macs(ref, [x])
    r = report(name, (1, 3, 256, 256))
    assert r["mparams"] * 1e6 == sum(p.numel() for p in ref.parameters())
    assert r["gmacs"] == pytest.approx(macs / 1e9, rel=1e-3)


# ------------------------------------------------------------------------------------------- recipes
def test_digits_recipe_smoke(tmp_path):
    from cli.train import main_image as main
    rc = main(["--config", str(CONFIGS / "swin_v2" / "tiny_digits.yaml"), "--output-dir", str(tmp_path),
               "--opt", "train.epochs=1", "sched.warmup_epochs=0", "train.max_iters_per_epoch=2",
               "train.progress=false", "train.tensorboard=false"])
    assert rc == 0
    res = json.load(open(tmp_path / "results.json"))
    assert res["model"] == "swin_v2_t" and res["params"] < 500_000 and "top1" in res["final"]
