"""Class-activation maps: the API's contract over every registered model, the token-to-pixel plumbing and its
smoothing, the defaults, the pictures, the localisation sets and their measures, the moving-shapes masks, and the two
command-line tools on real files (good, broken, bad options)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.nn.cam import (
    DEFAULT_METHOD,
    DEFAULT_SMOOTH,
    IMAGE_ONLY,
    METHODS,
    _to_pixels,
    _TokenLayout,
    class_activation_maps,
    default_method,
    default_stage,
    smooth_maps,
    stage_strides,
    target_layer,
)
from core.nn.registry import create_model, list_models
from helpers import TINY_OPT, tiny_input, tiny_kwargs


def check_maps(maps: torch.Tensor, x: torch.Tensor) -> None:
    assert maps.shape == (x.shape[0], *x.shape[2:])
    assert maps.dtype == torch.float32
    assert torch.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_gets_maps(name):
    """Any family, 2D or 3D, last stage and stage 1: (B, [T,] H, W) maps at the input's size, in [0, 1]."""
    model = create_model(name, **tiny_kwargs(name))
    x = tiny_input(name)
    model.train()
    for stage, layer in ((None, "output"), (1, "output"), (2, "output"), (None, "block")):
        r = class_activation_maps(model, x, stage=stage, layer=layer)
        check_maps(r.maps, x)
        assert r.logits.shape == (2, 3) and r.targets == r.logits.argmax(-1).tolist()
        assert r.stage == (stage or 1) and r.method == default_method(x.ndim - 2) and r.smooth == DEFAULT_SMOOTH
    assert model.training and all(p.grad is None for p in model.parameters())   # left as it was found


@pytest.mark.parametrize("name", ["swin_t", "video_swin_t"])
def test_every_method_runs(name):
    model = create_model(name, **tiny_kwargs(name)).eval()
    x = tiny_input(name, batch=1)
    for method in METHODS:
        if x.ndim == 5 and method in IMAGE_ONLY:
            with pytest.raises(ValueError, match="images only"):
                class_activation_maps(model, x, method=method)
            continue
        check_maps(class_activation_maps(model, x, method=method, targets=2).maps, x)


def test_bad_method_target_stage_name_what_is_valid():
    model = create_model("swin_t", **tiny_kwargs("swin_t"))
    x = tiny_input("swin_t")
    with pytest.raises(ValueError, match="gradcam, gradcam\\+\\+, xgradcam"):
        class_activation_maps(model, x, method="nope")
    with pytest.raises(ValueError, match="classes 0 to 2"):
        class_activation_maps(model, x, targets=3)
    with pytest.raises(ValueError, match="stages 1 to 2"):
        class_activation_maps(model, x, stage=3)
    with pytest.raises(ValueError, match="layers: output, block"):
        class_activation_maps(model, x, layer="nope")
    with pytest.raises(ValueError, match="sigma >= 0"):
        class_activation_maps(model, x, smooth=-1)
    assert class_activation_maps(model, x, targets=[2, 0]).targets == [2, 0]


def test_defaults_explain_the_last_stage_but_one():
    """The default stage is the last but one (the last for one stage); the layers are the stage's output (the final
    norm for the last stage) and the input of its last block."""
    model = create_model("swin_t", **tiny_kwargs("swin_t"))
    assert default_stage(model) == 1 and target_layer(model) is model.layers[0]
    assert target_layer(model, 2) is model.norm and target_layer(model, 2, "block") is model.layers[1].blocks[-1].norm1
    one = create_model("swin_t", embed_dim=16, depths=(1,), num_heads=(1,), window_size=4, num_classes=3)
    assert default_stage(one) == 1 and target_layer(one) is one.norm


