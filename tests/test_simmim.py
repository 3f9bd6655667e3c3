"""SimMIM: masks (2D, tube), loss, mask token, decoder, layer-decay groups, checkpoint loading, resume, bad input."""
from __future__ import annotations

import math
import os
import random
import re

import numpy as np
import pytest
import torch
import torch.nn as nn

from cli.pretrain import main_simmim as pretrain
from core import create_model, load_pretrained
from core.engine.checkpoint import load_checkpoint
from core.engine.optim import build_param_groups
from core.nn.position import resize_bias_table
from helpers import interrupt_at, randomize_, tiny_kwargs
from simmim import MaskGenerator, SimMIM, simmim_loss
from simmim.decoder import PixelShuffleND
from simmim.task import pixel_mask

TINY2D = dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4, patch_size=4, num_classes=0)
TINY3D = dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=(2, 4, 4), patch_size=(2, 4, 4),
              num_classes=0)
RUN = ["--opt", "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}",
       "train.epochs=2", "sched.warmup_epochs=1", "train.max_iters_per_epoch=3", "data.batch_size=8",
       "train.progress=false", "train.tensorboard=false", "train.device=cpu"]


def _task(**kw) -> SimMIM:
    enc = create_model("swin_t", **{**TINY2D, **kw})
    return SimMIM(enc, MaskGenerator(32, 8, 4, 0.6))


# ------------------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("size,mask_patch,ratio,grid,count", [(192, 32, 0.6, 48, 22), (32, 8, 0.6, 8, 10),
                                                              (64, 16, 0.3, 16, 5)])
