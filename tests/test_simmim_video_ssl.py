"""SimMIM's video self-supervision options: per-frame masks (mim.mask_mode), norm_pixels and frame_diff targets
(mim.target), each against a direct computation; their start-up errors."""
from __future__ import annotations

import math
import re

import pytest
import torch

from core import create_model
from core.engine import ConfigError
from core.engine.config import load_config
from helpers import CONFIGS, randomize_, translating_clip
from simmim import MaskGenerator, SimMIM, simmim_loss
from simmim.config import SimMIMConfig
from simmim.target import frame_diff, make_target, patch_normalise, prediction_as_pixels, trivial_prediction
from simmim.task import pixel_mask

TINY3D = dict(embed_dim=16, depths=(1, 1), num_heads=(1, 2), window_size=(2, 4, 4), patch_size=(2, 4, 4),
              num_classes=0)
TINY2D = dict(embed_dim=16, depths=(2, 2), num_heads=(1, 2), window_size=4, patch_size=4, num_classes=0)


def _video_task(target: str = "pixels", mode: str = "tube", ratio: float = 0.6) -> SimMIM:
    enc = create_model("video_swin_t", **TINY3D)
    return SimMIM(enc, MaskGenerator((8, 32, 32), 8, (2, 4, 4), ratio, mode), target=target)


# ------------------------------------------------------------------------------------------------ masks
def test_frame_masks_against_a_direct_computation():
    gen = MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.6, "frame")
    masks = gen(3, generator=torch.Generator().manual_seed(5))
    assert masks.shape == (3, 4, 8, 8) and gen.grid == (4, 8, 8) and masks.dtype == torch.int64
    # direct: one row of 16 uniform keys per (clip, temporal patch); its 10 smallest keys are masked, each mask
    # patch (8 px) covering 2x2 model patches (4 px) of that temporal patch only
    keys = torch.rand(3 * 4, 16, generator=torch.Generator().manual_seed(5))
    expected = torch.zeros(3, 4, 8, 8, dtype=torch.int64)
    for row in range(12):
        b, t = divmod(row, 4)
        for k in sorted(range(16), key=lambda i: float(keys[row, i]))[:10]:
            i, j = divmod(k, 4)
            expected[b, t, 2 * i:2 * i + 2, 2 * j:2 * j + 2] = 1
    assert torch.equal(masks, expected)
    assert all(int(masks[b, t].sum()) == 40 for b in range(3) for t in range(4))
    assert any(not torch.equal(masks[b, 0], masks[b, t]) for b in range(3) for t in range(1, 4))  # independent


def test_tube_masks_are_unchanged_and_images_ignore_the_mode():
    tube = MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.6)(2, generator=torch.Generator().manual_seed(1))
    flat = MaskGenerator(32, 8, 4, 0.6)(2, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tube, flat[:, None].expand(-1, 4, -1, -1))  # the same draws as before the option
    a = MaskGenerator(32, 8, 4, 0.6, "frame")(4, generator=torch.Generator().manual_seed(2))
    b = MaskGenerator(32, 8, 4, 0.6, "tube")(4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)