def test_smoothing_removes_the_token_lattice_and_keeps_the_peak():
    """A map of isolated token peaks (the lattice a person sees) is spread to a smooth field by a Gaussian of half a
    token; its peak stays at 1 and where it was; sigma 0 changes nothing."""
    from bench.explain import token_ripple
    lattice = torch.zeros(2, 32, 32)
    lattice[:, 2::4, 2::4] = 1.0                                  # one hot pixel per 4-pixel token
    lattice[1, 18, 18] = 3.0
    lattice /= lattice.flatten(1).amax(1).view(-1, 1, 1)
    smooth = smooth_maps(lattice, [0.5 * 4, 0.5 * 4])
    assert token_ripple(lattice, 4) > 3 and token_ripple(smooth, 4) < 0.5
    assert smooth.flatten(1).amax(1).allclose(torch.ones(2)) and int(smooth[1].argmax()) == 18 * 32 + 18
    assert torch.equal(smooth_maps(lattice, [0, 0]), lattice)
    clip = smooth_maps(lattice[None].repeat(1, 1, 1, 1), [2.0, 2.0])        # (B, T, H, W): one peak per clip
    assert clip.shape == (1, 2, 32, 32) and float(clip.max()) == pytest.approx(1.0)


def test_clip_tokens_lie_side_by_side_and_map_back_to_their_frames_and_pixels():
    """A clip's (B, T', H', W', C) tokens become (B, C, H', T'*W'); a token's value comes back over the frames
    (temporal patch) and pixels (patch x merges) it covers, the padding cropped off."""
    x = torch.randn(2, 3, 4, 5, 6)
    flat = _TokenLayout()(x)
    assert flat.shape == (2, 6, 4, 15)
    assert torch.equal(flat[1, :, 2, 2 * 5 + 4], x[1, 2, 2, 4])
    grid, stride, size = (3, 4, 5), (2, 8, 8), (6, 30, 36)          # 36 px = 4.5 tokens: the last one padded
    hot = torch.zeros(1, 4, 15)
    hot[0, 2, 1 * 5 + 4] = 1                                        # frame-token 1, row 2, column 4
    up = _to_pixels(hot, grid, stride, size)
    assert up.shape == (1, *size)
    peak = [int(i) for i in np.unravel_index(int(up.argmax()), size)]
    assert peak[0] in (2, 3) and 16 <= peak[1] < 24 and 32 <= peak[2] < 36
    assert up[0, :, :, :28].max() < up.max()


def test_stage_strides():
    m3 = create_model("video_swin_t", **tiny_kwargs("video_swin_t"))
    assert stage_strides(m3) == [(2, 4, 4), (2, 8, 8)]
    m2 = create_model("swin_t", **tiny_kwargs("swin_t"))
    assert stage_strides(m2) == [(4, 4), (8, 8)]


def test_moving_shapes_masks_match_the_data_set_clips():
    from core.video.synthetic import moving_shapes_item, moving_shapes_masks, render_clip
    frames, masks = moving_shapes_item("val", 6)
    assert np.array_equal(frames, render_clip(np.random.default_rng([0, 1, 6]), "up"))   # label 6 % 4 = up
    assert np.array_equal(masks, moving_shapes_masks("val", 6)) and 0.02 < masks.mean() < 0.5
    still, _ = moving_shapes_item("val", 6, pan=False)
    bg = ~(masks[0] | masks[1])
    assert np.abs(still[0].astype(int) - still[1])[bg].mean() < 6                      # only noise off the shapes
    assert np.abs(frames[0].astype(int) - frames[1])[bg].mean() > 6                    # the texture pans
    empty, _ = moving_shapes_item("val", 6, shapes=False)
    assert not np.array_equal(empty[:, masks[0]], frames[:, masks[0]])


