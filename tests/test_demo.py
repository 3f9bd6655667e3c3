"""The demo page: one file explained by an image or a video model (either kind of file, bad files as messages), the
page in-process through Gradio's client, the command as a user starts it, and the page in a real browser (headless
Chromium) where one is installed."""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import ROOT, TINY_OPT

VIDEO_OPTS = ["model.name=video_swin_t", "data.dataset=moving_shapes", "data.clip_len=8", "data.frame_interval=2",
              "data.crop_size=32", "data.num_clips=1", "data.num_crops=1",
              "model.kwargs={embed_dim: 16, depths: [1, 1], num_heads: [1, 2], patch_size: [2, 4, 4], "
              "window_size: [4, 4, 4]}"]
DIRECTIONS = ["left", "right", "up", "down"]


def save_checkpoint(path, schema, opts, classes):
    from core.engine.config import config_to_dict, load_config
    from core.engine.launch import build_model
    cfg = load_config(None, opts, schema)
    torch.manual_seed(0)
    model = build_model(cfg, len(classes), initial_weights=False)
    torch.save({"model": model.state_dict(), "config": config_to_dict(cfg), "meta": {"classes": list(classes)}}, path)
    return str(path)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Checkpoints (a tiny video model of the moving-shapes classes, a tiny digits model) and inputs: an embedded
    clip, an image, a one-frame video, a broken video, an empty file."""
    pytest.importorskip("decord")
    from core.classification.config import ClassificationConfig
    from core.video.config import VideoConfig
    from core.video.synthetic import render_clip, write_mp4
    d = tmp_path_factory.mktemp("demo")
    out = {"video_ckpt": save_checkpoint(d / "video.pth", VideoConfig, VIDEO_OPTS, DIRECTIONS),
           "image_ckpt": save_checkpoint(d / "image.pth", ClassificationConfig,
                                         ["model.name=swin_t", "data.dataset=digits", "data.img_size=32", TINY_OPT],
                                         [str(i) for i in range(10)])}
    frames = render_clip(np.random.default_rng(0), "left", 16, 32)
    write_mp4(d / "clip.mp4", frames)
    write_mp4(d / "still.mp4", frames[:1])
    Image.fromarray(frames[3, :, :30]).resize((60, 64)).save(d / "picture.png")
    (d / "broken.mp4").write_bytes(b"\0" * 100)
    (d / "empty.png").write_bytes(b"")
    out.update({k: str(d / f) for k, f in (("clip", "clip.mp4"), ("one_frame", "still.mp4"),
                                           ("image", "picture.png"), ("broken", "broken.mp4"), ("empty", "empty.png"))})
    return out


@pytest.fixture(scope="module")
def video_explainer(files):
    from core.explainer import Explainer
    return Explainer.from_checkpoint(files["video_ckpt"], device="cpu")


def test_a_video_model_explains_a_clip_and_an_image(files, video_explainer, tmp_path):
    """The clip: the top classes by name, a map per frame at the video's size, an animation and a contact sheet; an
    image: read as a still clip, one map at the image's size."""
    ex = video_explainer.explain(files["clip"])
    assert ex.kind == "video" and [t["class"] for t in ex.top][:1] == [DIRECTIONS[ex.target]]
    assert sorted(t["class"] for t in ex.top) == sorted(DIRECTIONS) and ex.how.startswith("hirescam, stage 1")
    assert ex.maps.shape == (8, 32, 32) and ex.pixels.shape == (8, 32, 32, 3) and 0 <= ex.maps.min() <= ex.maps.max() <= 1
    written = ex.save(str(tmp_path / "clip"), save_maps=True)
    assert [os.path.basename(f) for f in written] == ["clip.gif", "clip.png", "clip.npy"]
    assert Image.open(written[0]).n_frames == 8
    still = video_explainer.explain(files["image"])
    assert still.kind == "image" and still.maps.shape == (64, 60) and "still image" in still.note
    assert still.figure().shape[1] > 3 * 60


def test_an_image_model_explains_an_image_and_a_video_frame_by_frame(files, tmp_path):
    from core.explainer import Explainer
    explainer = Explainer.from_checkpoint(files["image_ckpt"], device="cpu")
    assert not explainer.is_video and explainer.classes == [str(i) for i in range(10)]
    ex = explainer.explain(files["image"])
    assert ex.kind == "image" and ex.maps.shape == (64, 60) and ex.how.startswith("gradcam, stage 1") and len(ex.top) == 5
    clip = explainer.explain(files["clip"])
    assert clip.kind == "video" and clip.maps.shape == (8, 32, 32) and "frame by frame" in clip.note
    assert abs(sum(t["prob"] for t in explainer.explain(files["clip"]).top) - 1) < 0.5


def test_bad_files_are_messages_and_the_next_file_works(files, video_explainer, tmp_path):
    """Unreadable, one frame, empty, missing, too large: each one InputError naming why; the page's answer is a
    message, and the next good file is answered as before."""
    from core.demo_app import answer
    from core.explainer import InputError
    cases = {"broken": "cannot read", "one_frame": "has 1 frame(s): a video needs at least 2", "empty": "is empty"}
    for key, says in cases.items():
        with pytest.raises(InputError, match=re.escape(says)):
            video_explainer.explain(files[key])
        a = answer(video_explainer, files[key], str(tmp_path))
        assert not a.ok and a.top == {} and a.picture is None and "Cannot explain" in a.message and says in a.message
        assert files[key] not in a.message or os.path.basename(files[key]) == files[key]   # the upload's own name
    with pytest.raises(InputError, match="file not found"):
        video_explainer.explain(str(tmp_path / "nope.mp4"))
    video_explainer.max_bytes = 100
    try:
        with pytest.raises(InputError, match="files up to 0 MB"):
            video_explainer.explain(files["clip"])
    finally:
        video_explainer.max_bytes = 0
    good = answer(video_explainer, files["clip"], str(tmp_path))
    assert good.ok and set(good.top) == set(DIRECTIONS) and good.picture.endswith(".gif") and good.sheet.endswith(".png")
    assert "Prediction and map:" in good.message


