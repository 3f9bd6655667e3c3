"""Class-activation maps: the API's contract over every registered model, the token-to-pixel plumbing, the
moving-shapes masks, and the two command-line tools on real files (good, broken, bad options)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from core.nn.cam import IMAGE_ONLY, METHODS, _to_pixels, _TokenLayout, class_activation_maps, stage_strides
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
    for stage in (None, 1):
        r = class_activation_maps(model, x, stage=stage)
        check_maps(r.maps, x)
        assert r.logits.shape == (2, 3) and r.targets == r.logits.argmax(-1).tolist()
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
    assert class_activation_maps(model, x, targets=[2, 0]).targets == [2, 0]


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
    from core import explain
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
    assert Image.open(out / "seven.png").size[0] >= 28


@pytest.mark.parametrize("opt, says", [(["--stage", "3"], "--stage 3: this model has stages 1 to 2"),
                                       (["--target", "10"], "--target 10: this model has classes 0 to 9"),
                                       (["--method", "nope"], "unknown CAM method 'nope'; grad-cam")])
def test_image_explain_bad_options_one_line(image_ckpt, tmp_path, capsys, opt, says):
    from core import explain
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert explain.main([str(tmp_path / "a.png"), "--checkpoint", image_ckpt, "--out", str(tmp_path), *opt]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    if "method" in says:
        assert all(m in err[0] for m in METHODS)


def test_video_explain_gif_sheet_maps_and_broken_file(tmp_path, capsys):
    pytest.importorskip("decord")
    from core.video.config import VideoConfig
    from core.video.synthetic import render_clip, write_mp4
    from video_swin import explain
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
    assert explain.main([str(tmp_path / "clip.mp4"), "--checkpoint", ckpt, "--out", str(out), "--view", "6"]) == 2
    assert "--view 6: 2x3 test views are 0 to 5" in capsys.readouterr().err
    assert explain.main([str(tmp_path / "clip.mp4"), "--checkpoint", ckpt, "--out", str(out),
                         "--method", "scorecam"]) == 2
    assert "images only" in capsys.readouterr().err


@pytest.mark.slow
def test_digits_maps_pass_the_deletion_test(tmp_path):
    """A short digits run: greying its top-20 % Grad-CAM pixels costs the class more than 20 % random pixels."""
    import json

    from bench import explain as bench_explain
    from core import train
    from helpers import DIGITS
    run = tmp_path / "run"
    assert train.main(["--config", DIGITS, "--output-dir", str(run), "--opt", "train.epochs=12", "train.progress=false",
                       "train.tensorboard=false", "sched.warmup_epochs=1"]) == 0
    assert bench_explain.main(["digits", "--checkpoint", str(run / "best.pth"), "--out", str(tmp_path / "r"),
                               "--methods", "gradcam", "--stages", "2", "--draws", "2"]) == 0
    rows = json.loads((tmp_path / "r" / "digits.json").read_text())["rows"]
    grey = next(r for r in rows if r["baseline"].startswith("mean"))
    assert grey["top1"] > 80 and grey["drop_top_cam"] > grey["drop_random"] + 0.05


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