@pytest.mark.parametrize("mode", ["frame", "tube"])
def test_mask_last_hides_the_last_temporal_patches_and_keeps_the_rest(mode):
    plain = MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.6, mode)(3, generator=torch.Generator().manual_seed(7))
    gen = MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.6, mode, mask_last=1)
    masks = gen(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(masks[:, :3], plain[:, :3])           # the same draws on the earlier temporal patches
    assert bool((masks[:, 3] == 1).all())                     # the last one (frames 6-7) hidden entirely
    assert int(masks.sum()) == int(plain[:, :3].sum()) + 3 * 64
    assert "last 1 temporal patches" in repr(gen)


@pytest.mark.parametrize("kwargs,message", [
    (dict(mask_ratio=0.95), "mim.mask_ratio = 0.95 masks all 16 mask patches (ceil(16 x 0.95) = 16): no visible"),
    (dict(mode="moving"), "mim.mask_mode = 'moving', expected one of tube, frame"),
    (dict(mask_last=4), "mim.mask_last = 4 hides all 4 temporal patches (clip length 8 / temporal patch 2)"),
    (dict(input_size=32, model_patch_size=4, mask_last=1), "mim.mask_last = 1 hides the last temporal patches of a "
                                                           "clip, but the input is an image"),
])
def test_bad_mask_settings_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        MaskGenerator(**{**dict(input_size=(8, 32, 32), mask_patch_size=8, model_patch_size=(2, 4, 4),
                                mask_ratio=0.6), **kwargs})


# ------------------------------------------------------------------------------------------------ targets
def test_norm_pixels_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 8, 8, generator=g) * 3 + 1
    y = patch_normalise(x, (2, 4, 4))
    for b in range(2):
        for t in range(0, 4, 2):
            for i in range(0, 8, 4):
                for j in range(0, 8, 4):
                    block = x[b, :, t:t + 2, i:i + 4, j:j + 4]
                    ref = (block - block.mean()) / (block.var(unbiased=False) + 1e-6).sqrt()
                    torch.testing.assert_close(y[b, :, t:t + 2, i:i + 4, j:j + 4], ref)
    img = torch.randn(2, 3, 8, 8, generator=g)
    block = img[1, :, 4:, :4]
    torch.testing.assert_close(patch_normalise(img, (4, 4))[1, :, 4:, :4],
                               (block - block.mean()) / (block.var(unbiased=False) + 1e-6).sqrt())
    # the picture puts each unit's true mean and spread back
    torch.testing.assert_close(prediction_as_pixels(y, x, "norm_pixels", (2, 4, 4)), x, atol=1e-4, rtol=1e-4)


def test_frame_diff_against_a_direct_computation():
    x = torch.randn(2, 3, 4, 8, 8)
    y, valid = frame_diff(x)
    for t in range(3):
        torch.testing.assert_close(y[:, :, t], x[:, :, t + 1] - x[:, :, t])
    assert torch.equal(y[:, :, 3], torch.zeros_like(y[:, :, 3]))
    assert valid.flatten().tolist() == [1.0, 1.0, 1.0, 0.0]
    assert prediction_as_pixels(y, x, "frame_diff", (2, 8, 8)) is None


@pytest.mark.parametrize("target", ["pixels", "norm_pixels", "frame_diff"])
def test_task_loss_regresses_the_target_on_masked_positions(target):
    torch.manual_seed(0)
    task = _video_task(target, "frame")
    randomize_(task.encoder)
    x = torch.randn(2, 3, 8, 32, 32)
    torch.manual_seed(7)
    loss = task((x, None))["loss"]
    torch.manual_seed(7)
    mask = task.mask_generator(2)
    rec = task.reconstruct(x, mask).float()
    m = pixel_mask(mask, (2, 4, 4)).float()
    if target == "pixels":
        y = x
    elif target == "norm_pixels":
        y = patch_normalise(x, (2, 8, 8))  # one unit = a temporal patch x a mask patch
    else:
        y = torch.cat([x[:, :, 1:] - x[:, :, :-1], torch.zeros_like(x[:, :, :1])], 2)
        m[:, :, -1] = 0  # the last frame has no successor
    torch.testing.assert_close(loss, simmim_loss(y, rec, m))
    loss.backward()
    assert task.mask_token.grad.abs().sum() > 0