def test_without_gradio_the_command_says_how_to_install_it(files, monkeypatch, capsys):
    from cli import demo
    from core.demo_app import require_gradio
    monkeypatch.setitem(sys.modules, "gradio", None)                # as if not installed
    with pytest.raises(ImportError, match=r"pip install \.\[demo\]"):
        require_gradio()
    assert demo.main(["--checkpoint", files["video_ckpt"]]) == 2
    assert "pip install .[demo]" in capsys.readouterr().err


def test_bad_options_of_the_command_are_one_line(files, capsys):
    pytest.importorskip("gradio")
    from cli import demo
    for opt, says in ((["--method", "nope"], "unknown CAM method 'nope'"), (["--stage", "3"], "stages 1 to 2"),
                      (["--smooth", "-1"], "sigma >= 0")):
        assert demo.main(["--checkpoint", files["video_ckpt"], *opt]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page(video_explainer):
    """The page served in this process on a free localhost port (the command's serve(), not blocking)."""
    pytest.importorskip("gradio")
    from core.demo_app import serve
    port = free_port()
    app = serve(video_explainer, port=port, max_mb=5, block=False)
    yield f"http://127.0.0.1:{port}/"
    app.close()
    video_explainer.max_bytes = 0


def test_the_page_answers_through_gradios_client(files, page, video_explainer):
    """Through the page's API: a clip gives the top classes by name (the explainer's own answer), the animation and
    the contact sheet; a broken file gives a message; the page still answers after it."""
    gradio_client = pytest.importorskip("gradio_client")
    client = gradio_client.Client(page, verbose=False)
    t0 = time.perf_counter()
    top, picture, sheet, message = client.predict(gradio_client.handle_file(files["clip"]), api_name="/explain")
    seconds = time.perf_counter() - t0
    names = [c["label"] for c in top["confidences"]]
    assert top["label"] == video_explainer.explain(files["clip"]).top[0]["class"] and sorted(names) == sorted(DIRECTIONS)
    assert picture.endswith(".gif") and sheet.endswith(".png") and "for clip.mp4" in message and seconds < 30
    _, picture, _, message = client.predict(gradio_client.handle_file(files["broken"]), api_name="/explain")
    assert picture is None and "Cannot explain this file" in message and "broken.mp4" in message
    top, picture, sheet, message = client.predict(gradio_client.handle_file(files["image"]), api_name="/explain")
    assert top["label"] in DIRECTIONS and picture.endswith(".png") and sheet is None and "still image" in message


# ------------------------------------------------------------------------------------------ a real browser
def find_browser() -> tuple[str, str] | None:
    """(Chromium, its driver) installed on this machine (Debian: apt-get install chromium chromium-driver)."""
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


@pytest.mark.slow
def test_the_page_in_a_real_browser(files, page, video_explainer):
    """Headless Chromium loads the page, uploads the embedded clip, then an image, and the predicted class names are
    read back from the page; a screenshot of each is kept in outputs/test_artifacts/."""
    found = find_browser()
    if found is None:
        pytest.skip("no Chromium and chromedriver here: apt-get install chromium chromium-driver (Debian)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (in .[test])")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000",
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):      # nothing but this machine
        options.add_argument(arg)
    artifacts = ROOT / "outputs" / "test_artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    try:
        for key, name in (("clip", "clip.mp4"), ("image", "picture.png")):
            want = video_explainer.explain(files[key]).top[0]["class"]
            driver.get(page)
            upload = WebDriverWait(driver, 30).until(lambda d: d.find_element(By.CSS_SELECTOR, "#upload input[type=file]"))
            upload.send_keys(files[key])
            done = f"for {name}"
            WebDriverWait(driver, 60).until(lambda d, done=done: done in d.find_element(By.ID, "message").text)
            shown = driver.find_element(By.ID, "top5").text
            driver.save_screenshot(str(artifacts / f"demo_page_{key}.png"))
            assert want in shown and all(c in shown for c in DIRECTIONS), shown
            assert "Prediction and map" in driver.find_element(By.ID, "message").text
    finally:
        driver.quit()


@pytest.mark.slow
def test_the_command_starts_and_answers_in_seconds(files):
    """``python -m video_swin.demo`` as a user starts it: serving within seconds, an embedded clip answered within
    seconds more (times printed; the limits are generous for a loaded 2-core machine)."""
    gradio_client = pytest.importorskip("gradio_client")
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "video_swin.demo", "--checkpoint", files["video_ckpt"],
                             "--port", str(port), "--device", "cpu"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert "serving http://127.0.0.1:" in line, line
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert proc.poll() is None and time.perf_counter() - t0 < 60
                time.sleep(0.2)
        started = time.perf_counter() - t0
        client = gradio_client.Client(f"http://127.0.0.1:{port}/", verbose=False)
        t1 = time.perf_counter()
        top, *_ = client.predict(gradio_client.handle_file(files["clip"]), api_name="/explain")
        answered = time.perf_counter() - t1
        print(f"demo: serving {started:.1f} s after start, the embedded clip answered in {answered:.2f} s")
        assert top["label"] in DIRECTIONS and started < 30 and answered < 15
    finally:
        proc.terminate()
        proc.wait(timeout=30)