def test_pictures_show_the_input_beside_its_map_and_overlay():
    """The figure: the input (its pixels enlarged whole), the map in a colour map and the map over the input, side by
    side under a title; a clip's animation has one picture per frame and its contact sheet the frames asked for."""
    from core.cam_pictures import clip_frames, clip_sheet, colorize, display_size, explain_figure, overlay, panels
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    cam = np.zeros((32, 48), np.float32)
    cam[8:16, 24:40] = 1
    assert display_size((32, 48)) == (192, 288) and display_size((480, 640)) == (240, 320)
    big, colour, over = panels(image, cam)
    assert big.shape == colour.shape == over.shape == (192, 288, 3)
    assert np.array_equal(big[::6, ::6], image)                              # nearest: the pixels as they are
    assert np.array_equal(colorize(np.zeros((1, 1)))[0, 0], colorize(np.zeros((2, 2)))[1, 1])
    cold = overlay(image, np.zeros((32, 48)))
    assert np.abs(cold.astype(int) - (0.7 * (0.5 * image + 0.5 * image.mean(-1, keepdims=True)))).max() <= 1
    fig = explain_figure(image, cam, "seven 93.0%  (gradcam, stage 1)")
    assert fig.shape[1] == 3 * 288 + 2 * 6 and fig.shape[0] > 192 and fig.dtype == np.uint8
    frames = rng.integers(0, 255, (6, 32, 32, 3), dtype=np.uint8)
    maps = rng.random((6, 32, 32)).astype(np.float32)
    anim = clip_frames(frames, maps, "left 99%")
    assert len(anim) == 6 and len({a.shape for a in anim}) == 1
    sheet = clip_sheet(frames, maps, 4, "left 99%")
    assert sheet.shape[1] > 4 * 128 and sheet.ndim == 3


def test_localisation_sets_put_the_object_in_its_box():
    """The discs: the class colour only inside the box, the box tight around the disc; the moving objects: the box
    moves in the class direction, a frame at a time; both are the same from the same seed."""
    from bench.explain import DISC_CLASSES, box_masks, mass_ratio, render_disc_image, render_moving_object
    for label in range(len(DISC_CLASSES)):
        img, box = render_disc_image(np.random.default_rng([0, 1, label]), label)
        again, _ = render_disc_image(np.random.default_rng([0, 1, label]), label)
        assert np.array_equal(img, again) and img.shape == (64, 64, 3)
        a, b, c, d = box
        rgb = img.astype(int)
        red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
        hot = (red - np.maximum(green, blue) > 80) if DISC_CLASSES[label] == "red" else \
            (blue - np.maximum(red, green) > 60)
        inside = np.zeros_like(hot)
        inside[a:c, b:d] = True
        assert hot[inside].mean() > 0.6 and not hot[~inside].any()
    frames, boxes = render_moving_object(np.random.default_rng(3), "right")
    assert frames.shape == (8, 64, 64, 3) and len(boxes) == 8
    lefts = [b[1] for b in boxes]
    assert all(1 <= q - p <= 4 for p, q in zip(lefts, lefts[1:])) and len({b[0] for b in boxes}) == 1
    where = box_masks(boxes, (64, 64))
    assert where.shape == (8, 64, 64) and mass_ratio(where[None], where[None]).item() == pytest.approx(
        1 / float(where.mean()))
    assert mass_ratio(torch.ones(1, 8, 64, 64), where[None]).item() == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------------ the tools
def save_checkpoint(path, schema, opts, num_classes):
    from core.engine.config import config_to_dict, load_config
    from core.engine.launch import build_model
    cfg = load_config(None, opts, schema)
    model = build_model(cfg, num_classes, initial_weights=False)
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg)}, path)
    return str(path)


@pytest.fixture(scope="module")
def image_ckpt(tmp_path_factory):
    from core.classification.config import ClassificationConfig
    d = tmp_path_factory.mktemp("explain_image")
    opts = ["model.name=swin_t", "data.dataset=digits", "data.img_size=32", TINY_OPT]
    return save_checkpoint(d / "best.pth", ClassificationConfig, opts, 10)


def test_image_explain_writes_pictures_and_maps_and_names_unreadable(image_ckpt, tmp_path, capsys):
    from cli import explain_image as explain
    good = tmp_path / "in" / "seven.png"
    good.parent.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(good)
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    code = explain.main([str(tmp_path / "in"), str(tmp_path / "missing.png"), "--checkpoint", image_ckpt,
                         "--out", str(out), "--save-maps", "--method", "gradcam++", "--target", "7"])
    assert code == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "missing.png" in err and "1 image(s) explained" in err
    m = np.load(out / "seven.npy")
    assert m.shape == (20, 28) and m.dtype == np.float32 and np.isfinite(m).all() and m.min() >= 0
    assert Image.open(out / "seven.png").size[0] >= 3 * 28                 # input, map and overlay side by side