def test_l2_loss_against_a_direct_computation():
    g = torch.Generator().manual_seed(0)
    x, rec = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    m = (torch.rand(2, 1, 4, 4, generator=g) > 0.5).float()
    expected = sum(float((rec[b, c, i, j] - x[b, c, i, j]) ** 2) for b in range(2) for c in range(3)
                   for i in range(4) for j in range(4) if m[b, 0, i, j]) / (float(m.sum()) + 1e-5) / 3
    assert math.isclose(float(simmim_loss(x, rec, m, "l2")), expected, rel_tol=1e-5)

    class Env:
        device, amp_dtype = torch.device("cpu"), None

    task = _video_task("frame_diff", "frame")
    task.loss = "l2"
    out = task.evaluate([torch.randn(2, 3, 8, 32, 32)], Env())
    assert set(out) == {"mse", "mse_trivial", "skill"} and "masked frame-difference MSE" in task.describe(out)
    with pytest.raises(ValueError, match="mim.loss = 'l3', expected one of l1, l2"):
        SimMIM(create_model("swin_t", **TINY2D), MaskGenerator(32, 8, 4, 0.6), loss="l3")


def test_skill_is_against_the_trivial_predictor():
    x = torch.randn(2, 3, 4, 8, 8)
    torch.testing.assert_close(trivial_prediction(x, "pixels"), x.mean(dim=(2, 3, 4), keepdim=True).expand_as(x))
    assert not trivial_prediction(x, "norm_pixels").any() and not trivial_prediction(x, "frame_diff").any()
    y, valid = make_target(x, "pixels", (2, 4, 4))
    assert y is x and valid is None

    class Env:
        device, amp_dtype = torch.device("cpu"), None

    task = _video_task("norm_pixels", "frame")
    out = task.evaluate([torch.randn(2, 3, 8, 32, 32)], Env())
    assert set(out) == {"l1", "l1_trivial", "skill"}
    assert math.isclose(out["skill"], 1 - out["l1"] / out["l1_trivial"])
    assert "masked norm-pixel L1" in task.describe(out)


