"""Swin-MLP: equivalence with an independent reimplementation of the official model, 3D, FLOPs, bad input.

The reference below (``Ref*``) is written from the paper and the official code's documented behaviour, in the
official layout and key names (tokens as (B, L, C), ``layers.i.downsample`` at the END of stage i, ``head``,
``spatial_mlp`` a grouped kernel-1 Conv1d). It imports nothing from swin_mlp/ and nothing from core/.
Its window/shift rule per block:
  official=True:  the official classifier's: built for one input size; if min(H, W) <= window the block uses
                  window min(H, W) and no shift (its spatial_mlp is then smaller);
  official=False: the padding rule of our models at any size: the window never shrinks; the map is padded at
                  its bottom/right to a window multiple, and then, along each axis larger than the window, a
                  shifted block pads (window - shift) before and shift after. Odd maps are padded before merging.
At 256x256 with window 8 both rules give the same model (stage 4 is 8x8: window 8, shift 0).
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import core
from core.convert import load_pretrained
from swin_mlp import SwinMLPBlock, spatial_mlp_macs

torch.set_num_threads(min(2, torch.get_num_threads()))


# ------------------------------------------------------------------------------------------- the reference
class RefMlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RefSwinMLPBlock(nn.Module):
    def __init__(self, dim, resolution, num_heads, window, shift, official):
        super().__init__()
        self.dim, self.resolution, self.num_heads = dim, resolution, num_heads
        if official and min(resolution) <= window:
            window, shift = min(resolution), 0
        self.window, self.shift = window, shift
        self.norm1 = nn.LayerNorm(dim)
        tokens = num_heads * window * window
        self.spatial_mlp = nn.Conv1d(tokens, tokens, kernel_size=1, groups=num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = RefMlp(dim, 4 * dim)

    def forward(self, x):
        H, W = self.resolution
        B, L, C = x.shape
        M, nH = self.window, self.num_heads
        assert L == H * W, "input feature has wrong size"
        shortcut = x
        x = self.norm1(x).view(B, H, W, C)
        x = F.pad(x, [0, 0, 0, (M - W % M) % M, 0, (M - H % M) % M])     # to window multiples (no-op officially)
        s_h = self.shift if H > M else 0
        s_w = self.shift if W > M else 0
        P_l, P_r, P_t, P_b = (M - s_w if s_w else 0), s_w, (M - s_h if s_h else 0), s_h
        x = F.pad(x, [0, 0, P_l, P_r, P_t, P_b])
        _, Hp, Wp, _ = x.shape
        win = x.view(B, Hp // M, M, Wp // M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, M * M, C)
        win = win.view(-1, M * M, nH, C // nH).transpose(1, 2).reshape(-1, nH * M * M, C // nH)
        win = self.spatial_mlp(win)
        win = win.view(-1, nH, M * M, C // nH).transpose(1, 2).reshape(-1, M * M, C)
        x = win.view(B, Hp // M, Wp // M, M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(B, Hp, Wp, C)
        x = x[:, P_t:P_t + H, P_l:P_l + W, :].reshape(B, H * W, C)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class RefPatchMerging(nn.Module):
    def __init__(self, resolution, dim):
        super().__init__()
        self.resolution = resolution
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)

    def forward(self, x):
        H, W = self.resolution
        B, L, C = x.shape
        x = F.pad(x.view(B, H, W, C), [0, 0, 0, W % 2, 0, H % 2])
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], -1)
        return self.reduction(self.norm(x.view(B, -1, 4 * C)))


class RefBasicLayer(nn.Module):
    def __init__(self, dim, resolution, depth, num_heads, window, downsample, official):
        super().__init__()
        self.blocks = nn.ModuleList([
            RefSwinMLPBlock(dim, resolution, num_heads, window, 0 if i % 2 == 0 else window // 2, official)
            for i in range(depth)])
        self.downsample = RefPatchMerging(resolution, dim) if downsample else None

    def forward(self, x):
        for blk in self.blocks:
            x = blk(x)
        return self.downsample(x) if self.downsample is not None else x


class RefPatchEmbed(nn.Module):
    def __init__(self, img_size, patch, in_chans, dim):
        super().__init__()
        self.img_size = img_size
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        assert tuple(x.shape[2:]) == tuple(self.img_size), "input image size doesn't match model"
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class RefSwinMLP(nn.Module):
    def __init__(self, img_size, num_classes, embed_dim, depths, num_heads, window, official=True):
        super().__init__()
        self.patch_embed = RefPatchEmbed(img_size, 4, 3, embed_dim)
        res = [img_size[0] // 4, img_size[1] // 4]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            self.layers.append(RefBasicLayer(embed_dim * 2 ** i, tuple(res), depth, num_heads[i], window,
                                             i < len(depths) - 1, official))
            res = [math.ceil(r / 2) for r in res]
        self.norm = nn.LayerNorm(embed_dim * 2 ** (len(depths) - 1))
        self.avgpool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(embed_dim * 2 ** (len(depths) - 1), num_classes)

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        x = self.avgpool(self.norm(x).transpose(1, 2)).flatten(1)
        return self.head(x)


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random weights everywhere (LayerNorm affine too); spatial MLPs strong enough that mixing matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=g))
            elif "spatial_mlp.weight" in name:
                p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(p.shape[1]))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    return model.eval()


TINY_C24 = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(4, 8, 16, 32), window=8)


def _compare(name, ref, size, batch=1, **kwargs):
    ours = core.create_model(name, num_classes=ref.head.out_features, **kwargs).eval()
    report = load_pretrained(ours, ref.state_dict())  # strict: every key placed
    assert report.format == "official"
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == want.shape
    assert want.abs().max() > 0.1  # not a degenerate comparison
    err = (got - want).abs().max().item()
    assert err < 1e-4, f"{name} at {size}: max abs logit diff {err}"
    return ours


# ------------------------------------------------------------------------------------------- equivalence
def test_official_c24_equivalence_256():
    ref = randomize(RefSwinMLP((256, 256), 10, official=True, **TINY_C24))
    sd = ref.state_dict()
    assert len(sd) == 137 and "layers.0.downsample.reduction.weight" in sd and "head.weight" in sd
    assert tuple(sd["layers.0.blocks.1.spatial_mlp.weight"].shape) == (256, 64, 1)
    assert tuple(sd["layers.3.blocks.1.spatial_mlp.weight"].shape) == (2048, 64, 1)
    assert ref.layers[3].blocks[1].shift == 0 and ref.layers[3].blocks[1].window == 8
    _compare("swin_mlp_t_c24", ref, (256, 256))


def test_padding_rule_equivalence_non_divisible():
    # 200x168 -> 50x42, 25x21, 13x11, 7x6: every stage needs padding, odd merges, stage 4 drops its shift
    cfg = dict(TINY_C24, depths=(2, 2, 2, 2))  # fewer stage-3 blocks, for time
    ref = randomize(RefSwinMLP((200, 168), 10, official=False, **cfg), seed=3)
    _compare("swin_mlp_t_c24", ref, (200, 168), depths=(2, 2, 2, 2))


def test_odd_window_equivalence_base_layout():
    # the base model's window 7 (shift 3: padding 4 before, 3 after), on fewer/narrower blocks for speed
    cfg = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(4, 8, 16, 32), window=7)
    ref = randomize(RefSwinMLP((224, 224), 10, official=True, **cfg), seed=4)
    _compare("swin_mlp_b", ref, (224, 224), embed_dim=32, depths=(2, 2, 2, 2))
    ref = randomize(RefSwinMLP((100, 132), 10, official=False, **cfg), seed=5)
    _compare("swin_mlp_b", ref, (100, 132), embed_dim=32, depths=(2, 2, 2, 2))


def test_shrunk_window_checkpoint_is_embedded():
    # the official classifier at 128x128, window 8: stage 4 is 4x4 and gets a 4x4 window (16-token MLP)
    cfg = dict(TINY_C24, depths=(2, 2, 2, 2))
    ref = randomize(RefSwinMLP((128, 128), 10, official=True, **cfg), seed=6)
    assert tuple(ref.state_dict()["layers.3.blocks.0.spatial_mlp.weight"].shape) == (32 * 16, 16, 1)
    ours = core.create_model("swin_mlp_t_c24", num_classes=10, depths=(2, 2, 2, 2)).eval()
    report = load_pretrained(ours, {"model": ref.state_dict()})  # the family's registered converter embeds it
    assert report.format == "official" and len(report.resized) == 2
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert (ours(x) - ref(x)).abs().max() < 1e-4


def test_variants_match_official_sizes():
    # official: C24 20,386,632 params / 137 entries (VERIFIED in facts); README: C12 21M, C6 23M, B 61M
    expect = {"swin_mlp_t_c24": (20.38, 20.39), "swin_mlp_t_c12": (20.5, 21.5), "swin_mlp_t_c6": (22.5, 23.5),
              "swin_mlp_b": (60.5, 61.5)}
    for name, (lo, hi) in expect.items():
        with torch.device("meta"):
            m = core.create_model(name)
        n = sum(p.numel() for p in m.parameters())
        assert lo <= n / 1e6 <= hi, (name, n)
        if name == "swin_mlp_t_c24":
            assert n == 20_386_632 and len(m.state_dict()) == 137
    assert {"swin_mlp_t_c24", "swin_mlp_t_c12", "swin_mlp_t_c6", "swin_mlp_b", "video_swin_mlp_t"} <= \
        set(core.list_models())


# ------------------------------------------------------------------------------------------- 3D
def test_video_swin_mlp_forward_backward():
    model = core.create_model("video_swin_mlp_t", num_classes=5, drop_path_rate=0.1).train()
    assert model.window_size == (8, 7, 7) and model.patch_size == (2, 4, 4)
    x = torch.randn(1, 3, 8, 56, 60)  # 4x14x15 tokens: T shorter than the window (no T shift), H/W padded
    out = model(x)
    assert out.shape == (1, 5)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.layers[0].blocks[1].spatial_mlp.weight.grad.abs().sum() > 0


def test_3d_with_one_frame_equals_2d():
    kw = dict(embed_dim=32, depths=(2, 2), num_heads=(2, 4), num_classes=3)
    m2 = core.create_model("swin_mlp_t_c24", window_size=4, **kw).eval()
    m3 = core.create_model("video_swin_mlp_t", patch_size=(1, 4, 4), window_size=(1, 4, 4), **kw).eval()
    randomize(m2)
    sd = {k: v.unsqueeze(2) if k == "patch_embed.proj.weight" else v for k, v in m2.state_dict().items()}
    m3.load_state_dict(sd)
    x = torch.randn(2, 3, 40, 52)
    with torch.no_grad():
        assert torch.allclose(m3(x.unsqueeze(2)), m2(x), atol=1e-5)


# ------------------------------------------------------------------------------------------- FLOPs
@pytest.mark.parametrize("ndim", [2, 3])
def test_spatial_mlp_flops(ndim):
    """Counted FLOPs of one mixer = 2 * M^2 * h * w * C MACs on the map the block pads to."""
    window = (8, 8) if ndim == 2 else (2, 4, 4)
    size = (32, 24) if ndim == 2 else (4, 8, 12)
    C, heads = 48, 4
    for shift in [(0,) * ndim, tuple(w // 2 for w in window)]:
        block = SwinMLPBlock(C, heads, window, shift)
        x = torch.randn(1, *size, C)
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            block.token_mix(x)
        padded = [s + (w if sh else 0) for s, w, sh in zip(size, window, shift)]  # divisible sizes
        macs = math.prod(window) * math.prod(padded) * C
        assert counter.get_total_flops() == 2 * macs == 2 * spatial_mlp_macs(size, window, shift, C)
    if ndim == 2:  # the paper's h*w*M^2*C for the unshifted block of a divisible map
        assert spatial_mlp_macs((32, 24), (8, 8), (0, 0), C) == 8 ** 2 * 32 * 24 * C


def test_summary_covers_swin_mlp():
    from core.nn.flops import report
    r = report("swin_mlp_t_c24")
    assert r["input"] == "3x256x256" and abs(r["mparams"] - 20.39) < 0.01 and r["gmacs"] == pytest.approx(4.0, rel=0.02)


# ------------------------------------------------------------------------------------------- bad input
def test_bad_shapes_name_the_expectation():
    model = core.create_model("swin_mlp_t_c24", num_classes=3, depths=(2, 2), num_heads=(4, 8))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 3, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 4, 64, 64))
    block = SwinMLPBlock(48, 4, (8, 8), (4, 4))
    with pytest.raises(ValueError, match=r"\(B, H, W, 48\)"):
        block(torch.randn(1, 16, 16, 32))
    video = core.create_model("video_swin_mlp_t", embed_dim=32, depths=(1,), num_heads=(2,))
    with pytest.raises(ValueError, match=r"\(B, 3, T, H, W\)"):
        video(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="divisible by num_heads"):
        core.create_model("swin_mlp_t_c24", embed_dim=90)


def test_checkpoint_that_does_not_fit_lists_bad_keys():
    ref = RefSwinMLP((256, 256), 10, **dict(TINY_C24, depths=(2, 2), num_heads=(8, 16)))  # a C12 checkpoint
    sd = ref.state_dict()
    sd.pop("layers.1.blocks.1.mlp.fc2.bias")
    sd["layers.0.blocks.0.extra"] = torch.zeros(1)
    ours = core.create_model("swin_mlp_t_c24", num_classes=10, depths=(2, 2), num_heads=(4, 8))
    with pytest.raises(ValueError) as e:
        load_pretrained(ours, sd)
    msg = str(e.value)
    assert "missing keys: layers.1.blocks.1.mlp.fc2.bias" in msg
    assert "unexpected keys: layers.0.blocks.0.extra" in msg
    assert "layers.0.blocks.0.spatial_mlp.weight: checkpoint (512, 64, 1) vs model (256, 64, 1)" in msg


# ------------------------------------------------------------------------------------------- recipes
TINY = "configs/swin_mlp/tiny_digits.yaml"


def _root() -> str:
    import os
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_recipes_load_and_build():
    import os

    from core.classification.config import ClassificationConfig
    from core.engine.config import load_config
    for name in ("swin_mlp_t_c24", "swin_mlp_t_c12", "swin_mlp_t_c6", "swin_mlp_b"):
        cfg = load_config(os.path.join(_root(), f"configs/swin_mlp/{name}_in1k.yaml"), schema=ClassificationConfig)
        assert cfg.model.name == name and cfg.optim.lr == 5e-4 and cfg.optim.lr_base_size == 512
        assert cfg.data.img_size == (224 if name == "swin_mlp_b" else 256) and cfg.train.epochs == 300


def test_train_entry_point_smoke(tmp_path):
    import json
    import os

    from cli.train import main_image as main
    rc = main(["--config", os.path.join(_root(), TINY), "--output-dir", str(tmp_path),
               "--opt", "train.epochs=1", "sched.warmup_epochs=0", "train.max_iters_per_epoch=2"])
    assert rc == 0
    res = json.load(open(tmp_path / "results.json"))
    assert res["model"] == "swin_mlp_t_c24" and res["params"] < 200_000 and "top1" in res["final"]


@pytest.mark.slow
def test_tiny_recipe_reaches_readme_accuracy(tmp_path):
    """The README's number: python -m swin_mlp.train --config configs/swin_mlp/tiny_digits.yaml."""
    import json
    import os

    from cli.train import main_image as main
    assert main(["--config", os.path.join(_root(), TINY), "--output-dir", str(tmp_path)]) == 0
    assert json.load(open(tmp_path / "results.json"))["final"]["top1"] >= 98.0
