"""The local demo page: drop a video or an image, see the top-5 classes with their names, where the model looks (the
class-activation map's animation or picture) and the time it took. Built with Gradio, an optional extra
(``pip install .[demo]``), imported only when a page is built; everything else works without it.

    explainer = Explainer.from_checkpoint("outputs/run/best.pth")
    page = build_app(explainer)                     # a gradio.Blocks
    page.launch(server_name="127.0.0.1", server_port=7860)
    answer(explainer, "clip.mp4", workdir)          # what the page shows for one file, without Gradio

A file that cannot be explained (unreadable, a one-frame video, larger than ``max_bytes``) gives a message on the page;
the server keeps serving. One process on the CPU or the GPU; one request at a time (the model is not shared).
"""
from __future__ import annotations

import os
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Any

from .explainer import Explainer, InputError

__all__ = ["DEMO_INSTALL", "require_gradio", "Answer", "answer", "build_app", "serve", "process_age", "DEFAULT_PORT"]

DEMO_INSTALL = "the demo page needs Gradio: pip install .[demo] (or pip install gradio)"
DEFAULT_PORT = 7860


def require_gradio() -> Any:
    """The gradio module, or ImportError saying how to install it. Gradio's telemetry and version check (calls to
    its servers) are turned off: the page talks to nothing but the browser that opens it."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as e:
        raise ImportError(f"{DEMO_INSTALL} ({e})") from None
    return gradio


@dataclass
class Answer:
    """What the page shows for one file: {class: probability} of the top classes, the picture (a GIF for a clip, a
    PNG for an image), the contact sheet of a clip, and a line of text (the time, or the reason it failed)."""
    top: dict[str, float]
    picture: str | None
    sheet: str | None
    message: str
    ok: bool


def answer(explainer: Explainer, path: str | None, workdir: str) -> Answer:
    """Explain one uploaded file into ``workdir``: the page's outputs, or a message when it cannot be explained."""
    if not path:
        return Answer({}, None, None, "Drop a video or an image above.", False)
    name = os.path.basename(path)
    t0 = time.perf_counter()
    try:
        ex = explainer.explain(path)
    except InputError as e:                                     # the upload's own name, not the server's copy
        return Answer({}, None, None, f"**Cannot explain this file.** {str(e).replace(path, name)}", False)
    except Exception as e:  # noqa: BLE001 -- whatever a file does to a decoder, the page keeps serving
        return Answer({}, None, None, f"**Cannot explain this file.** {name}: {type(e).__name__}: "
                                      f"{(str(e).strip().splitlines() or [''])[0]}", False)
    stem = os.path.join(tempfile.mkdtemp(dir=workdir), os.path.splitext(name)[0] or "input")
    files = ex.save(stem)
    picture = files[0]
    sheet = stem + ".png" if ex.kind == "video" else None
    total = time.perf_counter() - t0
    note = f" ({ex.note})" if ex.note else ""
    message = (f"**{ex.label}** for {name}{note}. Prediction and map: {ex.seconds:.2f} s; with the pictures: "
               f"{total:.2f} s. Map: {ex.how}.")
    return Answer({t["class"]: t["prob"] for t in ex.top}, picture, sheet, message, True)


def build_app(explainer: Explainer, title: str = "Where the model looks", max_bytes: int | None = None) -> Any:
    """The page (a ``gradio.Blocks``) serving ``explainer``; uploads above ``max_bytes`` are refused by the page."""
    gr = require_gradio()
    workdir = tempfile.mkdtemp(prefix="swin_demo_")
    lock = threading.Lock()
    kind = "video" if explainer.is_video else "image"
    model = explainer.cfg.model.name
    intro = (f"# {title}\n{model}, a {kind} model with {len(explainer.classes)} classes "
             f"({', '.join(explainer.classes[:8])}{', ...' if len(explainer.classes) > 8 else ''}). Drop a video or an "
             f"image: the top-5 classes, and the class-activation map of the first over the input (for a clip, an "
             f"animation of its frames beside their maps).")

    def run(path: str | None) -> tuple[Any, ...]:
        with lock:                                             # one model, one request at a time
            a = answer(explainer, path, workdir)
        return a.top or None, a.picture, a.sheet, a.message

    with gr.Blocks(title=title, analytics_enabled=False) as page:
        gr.Markdown(intro)
        with gr.Row():
            with gr.Column():
                upload = gr.File(label="a video or an image", file_count="single", type="filepath",
                                 elem_id="upload")
                message = gr.Markdown("Drop a video or an image above.", elem_id="message")
                top = gr.Label(num_top_classes=5, label="top-5 classes", elem_id="top5")
            with gr.Column():
                picture = gr.Image(label="where the model looks", show_label=False, type="filepath",
                                   elem_id="picture")
                sheet = gr.Image(label="contact sheet (a clip)", show_label=False, type="filepath", elem_id="sheet")
        upload.change(run, inputs=upload, outputs=[top, picture, sheet, message], api_name="explain")
    return page


def process_age() -> float | None:
    """Seconds since this process started (Linux: /proc), else None."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = float(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def serve(explainer: Explainer, port: int = DEFAULT_PORT, host: str = "127.0.0.1", max_mb: int = 200,
          block: bool = True) -> Any:
    """Build the page and serve it on ``host:port`` (localhost by default); returns the page (``block=False``:
    at once, the server running in a thread)."""
    explainer.max_bytes = max_mb * 2 ** 20
    page = build_app(explainer, max_bytes=explainer.max_bytes)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=host, server_port=port, max_file_size=explainer.max_bytes, prevent_thread_lock=not block,
                quiet=True, show_error=True)
    return page