def test_image_task_takes_norm_pixels_and_frame_masks():
    enc = create_model("swin_t", **TINY2D)
    task = SimMIM(enc, MaskGenerator(32, 8, 4, 0.6, "frame"), target="norm_pixels")
    assert task.target_unit == (8, 8)
    task((torch.randn(2, 3, 32, 32), None))["loss"].backward()


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("recipe,opt,message", [
    ("tiny_digits.yaml", ["mim.target=frame_diff"], "mim.target = frame_diff needs clips"),
    ("tiny_spin_zoom.yaml", ["mim.target=frame_diff", "data.clip_len=1"],
     "mim.target = frame_diff needs at least 2 frames, data.clip_len = 1"),
    ("tiny_digits.yaml", ["mim.target=flow"], "mim.target = flow needs clips"),
    ("tiny_digits.yaml", ["mim.target=pixels_flow"], "mim.target = pixels_flow needs clips"),
    ("tiny_spin_zoom.yaml", ["mim.target=flow", "data.clip_len=1"],
     "mim.target = flow needs at least 2 frames, data.clip_len = 1"),
    ("tiny_spin_zoom.yaml", ["mim.target=hog"], "config key 'mim.target'"),
    ("tiny_spin_zoom.yaml", ["mim.mask_mode=moving"], "one of 'tube', 'frame'"),
    ("tiny_digits.yaml", ["mim.mask_last=1"], "mim.mask_last = 1 hides the last temporal patches of a clip, but "
                                              "data.dataset = 'digits' gives images"),
])
def test_recipe_errors_name_the_field(recipe, opt, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(str(CONFIGS / "simmim" / recipe), opt, SimMIMConfig)


def test_task_refuses_frame_diff_for_images():
    with pytest.raises(ValueError, match="mim.target = frame_diff needs clips"):
        SimMIM(create_model("swin_t", **TINY2D), MaskGenerator(32, 8, 4, 0.6), target="frame_diff")


@pytest.mark.parametrize("target", ["norm_pixels", "frame_diff", "flow", "pixels_flow"])
def test_reconstruction_picture_of_the_new_targets(target, tmp_path):
    from simmim.pictures import reconstruction_figure
    task = _video_task(target, "frame").eval()
    mean, std = torch.full((1, 3, 1, 1, 1), 120.0), torch.full((1, 3, 1, 1, 1), 58.0)
    res = reconstruction_figure(task, torch.randn(1, 3, 8, 32, 32), mean, std, str(tmp_path / "r.png"))
    assert (tmp_path / "r.png").stat().st_size > 1000 and res["l1"] > 0 and res["l1_trivial"] > 0


# ------------------------------------------------------------------------------------------------ flow
@pytest.mark.parametrize("shift", [(1, 0), (0, -2), (2, 1)])
def test_flow_target_is_the_motion_of_a_translating_pattern(shift):
    from core.video.flow import clip_flow
    x = translating_clip(shift)
    y, valid = make_target(x * 40 + 3, "flow", (2, 8, 8))   # any affine colour scale gives the same flow
    assert y.shape == (1, 2, 4, 32, 32) and valid.flatten().tolist() == [1.0, 1.0, 1.0, 0.0]
    inner = y[0, :, :3, 8:24, 8:24]                          # away from the borders, where Farneback extrapolates
    for c in range(2):
        assert abs(float(inner[c].median()) - shift[c]) < 0.25, (c, float(inner[c].median()))
    assert not y[:, :, -1].any()
    assert float((clip_flow(x)[0] - y).abs().mean()) < 0.01   # the same up to the rounding to 8-bit grey
    with pytest.raises(ValueError, match="optical flow needs clips"):
        clip_flow(torch.randn(1, 3, 32, 32))


@pytest.mark.parametrize("shift", [(1, 0), (0, -2), (2, 1)])
def test_dis_estimator_finds_the_motion_of_a_translating_pattern(shift):
    from core.video.flow import clip_flow
    y, valid = clip_flow(translating_clip(shift) * 40 + 3, "dis")
    inner = y[0, :, :3, 8:24, 8:24]
    for c in range(2):
        assert abs(float(inner[c].median()) - shift[c]) < 0.25, (c, float(inner[c].median()))
    assert not y[:, :, -1].any() and valid.flatten().tolist() == [1.0, 1.0, 1.0, 0.0]
    with pytest.raises(ValueError, match="expected one of farneback, dis"):
        clip_flow(translating_clip(shift), "lucas_kanade")


def test_flow_estimator_reaches_the_target_and_bad_names_fail_at_start_up():
    task = SimMIM(create_model("video_swin_t", **TINY3D), MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.75, "frame"),
                  target="flow", flow_estimator="dis")
    x = translating_clip((0, -2), frames=8)
    y, _ = task.target_of(x, task.mask_generator(1))
    from core.video.flow import clip_flow
    torch.testing.assert_close(y, clip_flow(x, "dis")[0])
    with pytest.raises(ValueError, match="mim.flow_estimator = 'raft', expected one of farneback, dis"):
        SimMIM(create_model("video_swin_t", **TINY3D), MaskGenerator((8, 32, 32), 8, (2, 4, 4), 0.75, "frame"),
               target="flow", flow_estimator="raft")


def test_flow_task_predicts_two_channels_and_is_scored_against_zero():
    torch.manual_seed(0)
    task = _video_task("flow", "frame")
    assert task.decoder[0].out_channels == 2 * 2 * 8 * 8       # (dx, dy) x the decoder's 2 x 8 x 8 stride
    x = translating_clip((1, 0), frames=8).repeat(2, 1, 1, 1, 1)
    torch.manual_seed(7)
    loss = task((x, None))["loss"]
    torch.manual_seed(7)
    mask = task.mask_generator(2)
    y, m = task.target_of(x, mask)
    rec = task.reconstruct(x, mask).float()
    assert rec.shape == y.shape == (2, 2, 8, 32, 32) and not m[:, :, -1].any()
    torch.testing.assert_close(loss, simmim_loss(y, rec, m))
    loss.backward()

    class Env:
        device, amp_dtype = torch.device("cpu"), None

    out = task.evaluate([x], Env())
    assert 0.4 < out["l1_trivial"] < 0.6 and math.isclose(out["skill"], 1 - out["l1"] / out["l1_trivial"])
    assert "masked flow L1" in task.describe(out)
    still = task.describe({"l1": 0.84, "l1_trivial": 0.84, "skill": 0.0})
    assert "no better than predicting no motion yet" in still and "data.frame_interval" in still and "patch_size" in still
    assert "no motion yet" not in task.describe({"l1": 0.3, "l1_trivial": 0.84, "skill": 0.64})