def test_mask_count_and_alignment(size, mask_patch, ratio, grid, count):
    gen = MaskGenerator(size, mask_patch, 4, ratio)
    assert gen.mask_count == count == math.ceil((size // mask_patch) ** 2 * ratio)
    masks = gen(16)
    assert masks.shape == (16, grid, grid) and masks.dtype == torch.int64 and gen().shape == (grid, grid)
    s = mask_patch // 4
    for m in masks:
        assert set(m.unique().tolist()) <= {0, 1}
        blocks = m.view(grid // s, s, grid // s, s)
        # every mask patch is all masked or all visible, and exactly `count` of them are masked
        assert bool((blocks == blocks[:, :1, :, :1]).all())
        assert int(blocks[:, 0, :, 0].sum()) == count and int(m.sum()) == count * s * s
    assert len({tuple(m.flatten().tolist()) for m in masks}) > 1  # random per image


def test_tube_mask_count_and_alignment():
    gen = MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.6)
    masks = gen(6)
    assert masks.shape == (6, 4, 8, 8) and gen.grid == (4, 8, 8)
    for m in masks:
        assert bool((m == m[:1]).all())  # the same spatial mask on every temporal patch
        blocks = m[0].view(4, 2, 4, 2)
        assert bool((blocks == blocks[:, :1, :, :1]).all()) and int(blocks[:, 0, :, 0].sum()) == 10


def test_masks_follow_the_seed():
    gen = MaskGenerator(32, 8, 4, 0.5)
    a = gen(4, generator=torch.Generator().manual_seed(3))
    b = gen(4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------------ loss, token
def test_loss_against_direct_computation():
    g = torch.Generator().manual_seed(0)
    x, rec = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    mask = torch.tensor([[[1, 0], [0, 1]], [[0, 0], [1, 0]]])  # patch 2
    total, count = 0.0, 0
    for b in range(2):
        for i in range(4):
            for j in range(4):
                if mask[b, i // 2, j // 2]:
                    count += 1
                    total += sum(abs(float(rec[b, c, i, j] - x[b, c, i, j])) for c in range(3))
    expected = total / (count + 1e-5) / 3
    assert math.isclose(float(simmim_loss(x, rec, pixel_mask(mask, (2, 2)))), expected, rel_tol=1e-6)


@pytest.mark.parametrize("ndim", [2, 3])
def test_mask_token_replaces_exactly_the_masked_positions(ndim):
    if ndim == 2:
        task, x = _task(), torch.randn(2, 3, 32, 32)
    else:
        task = SimMIM(create_model("video_swin_t", **TINY3D), MaskGenerator((4, 32, 32), 8, (2, 4, 4), 0.6))
        x = torch.randn(2, 3, 4, 32, 32)
    randomize_(task.encoder)
    seen = {}
    task.encoder.pos_drop.register_forward_pre_hook(lambda m, a: seen.setdefault("z", a[0].detach()))
    mask = task.mask_generator(2)
    rec = task.reconstruct(x, mask)
    assert rec.shape == x.shape
    z, emb = seen["z"], task.encoder.patch_embed(x).detach()
    m = mask.bool()
    assert torch.equal(z[~m], emb[~m])  # visible patches: the patch embedding, untouched
    assert torch.equal(z[m], task.mask_token.detach().view(1, -1).expand(int(m.sum()), -1))


def test_swin_mlp_takes_the_mask_token():
    kw = {**tiny_kwargs("swin_mlp_t_c24"), "num_classes": 0}
    task = SimMIM(create_model("swin_mlp_t_c24", **kw), MaskGenerator(32, 8, 4, 0.6))
    x = torch.randn(2, 3, 32, 32)
    out = task((x, None))
    out["loss"].backward()
    assert task.mask_token.grad.abs().sum() > 0 and task.encoder.layers[0].blocks[0].norm1.weight.grad is not None


def test_pixel_shuffle_nd_matches_torch_and_decoder_stride():
    x = torch.randn(2, 3 * 16, 5, 6)
    assert torch.equal(PixelShuffleND((4, 4))(x), nn.PixelShuffle(4)(x))
    task = _task()
    assert task.stride == (8, 8) and task.decoder[0].out_channels == 8 * 8 * 3
    video = SimMIM(create_model("video_swin_t", **TINY3D), MaskGenerator((4, 32, 32), 8, (2, 4, 4), 0.6))
    assert video.stride == (2, 8, 8) and video.decoder[0].out_channels == 2 * 8 * 8 * 3


def test_training_step_lowers_the_loss():
    task = _task()
    ramp = torch.linspace(-1, 1, 32)
    x = (torch.randn(4, 3, 1, 1) * ramp.view(1, 1, 32, 1) + torch.randn(4, 3, 1, 1)).expand(-1, -1, -1, 32)  # smooth
    opt = torch.optim.AdamW(task.parameters(), lr=2e-3)
    losses = []
    for _ in range(30):
        torch.manual_seed(0)  # the same masks every step
        loss = task((x, None))["loss"]
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


# ------------------------------------------------------------------------------------------------ optimizer groups
def test_layer_decay_groups_follow_simmim_rule():
    task = _task(depths=(2, 3))
    depths, decay = (2, 3), 0.9
    n = sum(depths) + 2
    groups = build_param_groups(task, 0.05, layer_decay=decay, no_weight_decay_keywords=())
    scale = {name: g["lr_scale"] for g in groups for name in g["names"]}
    wd = {name: g["weight_decay"] for g in groups for name in g["names"]}

    def expected(name: str) -> int:
        if name == "mask_token" or name.startswith("encoder.patch_embed"):
            return 0
        m = re.match(r"encoder\.layers\.(\d+)\.(blocks\.(\d+)|downsample)", name)
        if m:
            i = int(m.group(1))
            return sum(depths[:i]) + (int(m.group(3)) + 1 if m.group(3) is not None else 0)
        return n - 1  # final norm, decoder

    assert set(scale) == {k for k, p in task.named_parameters()}
    for name, s in scale.items():
        assert math.isclose(s, decay ** (n - 1 - expected(name))), name
    assert expected("encoder.layers.1.downsample.reduction.weight") == 2  # merging = the last block before it
    assert wd["mask_token"] == 0.0 and wd["encoder.layers.0.blocks.0.attn.relative_position_bias_table"] == 0.0
    assert wd["decoder.0.weight"] == 0.05 and wd["encoder.layers.0.blocks.0.attn.qkv.weight"] == 0.05


# ------------------------------------------------------------------------------------------------ checkpoints
def _official_simmim(task: SimMIM) -> dict:
    """The official SimMIM layout: encoder.* with merging at the end of the previous stage, index buffers,
    encoder.mask_token, decoder.0.*."""
    sd = {}
    for k, v in task.encoder.state_dict().items():
        m = re.match(r"layers\.(\d+)\.downsample\.(.*)", k)
        if m:
            k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        sd["encoder." + k] = v
        if k.endswith("relative_position_bias_table"):
            sd["encoder." + k.replace("bias_table", "index")] = torch.zeros(36, 36, dtype=torch.long)
    sd["encoder.mask_token"] = task.mask_token.detach()
    sd.update({f"decoder.{k}": v for k, v in task.decoder.state_dict().items()})
    return {"model": sd}


def test_192_window6_checkpoint_loads_into_224_window7_classifier(tmp_path):
    task = SimMIM(randomize_(create_model("swin_t", **{**TINY2D, "window_size": 6})), MaskGenerator(192, 32, 4, 0.6))
    ours = tmp_path / "simmim.pth"
    torch.save({"model": task.backbone_state(), "task": task.task_state()}, ours)
    official = tmp_path / "official.pth"
    torch.save(_official_simmim(task), official)
    src = task.encoder.state_dict()
    loaded = []
    for path, method in ((ours, None), (official, "simmim")):
        clf = create_model("swin_t", **{**TINY2D, "window_size": 7, "num_classes": 10})
        head = clf.head.fc.weight.detach().clone()
        rep = load_pretrained(clf, str(path))
        assert rep.pretraining == method and rep.new_head
        assert len(rep.resized) == 4 and torch.equal(clf.head.fc.weight, head)
        tgt = clf.state_dict()
        t = "layers.1.blocks.1.attn.relative_position_bias_table"
        assert src[t].shape == (121, 2) and tgt[t].shape == (169, 2)
        assert torch.allclose(tgt[t], resize_bias_table(src[t], (6, 6), (7, 7)))
        assert torch.equal(tgt["layers.1.downsample.reduction.weight"], src["layers.1.downsample.reduction.weight"])
        loaded.append(tgt)
        clf(torch.randn(1, 3, 224, 224))
    for k in loaded[0]:
        if not k.startswith("head."):
            assert torch.equal(loaded[0][k], loaded[1][k]), k


@pytest.mark.slow  # exact resume is in the default suite through tests/faults/test_process.py
def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path, monkeypatch):
    straight = str(tmp_path / "straight")
    assert pretrain(["--output-dir", straight, *RUN]) == 0
    resumed = str(tmp_path / "resumed")
    interrupt_at(monkeypatch, 5)  # iteration 2 of epoch 2
    with pytest.raises(KeyboardInterrupt):
        pretrain(["--output-dir", resumed, *RUN])
    monkeypatch.undo()
    assert load_checkpoint(os.path.join(resumed, "last.pth"))["epoch"] == 1
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # disturbed global RNGs (masks come from them)
    assert pretrain(["--output-dir", resumed, *RUN]) == 0
    a, b = (load_checkpoint(os.path.join(d, "last.pth")) for d in (straight, resumed))
    assert a["epoch"] == b["epoch"] == 2 and a["iteration"] == b["iteration"] == 6
    for part in ("model", "task"):
        assert a[part].keys() == b[part].keys()
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    assert "mask_token" in a["task"] and not any(k.startswith("head.") for k in a["model"])
    assert a["best"] == b["best"] and 0 < a["best"]["l1"] < a["best"]["l1_mean_colour"] + 1


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs,message", [
    (dict(input_size=200), "input size 200 is not divisible by mask_patch_size = 32"),
    (dict(mask_patch_size=30, input_size=210), "mask_patch_size = 30 is not divisible by the model's patch size 4"),
    (dict(mask_ratio=0.0), "mask_ratio = 0.0, expected a value in (0, 1)"),
    (dict(mask_ratio=1.0), "mask_ratio = 1.0, expected a value in (0, 1)"),
])
def test_bad_mask_settings_name_the_value(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MaskGenerator(**{**dict(input_size=192, mask_patch_size=32, model_patch_size=4, mask_ratio=0.6), **kwargs})


@pytest.mark.parametrize("opt,message", [
    (["mim.decoder_stride=16"], "mim.decoder_stride = 16 does not match the backbone's stride 8"),
    (["mim.mask_ratio=1.5"], "mim.mask_ratio = 1.5, expected < 1.0"),
    (["mim.mask_ratio=0"], "mim.mask_ratio = 0.0, expected > 0.0"),
    (["data.img_size=36"], "input size 36 is not divisible by mask_patch_size = 8"),
    (["data.img_size=36", "mim.mask_patch_size=6"], "mask_patch_size = 6 is not divisible by the model's patch size 4"),
    (["model.num_classes=10"], "model.num_classes = 10: the SimMIM encoder is headless"),
])
def test_entry_point_fails_at_start_naming_the_value(opt, message, tmp_path, capsys):
    assert pretrain(["--output-dir", str(tmp_path / "run"), *RUN, *opt]) == 2
    assert message in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run" / "last.pth")


def test_recipes_load_with_their_schema():
    from cli.recipes import recipe_model_name
    from core.engine.config import load_config
    from helpers import CONFIGS
    from simmim.config import ImageFinetuneConfig, SimMIMConfig, VideoFinetuneConfig
    seen = {}
    for path in sorted((CONFIGS / "simmim").glob("*.yaml")):
        if "_base" in path.name:
            continue
        ft = "_ft" in path.name
        video = recipe_model_name(["--config", str(path)]).startswith("video_")
        schema = (VideoFinetuneConfig if video else ImageFinetuneConfig) if ft else SimMIMConfig
        seen[path.stem] = load_config(str(path), [], schema)
    b100, b800 = seen["swin_b_192_w6_100ep"], seen["swin_b_192_w6_800ep"]
    assert (b100.data.img_size, b100.model.kwargs["window_size"], b100.mim.mask_patch_size, b100.mim.mask_ratio) == \
        (192, 6, 32, 0.6)
    assert b100.optim.lr * 2048 / b100.optim.lr_base_size == pytest.approx(8e-4) and b800.train.epochs == 800
    assert [seen[n].optim.layer_decay for n in ("swin_b_224_w7_ft_100ep", "swin_b_224_w7_ft_800ep",
                                                 "swin_l_224_w7_ft")] == [0.9, 0.8, 0.7]
    lp, ft = seen["tiny_spin_zoom_lp_ft"], seen["tiny_spin_zoom_ft"]  # LP-FT step 1: step 2 with the blocks frozen
    assert lp.optim.layer_decay == 1e-6 and (lp.optim.lr, lp.train.epochs, lp.data, lp.finetune) == \
        (ft.optim.lr, ft.train.epochs, ft.data, ft.finetune)
    ft = seen["swin_b_224_w7_ft_100ep"]
    assert (ft.data.img_size, ft.model.kwargs["window_size"], ft.aug.mixup, ft.aug.cutmix, ft.aug.reprob) == \
        (224, 7, 0.8, 1.0, 0.25)


def test_visualize_writes_the_picture_and_rejects_bad_input(tmp_path, capsys):
    from PIL import Image

    from cli.visualize import main as visualize
    run = str(tmp_path / "run")
    assert pretrain(["--output-dir", run, *RUN, "train.epochs=1"]) == 0
    img = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((40, 56, 3)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "recon.png"
    assert visualize([f"{run}/last.pth", str(img), "--out", str(out)]) == 0
    assert Image.open(out).size[0] > 400
    assert "masked-pixel L1" in capsys.readouterr().out
    assert visualize([f"{run}/last.pth", "photo:flower", "--size", "32", "48", "--out", str(out)]) == 0
    assert visualize([f"{run}/last.pth", str(tmp_path / "clip.mp4"), "--out", str(out)]) == 2
    assert "the checkpoint's model takes images" in capsys.readouterr().err
    assert visualize([f"{run}/last.pth", "photo:flower", "--size", "30", "48", "--out", str(out)]) == 2
    assert "input size 30 is not divisible by mask_patch_size = 8" in capsys.readouterr().err


def test_a_shipped_video_recipe_picks_its_schema_from_any_folder(tmp_path, monkeypatch):
    """``simmim.finetune --config configs/...`` run outside the repository: the schema peek reads the shipped recipe
    as the loader does (it once read nothing and validated a video recipe as an image one)."""
    from cli.recipes import recipe_model_name
    monkeypatch.chdir(tmp_path)
    assert recipe_model_name(["--config", "configs/simmim/tiny_spin_zoom_lp_ft.yaml"]) == "video_swin_t"