@pytest.mark.parametrize("opt, says", [(["--stage", "3"], "--stage 3: this model has stages 1 to 2"),
                                       (["--target", "10"], "--target 10: this model has classes 0 to 9"),
                                       (["--smooth", "-1"], "--smooth -1.0: expected a sigma >= 0"),
                                       (["--method", "nope"], "unknown CAM method 'nope'; grad-cam")])
def test_image_explain_bad_options_one_line(image_ckpt, tmp_path, capsys, opt, says):
    from cli import explain_image as explain
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert explain.main([str(tmp_path / "a.png"), "--checkpoint", image_ckpt, "--out", str(tmp_path), *opt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    if "method" in says:
        assert all(m in err[0] for m in METHODS)


def test_video_explain_gif_sheet_maps_and_broken_file(tmp_path, capsys):
    pytest.importorskip("decord")
    from cli import explain
    from core.video.config import VideoConfig
    from core.video.synthetic import render_clip, write_mp4
    opts = ["model.name=video_swin_t", "data.dataset=moving_shapes", "data.clip_len=8", "data.frame_interval=2",
            "data.crop_size=32", "data.num_clips=2", "data.num_crops=3",
            "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
            "window_size: [4, 4, 4]}"]
    ckpt = save_checkpoint(tmp_path / "best.pth", VideoConfig, opts, 4)
    (tmp_path / "classes.txt").write_text("left\nright\nup\ndown\n")
    write_mp4(tmp_path / "clip.mp4", render_clip(np.random.default_rng(0), "left", 16, 48)[:, :, :40])  # 48x40
    (tmp_path / "broken.mp4").write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    code = explain.main([str(tmp_path / "clip.mp4"), str(tmp_path / "broken.mp4"), "--checkpoint", ckpt,
                         "--out", str(out), "--save-maps", "--view", "5", "--target", "up"])
    assert code == 1
    err = capsys.readouterr().err
    assert "cannot read" in err and "broken.mp4" in err and "1 video(s) explained" in err
    m = np.load(out / "clip.npy")
    assert m.shape == (8, 48, 40) and np.isfinite(m).all() and m.min() >= 0 and m.max() > 0
    assert (out / "clip.gif").is_file() and (out / "clip.png").is_file()
    assert Image.open(out / "clip.gif").n_frames == 8
    assert Image.open(out / "clip.gif").size[0] >= 3 * 40                   # frame, map and overlay in step
    assert explain.main([str(tmp_path / "clip.mp4"), "--checkpoint", ckpt, "--out", str(out), "--view", "6"]) == 2
    assert "--view 6: 2x3 test views are 0 to 5" in capsys.readouterr().err
    assert explain.main([str(tmp_path / "clip.mp4"), "--checkpoint", ckpt, "--out", str(out),
                         "--method", "scorecam"]) == 2
    assert "images only" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_maps_pass_the_deletion_test(tmp_path):
    """A short digits run: greying the top-20 % pixels of the default maps costs the class more than 20 % random
    pixels."""
    import json

    from bench import explain as bench_explain
    from cli import train
    from helpers import DIGITS
    run = tmp_path / "run"
    assert train.main(["--config", DIGITS, "--output-dir", str(run), "--opt", "train.epochs=12", "train.progress=false",
                       "train.tensorboard=false", "sched.warmup_epochs=1"]) == 0
    assert bench_explain.main(["digits", "--checkpoint", str(run / "best.pth"), "--out", str(tmp_path / "r"),
                               "--methods", DEFAULT_METHOD, "--stages", "1", "--smooths", str(DEFAULT_SMOOTH),
                               "--seeds", "1", "--draws", "2", "--compare"]) == 0
    rows = json.loads((tmp_path / "r" / "digits.json").read_text())["rows"]
    default = next(r for r in rows if r["model"] == "trained")
    assert default["top1"] > 70 and default["drop_top_cam"] > default["drop_random"] + 0.05


@pytest.mark.slow
def test_default_maps_localise_the_disc_on_a_trained_model_only(tmp_path):
    """A short run on a small discs set (the class is the disc's colour): the default maps put at least 2.5x the
    disc box's area share of their mass in the box, random-weight models about 1x."""
    import json

    from bench import explain as bench_explain
    from cli import train
    from helpers import DIGITS
    root = bench_explain.ensure_discs(tmp_path / "discs", num_train=400, num_val=100)
    run = tmp_path / "run"
    assert train.main(["--config", DIGITS, "--output-dir", str(run), "--opt", "model.num_classes=0",
                       "data.dataset=imagefolder", f"data.root={root}", "data.img_size=64", "data.crop_pct=1.0",
                       "data.scale=[0.8,1.0]", "aug.color_jitter=0", "aug.auto_augment=", "aug.reprob=0",
                       "train.epochs=6", "sched.warmup_epochs=1", "train.progress=false",
                       "train.tensorboard=false"]) == 0
    assert bench_explain.main(["discs", "--checkpoint", str(run / "best.pth"), "--out", str(tmp_path / "r"),
                               "--methods", DEFAULT_METHOD, "--layers", "output", "--smooths", str(DEFAULT_SMOOTH),
                               "--stages", "1", "--seeds", "2", "--draws", "1", "--compare"]) == 0
    rows = json.loads((tmp_path / "r" / "discs.json").read_text())["rows"]
    trained = next(r for r in rows if r["model"] == "trained")
    randoms = [r["mass_over_area_mean"] for r in rows if r["model"] != "trained"]
    assert trained["top1"] > 95 and trained["mass_over_area_mean"] >= 2.5 and max(randoms) < 1.6
    assert trained["drop_top_cam"] > trained["drop_random"] + 0.1


def test_crop_boxes_match_the_transforms():
    """Where the evaluation crop comes from (to put a map back on the picture): a vertical edge lands where the
    box says, for the image transform (resize + centre crop) and each of the video test transform's 3 crops."""
    from torchvision import tv_tensors

    from core.classification.config import ClassificationConfig
    from core.classification.images import eval_crop_box, image_transform
    from core.engine.config import load_config
    from core.video.transforms import build_video_transform, test_view_box
    cfg = load_config(None, ["data.img_size=64", "data.mean=[0,0,0]", "data.std=[1,1,1]",
                             "data.interpolation=bilinear"], ClassificationConfig)
    img = np.zeros((90, 150, 3), np.uint8)
    img[:, 75:] = 255
    (rh, rw), top, left = eval_crop_box(cfg, (90, 150))
    x = image_transform(cfg)(Image.fromarray(img))
    assert int((x[0].mean(0) > 0.5).float().argmax()) == round(75 * rw / 150) - left
    clip = torch.zeros(2, 3, 40, 100, dtype=torch.uint8)
    clip[..., 50:] = 255
    views = build_video_transform("test", 32, None, 3, mean=(0, 0, 0), std=(1, 1, 1))(tv_tensors.Video(clip))
    for k in range(3):
        (rh, rw), top, left = test_view_box((40, 100), 32, 3, k)
        edge = round(50 * rw / 100) - left
        col = views[k, 0, 0].mean(0) > 127
        assert bool(col.any()) == (edge < 32) and (not col.any() or abs(int(col.float().argmax()) - max(edge, 0)) <= 1)


def test_inputs_sharing_a_file_name_get_distinct_outputs():
    from core.engine.inference import output_stems
    assert output_stems(["x/a.mp4", "x/b.mp4"]) == {"x/a.mp4": "a", "x/b.mp4": "b"}
    stems = output_stems(["d/train/left/0.mp4", "d/val/left/0.mp4", "d/val/up/1.mp4"])
    assert stems == {"d/train/left/0.mp4": "train__left__0", "d/val/left/0.mp4": "val__left__0",
                     "d/val/up/1.mp4": "val__up__1"}