def test_a_flow_recipe_masking_every_patch_is_a_start_up_error():
    from simmim.task import build_simmim
    cfg = load_config(str(CONFIGS / "simmim" / "tiny_spin_zoom.yaml"), ["mim.target=flow", "mim.mask_ratio=0.99"],
                      SimMIMConfig)
    with pytest.raises(ConfigError, match=re.escape("mim.mask_ratio = 0.99 masks all 16 mask patches")):
        build_simmim(cfg)


def test_task_refuses_flow_for_images():
    with pytest.raises(ValueError, match="mim.target = flow needs clips"):
        SimMIM(create_model("swin_t", **TINY2D), MaskGenerator(32, 8, 4, 0.6), target="flow")



def test_flow_pyramid_follows_the_frame_size():
    from core.video.flow import clip_flow, levels
    assert [levels(s, s) for s in (16, 32, 64, 224)] == [1, 2, 3, 4]
    x = translating_clip((5, -4), size=64)          # 6.4 px a frame: beyond the two levels of 32-px frames
    y, _ = clip_flow(x)
    inner = y[0, :, :3, 16:48, 16:48]
    assert abs(float(inner[0].median()) - 5) < 0.5 and abs(float(inner[1].median()) + 4) < 0.5


def test_pixels_flow_target_is_both_with_the_flow_leaving_out_the_last_frame():
    from core.video.flow import clip_flow
    torch.manual_seed(0)
    task = _video_task("pixels_flow", "frame")
    assert task.decoder[0].out_channels == 5 * 2 * 8 * 8
    x = translating_clip((1, 0), frames=8).repeat(2, 1, 1, 1, 1) + 0.1 * torch.randn(2, 3, 8, 32, 32)
    torch.manual_seed(7)
    loss = task((x, None))["loss"]
    torch.manual_seed(7)
    mask = task.mask_generator(2)
    rec = task.reconstruct(x, mask).float()
    flow, _ = clip_flow(x)
    m = pixel_mask(mask, (2, 4, 4)).float()
    pix_err = ((rec[:, :3] - x).abs() * m).sum()
    flow_err = ((rec[:, 3:] - flow).abs() * m)[:, :, :-1].sum()          # no flow target at the last frame
    expected = (pix_err + flow_err) / (3 * m.sum() + 2 * m[:, :, :-1].sum())
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert torch.equal(prediction_as_pixels(rec, x, "pixels_flow", (2, 8, 8)), rec[:, :3])
    y, _ = make_target(x, "pixels_flow", (2, 8, 8))
    trivial = trivial_prediction(x, "pixels_flow", y)
    torch.testing.assert_close(trivial[:, :3], trivial_prediction(x, "pixels"))
    assert not trivial[:, 3:].any()

    class Env:
        device, amp_dtype = torch.device("cpu"), None

    out = task.evaluate([x], Env())
    flow_only = _video_task("flow", "frame")
    assert set(out) == {"l1", "l1_trivial", "skill", "flow_l1", "flow_l1_trivial", "flow_skill"}
    assert 0.4 < out["flow_l1_trivial"] < 0.6 and "flow alone skill" in task.describe(out)  # |dx| = 1, dy = 0
    assert math.isclose(out["flow_l1_trivial"], flow_only.evaluate([x], Env())["l1_trivial"], rel_tol=1e-6)
