"""Pretrained weights by name (core.hub): registry, download through a loopback mirror, faults, labels, zoo table.

No internet: a local HTTP server serves small files at the registered paths through SWIN_SUITE_WEIGHTS_MIRROR, in a
temporary TORCH_HOME. Every entry's model is built (on the meta device) and checked against the shapes its
release's file name states.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import math
import os
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
import torch.hub

import core
from core.hub import files as dl
from core.hub import registry
from core.hub.registry import HubError, Pretrained, UnknownPretrained, get_pretrained

GH = "/SwinTransformer/storage/releases/download"
TINY_VIDEO = dict(embed_dim=24, depths=(1, 1), num_heads=(1, 2), window_size=(2, 4, 4))
TINY_2D = dict(embed_dim=24, depths=(1, 1), num_heads=(1, 2), window_size=4)


class _Server(ThreadingHTTPServer):
    """Serves ``files`` (path -> bytes), counting requests; paths in ``truncate`` stop halfway."""
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.hits: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        srv: _Server = self.server  # type: ignore[assignment]
        srv.hits.append(self.path)
        body = srv.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.path in srv.truncate else body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A loopback mirror and an empty TORCH_HOME."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch" / "hub"))
    srv = _Server()
    threading.Thread(target=srv.serve_forever, kwargs=dict(poll_interval=0.02), daemon=True).start()
    monkeypatch.setenv(dl.MIRROR_ENV, srv.url)
    yield srv
    srv.shutdown()
    srv.server_close()


def _add(monkeypatch, entry: Pretrained) -> Pretrained:
    """Register ``entry`` (or replace the entry of its name) for one test."""
    registry._load_entries()
    monkeypatch.setitem(registry._ENTRIES, entry.name, entry)
    if entry.arch not in registry._DEFAULT:
        monkeypatch.setitem(registry._DEFAULT, entry.arch, entry.name)
    return entry


def _saved(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def _path(url: str) -> str:
    return re.sub(r"^https://[^/]+", "", url)


def _cache_files() -> list[str]:
    d = Path(dl.cache_dir())
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


# --- download, cache, faults ----------------------------------------------------------------------------------

def test_download_then_cache_hit(hub):
    entry = get_pretrained("swin_t.ms_in1k")
    assert _path(entry.url) == f"{GH}/v1.0.0/swin_tiny_patch4_window7_224.pth"
    hub.files[_path(entry.url)] = b"weights" * 100
    path = dl.download("swin_t.ms_in1k", progress=False)
    assert path == os.path.join(torch.hub.get_dir(), "checkpoints", "swin_tiny_patch4_window7_224.pth")
    assert path.startswith(os.environ["TORCH_HOME"]) and Path(path).read_bytes() == b"weights" * 100
    assert dl.download("swin_t.ms_in1k", progress=False) == path
    assert hub.hits == [_path(entry.url)]  # the second call is a cache hit
    assert _cache_files() == ["swin_tiny_patch4_window7_224.pth"]


def test_a_hashed_file_is_checked(hub, monkeypatch):
    body = b"torchvision-style file"
    digest = hashlib.sha256(body).hexdigest()
    entry = _add(monkeypatch, Pretrained("tiny_swin.tv_test", "swin_t", "Swin", "torchvision",
                                         url=f"https://download.pytorch.org/models/tiny-{digest[:8]}.pth"))
    hub.files[_path(entry.url)] = body
    assert Path(dl.download(entry.name, progress=False)).read_bytes() == body
    assert dl.download(entry.name, progress=False) and len(hub.hits) == 1


def test_a_tampered_hashed_file_is_refused_and_not_cached(hub):
    url = get_pretrained("swin_t.tv_in1k").url
    assert url == "https://download.pytorch.org/models/swin_t-704ceda3.pth"
    body = b"not the torchvision file"
    hub.files[_path(url)] = body
    with pytest.raises(HubError) as e:
        dl.download("swin_t.tv_in1k", progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "swin_t-704ceda3.pth" in msg
    assert "704ceda3" in msg and hashlib.sha256(body).hexdigest() in msg  # both hashes
    assert _cache_files() == []  # neither the file nor a .partial
    # a bad file put into the cache by hand is refused and deleted too
    cached = Path(dl.cache_path("swin_t.tv_in1k"))
    cached.write_bytes(body)
    with pytest.raises(HubError, match="deleted it from the cache"):
        dl.download("swin_t.tv_in1k", progress=False)
    assert not cached.exists()


def test_an_interrupted_download_leaves_nothing(hub):
    url = get_pretrained("swin_s.ms_in1k").url
    hub.files[_path(url)] = b"x" * 10_000
    hub.truncate.add(_path(url))
    with pytest.raises(HubError, match=r"stopped after 5000 of 10000 bytes"):
        dl.download("swin_s.ms_in1k", progress=False)
    assert _cache_files() == []
    hub.truncate.clear()  # the next try completes
    assert Path(dl.download("swin_s.ms_in1k", progress=False)).stat().st_size == 10_000


def test_no_network_names_the_url_and_the_cache_path(hub, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(dl.MIRROR_ENV, f"http://127.0.0.1:{port}")
    with pytest.raises(HubError) as e:
        dl.download("video_swin_t.ms_in1k_ft_k400", progress=False)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"http://127.0.0.1:{port}{GH}/v1.0.4/swin_tiny_patch244_window877_kinetics400_1k.pth" in msg
    assert dl.cache_path("video_swin_t.ms_in1k_ft_k400") in msg
    assert _cache_files() == []
    assert "HTTP 404" in _error(lambda: dl.fetch(f"{hub.url}/missing.pth", dl.cache_path("swin_t.ms_in1k")))


def _error(fn) -> str:
    with pytest.raises(HubError) as e:
        fn()
    return str(e.value)


def test_mirror_keeps_the_path(monkeypatch):
    monkeypatch.delenv(dl.MIRROR_ENV, raising=False)
    assert dl.mirrored("https://a.b/c/d.pth") == "https://a.b/c/d.pth"
    monkeypatch.setenv(dl.MIRROR_ENV, "http://host:8000/base/")
    assert dl.mirrored("https://github.com/x/y.pth?download=true") == "http://host:8000/base/x/y.pth?download=true"


def test_unknown_names_list_the_nearest():
    with pytest.raises(UnknownPretrained, match=r"'swin_t.ms_in1kk'; nearest: .*swin_t\.ms_in1k"):
        get_pretrained("swin_t.ms_in1kk")
    with pytest.raises(ValueError, match=r"'swin_t.in1k'; nearest: .*swin_t\.(ms|tv)_in1k"):
        core.create_model("swin_t", pretrained="in1k")
    with pytest.raises(ValueError, match="nearest: .*video_swin_b.ms_in22k_ft_k600"):
        core.pretrained_cfg("video_swin_b.ms_in22k_k600")
    with pytest.raises(ValueError, match="unknown label set 'kinetics-700'; known: imagenet-1k"):
        core.class_names("kinetics-700")


def test_a_hub_entry_uses_huggingface_hub_its_cache_and_offline_mode(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants

    name = "swin_v2_s_w12.simmim_in1k_125k"
    entry = get_pretrained(name)
    assert entry.hf_hub_id == "zdaxie/SimMIM"
    assert entry.hf_filename == "simmim_swinv2_pretrain_models/swinv2_small_1k_125k.pth"
    monkeypatch.delenv(dl.MIRROR_ENV)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    msg = _error(lambda: dl.download(name, progress=False))  # offline, not cached: one line, no request
    assert "\n" not in msg and f"https://huggingface.co/zdaxie/SimMIM/resolve/main/{entry.hf_filename}" in msg
    assert str(tmp_path / "hf") in msg and dl.cache_path(name) in msg
    # in the hub's cache (its layout: refs/main names the snapshot), offline mode reads it
    repo = tmp_path / "hf" / "models--zdaxie--SimMIM"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("a" * 40)
    snap = repo / "snapshots" / ("a" * 40) / entry.hf_filename
    snap.parent.mkdir(parents=True)
    snap.write_bytes(b"simmim")
    assert Path(dl.download(name, progress=False)).read_bytes() == b"simmim"
    # through the mirror its resolve url's path is fetched into torch.hub's cache
    monkeypatch.setenv(dl.MIRROR_ENV, hub.url)
    hub.files[f"/zdaxie/SimMIM/resolve/main/{entry.hf_filename}"] = b"mirrored"
    assert dl.download(name, progress=False) == dl.cache_path(name)
    assert Path(dl.cache_path(name)).read_bytes() == b"mirrored"


def test_timm_hub_copies_and_safetensors(hub, tmp_path, monkeypatch):
    from huggingface_hub import constants
    from safetensors.torch import save_file

    assert get_pretrained("swin_b.ms_in22k").hf_hub_id == "timm/swin_base_patch4_window7_224.ms_in22k"
    ref = core.create_model("swin_t", num_classes=7, **TINY_2D)
    entry = _add(monkeypatch, Pretrained("tiny_swin.ms_test", "swin_t", "Swin", "microsoft/Swin-Transformer",
                                         url="https://github.com/x/tiny.pth", hf_hub_id="timm/tiny_swin.ms_test",
                                         overrides=TINY_2D, num_classes=7))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    snap = tmp_path / "hf" / "models--timm--tiny_swin.ms_test" / "snapshots" / ("b" * 40)
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text("b" * 40)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(snap / "model.safetensors"))
    model = core.create_model(entry.name, pretrained=True, source="hf")
    assert hub.hits == []  # the url was not used
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_a_manual_entry_says_where_to_put_the_file(hub, monkeypatch):
    name = "swin_b.simmim_in1k_800ep_ft_in1k"
    entry = get_pretrained(name)
    assert entry.manual and entry.url.startswith("https://drive.google.com/file/d/1xEKyfMTsdh6TfnYhk5vbw0Yz7a-viZ0w")
    monkeypatch.delenv(dl.MIRROR_ENV)
    msg = _error(lambda: dl.download(name, progress=False))
    assert "\n" not in msg and entry.url in msg and dl.cache_path(name) in msg
    assert dl.cache_path(name).endswith("simmim_finetune__swin_base__img224_window7__800ep.pth")
    Path(dl.cache_path(name)).parent.mkdir(parents=True)
    Path(dl.cache_path(name)).write_bytes(b"by hand")
    assert dl.download(name, progress=False) == dl.cache_path(name)


# --- models: every entry builds, fits its release, loads end to end -----------------------------------------

SIZE = {"tiny": (96, (2, 2, 6, 2)), "small": (96, (2, 2, 18, 2)), "base": (128, (2, 2, 18, 2)),
        "large": (192, (2, 2, 18, 2))}


def _release_facts(e: Pretrained) -> dict:
    """What the release's file name states: size, window, channels per head, classes."""
    f = e.file_name
    size = re.search(r"(tiny|small|base|large)", f) or re.search(r"(?:swin3?d?|swin_v2)_([tsb])[-_]", f)
    word = size.group(1)
    word = {"t": "tiny", "s": "small", "b": "base"}.get(word, word)
    facts = dict(embed_dim=SIZE[word][0], depths=SIZE[word][1])
    per_head = re.search(r"_c(\d+)_", f)
    facts["heads"] = facts["embed_dim"] // int(per_head.group(1)) if per_head else facts["embed_dim"] // 32
    if m := re.search(r"window(\d)(\d)(\d)_", f):  # Video Swin: window877
        facts["window"] = tuple(int(x) for x in m.groups())
    elif m := re.search(r"window1677_", f):
        facts["window"] = (16, 7, 7)
    elif m := re.search(r"window(?:\d+to)?(\d+)_", f):
        facts["window"] = int(m.group(1))
    elif f.startswith("swin3d"):
        facts["window"] = (8, 7, 7)
    elif f.startswith(("swin_t-", "swin_s-", "swin_b-", "moby_swin_t")):
        facts["window"] = 7
    elif f.startswith("swin_v2_"):
        facts["window"] = 8
    if "kinetics600" in f:
        facts["classes"] = 600
    elif "kinetics400" in f or f.startswith("swin3d"):
        facts["classes"] = 400
    elif "sthv2" in f:
        facts["classes"] = 174
    elif re.search(r"_22k(_\d+k)?\.pth$", f):
        facts["classes"] = 0 if "simmim" in f or "_22k_" in f else 21841
    elif "pretrain" in f or e.hf_hub_id == "zdaxie/SimMIM":
        facts["classes"] = 0
    else:
        facts["classes"] = 1000
    return facts


@pytest.fixture(scope="module")
def built():
    """Every distinct architecture of the registry, built on the meta device (weight init skipped): shapes only."""
    from core.nn.model import SwinTransformer
    cache: dict = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SwinTransformer, "_init_weights", staticmethod(lambda m: None))
        for name in core.list_pretrained():
            e = get_pretrained(name)
            key = _shape_key(e)
            if key not in cache:
                with torch.device("meta"):
                    model = core.create_model(name)
                cache[key] = (model, {k: tuple(v.shape) for k, v in model.state_dict().items()})
    return {n: cache[_shape_key(get_pretrained(n))] for n in core.list_pretrained()}


def _shape_key(e: Pretrained) -> tuple:
    """What decides a model's weight shapes (compat does not)."""
    return e.model, repr(sorted((k, v) for k, v in e.overrides.items() if k != "compat")), e.num_classes


def test_every_entry_builds_with_its_overrides_and_fits_its_release(built):
    names = core.list_pretrained()
    assert len(names) == 101
    for name in names:
        e = get_pretrained(name)
        model, shapes = built[name]
        facts = _release_facts(e)
        assert model.pretrained_cfg["model"] == e.model, name
        assert shapes["patch_embed.proj.weight"][0] == facts["embed_dim"], name
        depths = tuple(len({k.split(".")[3] for k in shapes if k.startswith(f"layers.{i}.blocks.")}) for i in range(4))
        assert depths == facts["depths"], name
        assert e.num_classes == facts["classes"], name
        assert (dl.hash_prefix(e.file_name) is not None) == (e.source == "torchvision"), name  # only those are hashed
        if facts["classes"]:
            assert shapes["head.fc.weight"] == (facts["classes"], facts["embed_dim"] * 8), name
        else:
            assert not any(k.startswith("head.") for k in shapes), name
        assert len(e.input_size) - 1 == model.ndim, name
        if "window" in facts:
            w = facts["window"]
            assert model.window_size == (w if isinstance(w, tuple) else (w, w)), name
        block = "layers.0.blocks.0."
        if block + "attn.relative_position_bias_table" in shapes:  # Swin V1: the table of the window, per head
            assert shapes[block + "attn.relative_position_bias_table"] == (
                math.prod(2 * w - 1 for w in model.window_size), facts["heads"]), name
        elif block + "attn.logit_scale" in shapes:  # Swin V2: no table; one temperature per head
            assert shapes[block + "attn.logit_scale"] == (facts["heads"], 1, 1), name
        else:  # Swin-MLP: a spatial MLP over the window, per head
            n = math.prod(model.window_size)
            assert shapes[block + "spatial_mlp.weight"] == (facts["heads"] * n, n, 1), name


def test_torchvision_entries_match_the_installed_torchvision():
    import torchvision.models as tvm
    import torchvision.models.video as tvv

    enums = [tvm.Swin_T_Weights, tvm.Swin_S_Weights, tvm.Swin_B_Weights, tvm.Swin_V2_T_Weights,
             tvm.Swin_V2_S_Weights, tvm.Swin_V2_B_Weights, tvv.Swin3D_T_Weights, tvv.Swin3D_S_Weights,
             tvv.Swin3D_B_Weights]
    weights = {w.url: w for enum in enums for w in enum}
    ours = [get_pretrained(n) for n in core.list_pretrained("*.tv_*")]
    assert {e.url for e in ours} == set(weights)
    for e in ours:
        w = weights[e.url]
        metrics = next(iter(w.meta["_metrics"].values()))
        assert (e.top1, e.top5) == (metrics["acc@1"], metrics["acc@5"]), e.name
        assert e.num_classes == len(w.meta["categories"]) and dl.hash_prefix(e.file_name), e.name
        t = w.transforms()
        crop = t.crop_size if isinstance(t.crop_size, list) else [t.crop_size]
        assert list(e.input_size[-2:]) == [crop[0]] * 2 and [e.resize_size] == list(t.resize_size), e.name
        assert e.overrides == {"compat": "torchvision"}


def _official_video(sd: dict) -> dict:
    """Our state dict in the official Video Swin layout (mmaction2: backbone.*, merging at the end of a stage)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("head.fc."):
            out["cls_head.fc_cls." + k[len("head.fc."):]] = v
            continue
        if m := re.match(r"layers\.(\d+)\.downsample\.(.*)", k):
            k = f"layers.{int(m.group(1)) - 1}.downsample.{m.group(2)}"
        out["backbone." + k] = v
    return out


class _Config:
    """Stands for a training config pickled into a checkpoint (the official ones carry such objects)."""
    loaded = False

    def __setstate__(self, state):
        _Config.loaded = True  # would run if the checkpoint were unpickled without restrictions


def test_a_checkpoint_that_pickles_objects_is_refused_and_nothing_runs(tmp_path):
    from core.hub.files import read_checkpoint
    cfg = _Config()
    cfg.__dict__["lr"] = 1e-3
    torch.save({"config": cfg, "model": {"w": torch.zeros(2)}}, tmp_path / "official.pth")
    with pytest.raises(HubError, match=r"pickles objects other than tensors .*_Config.*refused without running"):
        read_checkpoint(str(tmp_path / "official.pth"))
    assert not _Config.loaded


def test_end_to_end_a_video_swin_checkpoint_by_name(hub, monkeypatch):
    name = "video_swin_t.ms_in1k_ft_k400"
    entry = _add(monkeypatch, dataclasses.replace(get_pretrained(name), overrides=TINY_VIDEO))  # a small stand-in
    ref = core.create_model("video_swin_t", num_classes=400, **TINY_VIDEO).eval()
    official = {"meta": {"config": "model = dict(...)", "epoch": 30}, "state_dict": _official_video(ref.state_dict())}
    hub.files[_path(entry.url)] = _saved(official)
    model = core.create_model(name, pretrained=True, progress=False).eval()
    x = torch.randn(1, 3, 4, 16, 16)
    assert torch.equal(model(x), ref(x))
    assert model.pretrained_cfg["labels"] == "kinetics-400" and len(core.class_names(name)) == 400
    # the same weights by arch + tag: a cache hit; another class count: the backbone with a fresh head
    other = core.create_model("video_swin_t", pretrained="ms_in1k_ft_k400", num_classes=10, progress=False)
    assert len(hub.hits) == 1 and other.head.fc.out_features == 10
    assert torch.equal(other.state_dict()["norm.weight"], ref.state_dict()["norm.weight"])


def test_imagenet_22k_weights_with_1000_classes_keep_the_1k_rows(hub, monkeypatch):
    entry = _add(monkeypatch, Pretrained("tiny_swin.ms_in22k", "swin_t", "Swin", "microsoft/Swin-Transformer",
                                         url="https://github.com/x/tiny_22k.pth", overrides=TINY_2D, num_classes=21841,
                                         labels="imagenet-22k"))
    ref = core.create_model("swin_t", num_classes=21841, **TINY_2D)
    hub.files[_path(entry.url)] = _saved({"model": ref.state_dict()})
    model = core.create_model(entry.name, pretrained=True, num_classes=1000, progress=False)
    rows = list(core.hub.imagenet_22k_to_1k())
    assert torch.equal(model.head.fc.weight, ref.head.fc.weight[rows])
    assert torch.equal(model.head.fc.bias, ref.head.fc.bias[rows])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_t.tv_in1k", "swin_v2_t.tv_in1k", "video_swin_t.tv_in1k_ft_k400"])
def test_a_torchvision_entry_reproduces_torchvision(hub, monkeypatch, name):
    import torchvision.models as tvm

    entry = get_pretrained(name)
    builder = {"swin_t": tvm.swin_t, "swin_v2_t": tvm.swin_v2_t, "video_swin_t": tvm.video.swin3d_t}[entry.arch]
    ref = builder().eval()
    body = _saved(ref.state_dict())
    url = re.sub(r"-[0-9a-f]{8}\.pth$", f"-{hashlib.sha256(body).hexdigest()[:8]}.pth", entry.url)
    _add(monkeypatch, dataclasses.replace(entry, url=url))  # random weights, so their own hash in the name
    hub.files[_path(url)] = body
    model = core.create_model(name, pretrained=True, progress=False).eval()
    # video: the window shrinks along time only (where torchvision's 3D index slicing is right, see README)
    x = torch.randn(1, 3, 4, 224, 224) if entry.task == "video" else torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() < 1e-4


def test_a_file_of_another_family_is_the_loaders_error(hub, monkeypatch):
    entry = _add(monkeypatch, Pretrained("tiny_mlp.ms_test", "swin_mlp_t_c24", "Swin-MLP", "microsoft/Swin-Transformer",
                                         url="https://github.com/x/tiny_mlp.pth", overrides=TINY_2D, num_classes=5))
    hub.files[_path(entry.url)] = _saved({"model": core.create_model("swin_t", num_classes=5, **TINY_2D).state_dict()})
    with pytest.raises(ValueError) as e:
        core.create_model(entry.name, pretrained=True, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"pretrained tiny_mlp.ms_test ({dl.cache_path(entry.name)}): checkpoint (")
    assert "does not fit SwinMLP" in msg and "missing keys: layers.0.blocks.0.spatial_mlp" in msg
    assert "unexpected keys:" in msg and "relative_position_bias_table" in msg


def test_create_model_resolves_names_archs_and_tags(monkeypatch):
    from core.nn.model import SwinTransformer
    monkeypatch.setattr(SwinTransformer, "_init_weights", staticmethod(lambda m: None))  # shapes only: fast
    with torch.device("meta"):
        plain = core.create_model("swin_t")
        untrained = core.create_model("swin_v2_l_w16.ms_in22k_ft_in1k")  # a tag, pretrained=False: the architecture
        arch = core.create_model("swin_v2_l_w12", num_classes=0)  # a hub arch that is not a registered model
    assert not hasattr(plain, "pretrained_cfg")
    assert untrained.embed_dim == 192 and untrained.window_size == (16, 16)
    assert untrained.pretrained_cfg["overrides"]["pretrained_window_sizes"] == (12, 12, 12, 6)
    assert arch.window_size == (12, 12) and arch.num_classes == 0
    assert get_pretrained("swin_t").name == "swin_t.ms_in1k" and get_pretrained("video_swin_b").name == (
        "video_swin_b.ms_in1k_ft_k400")
    with pytest.raises(ValueError, match="give the tag once"):
        core.create_model("swin_t.ms_in1k", pretrained="tv_in1k")


def test_pretrained_cfg_and_list():
    cfg = core.pretrained_cfg("video_swin_b_w16.ms_in22k_ft_k400_ft_ssv2")
    assert cfg["url"].endswith("/v1.0.4/swin_base_patch244_window1677_sthv2.pth")
    assert (cfg["labels"], cfg["num_classes"], cfg["clip_len"], cfg["frame_interval"]) == (
        "something-something-v2", 174, 32, 2)
    assert cfg["overrides"] == {"window_size": (16, 7, 7)} and cfg["top1"] == 69.6
    hub_cfg = core.pretrained_cfg("swin_v2_b_w12.simmim_in22k_500k")
    assert hub_cfg["url"] is None and hub_cfg["hf_hub_id"] == "zdaxie/SimMIM" and hub_cfg["labels"] is None
    assert core.list_pretrained("swin_mlp_*") == [f"swin_mlp_{s}.ms_in1k" for s in ("b", "t_c12", "t_c24", "t_c6")]
    families = {}
    for n in core.list_pretrained():
        families[get_pretrained(n).family] = families.get(get_pretrained(n).family, 0) + 1
    assert families == {"Swin": 20, "Swin V2": 15, "Swin-MLP": 4, "Video Swin": 11, "MoBY": 2, "SimMIM": 49}


# --- labels and the zoo table ---------------------------------------------------------------------------------

def test_label_sets():
    sizes = {"imagenet-1k": 1000, "imagenet-22k": 21841, "kinetics-400": 400, "kinetics-600": 600,
             "something-something-v2": 174}
    for label_set, n in sizes.items():
        names = core.class_names(label_set)
        assert len(names) == n, label_set
        assert len(set(names)) == n or label_set == "imagenet-22k", label_set  # 22K names repeat (crane, ...)
    assert core.class_names("imagenet-1k")[:2] == ["tench", "goldfish"]
    assert core.class_names("kinetics-400")[0] == "abseiling"
    assert core.class_names("kinetics-600")[-1] == "zumba" and "zumba" in core.class_names("kinetics-400")
    ssv2 = core.class_names("something-something-v2")
    assert ssv2[0] == "Approaching something with your camera"
    assert ssv2[100] == "Pushing something so that it slightly moves"
    assert len(core.class_names("swin_l.ms_in22k")) == 21841
    # Swin's 22K rows: its map22kto1k.txt (microsoft/Swin-Transformer data/), whose SHA-256 over the space-joined
    # indices is this
    rows = core.hub.imagenet_22k_to_1k()
    assert rows[:5] == (359, 368, 460, 475, 486)
    assert hashlib.sha256(" ".join(map(str, rows)).encode()).hexdigest() == (
        "64b3af4e3db74a16582f3a6f63295b72ecc6c31ba0df2b84c811177c61765088")
    names_22k = core.class_names("imagenet-22k")
    assert names_22k[rows[0]].startswith("tench") and names_22k[rows[1]].startswith("goldfish")
    with pytest.raises(ValueError, match="no classifier"):
        core.class_names("swin_t.moby_in1k_300ep")


def test_zoo_table_is_current():
    text = core.hub.zoo_table()
    assert (Path(__file__).resolve().parent.parent / "docs" / "zoo.md").read_text() == text, (
        "docs/zoo.md is stale: run python -m core.hub")
    assert "`python -m video_swin.predict CLIP --model video_swin_t.ms_in1k_ft_k400`" in text
    assert "`python -m core.predict IMAGE --model swin_t.ms_in1k`" in text
    assert "`--opt model.pretrained=swin_t.moby_in1k_300ep`" in text
    assert text.count("\n| `") == len(core.list_pretrained())


# ----------------------------------------------------------------------------------------------- names in commands
def _clip(path):
    import numpy as np

    from core.video.synthetic import render_clip, write_mp4
    write_mp4(path, render_clip(np.random.default_rng(0), "left", 16, 32))
    return str(path)


def test_video_predict_by_name_prints_kinetics_class_names(hub, monkeypatch, tmp_path, capsys):
    """`python -m video_swin.predict CLIP --model <K400 name>` with no --checkpoint: downloaded from the (loopback)
    mirror, the release's recipe, Kinetics-400 names (a small stand-in file of the release's layout)."""
    from cli import predict
    name = "video_swin_t.ms_in1k_ft_k400"
    entry = _add(monkeypatch, dataclasses.replace(get_pretrained(name), overrides=TINY_VIDEO,
                                                  input_size=(3, 8, 32, 32), test_views="1x1"))
    ref = core.create_model("video_swin_t", num_classes=400, **TINY_VIDEO)
    hub.files[_path(entry.url)] = _saved({"state_dict": _official_video(ref.state_dict())})
    monkeypatch.chdir(tmp_path)
    assert predict.main([_clip(tmp_path / "clip.mp4"), "--model", name, "--workers", "0", "--topk", "3"]) == 0
    out = capsys.readouterr().out
    names = re.findall(r"([a-z][a-z ()'-]+) \d+\.\d%", out.split(": ", 1)[1])
    assert len(names) == 3 and set(names) <= set(core.class_names("kinetics-400")), out
    assert not (tmp_path / "outputs").exists()


def test_model_pretrained_by_name_fine_tunes_onto_other_classes(hub, monkeypatch, tmp_path):
    """A recipe naming registered weights (1000 classes) trains digits (10): downloaded once, the head replaced."""
    from cli.train import main_image as main
    from helpers import DIGITS, TINY_ENGINE, TINY_OPT
    entry = _add(monkeypatch, Pretrained("tiny_swin.test_in1k", "swin_t", "Swin", "microsoft/Swin-Transformer",
                                         url="https://github.com/x/tiny_in1k.pth", overrides=TINY_ENGINE))
    hub.files[_path(entry.url)] = _saved({"model": core.create_model("swin_t", num_classes=1000,
                                                                     **TINY_ENGINE).state_dict()})
    out = tmp_path / "run"
    assert main(["--config", DIGITS, "--output-dir", str(out), "--opt", TINY_OPT, "model.pretrained=tiny_swin.test_in1k",
                 "train.epochs=1", "train.max_iters_per_epoch=2", "data.img_size=16", "train.progress=false",
                 "train.tensorboard=false", "sched.warmup_epochs=0"]) == 0
    log = (out / "log.txt").read_text()
    assert "initial weights: tiny_swin.test_in1k" in log and "new classifier head" in log
    assert main(["--config", DIGITS, "--output-dir", str(tmp_path / "bad"), "--opt", TINY_OPT,
                 "model.pretrained=swin_t.in1k", "train.epochs=1"]) == 2


@pytest.mark.slow
def test_video_predict_by_name_with_the_full_size_release(hub, monkeypatch, tmp_path, capsys):
    """The real entry (Video Swin-T, 32x2 frames at 224, its 4x3 views) from a file of the release's size and
    layout (random weights: the names, not the scores, are checked)."""
    from cli import predict
    name = "video_swin_t.ms_in1k_ft_k400"
    entry = get_pretrained(name)
    ref = core.create_model(entry.model, num_classes=400, **entry.overrides)
    hub.files[_path(entry.url)] = _saved({"state_dict": _official_video(ref.state_dict())})
    assert predict.main([_clip(tmp_path / "clip.mp4"), "--model", name, "--workers", "0", "--views", "1x1"]) == 0
    names = re.findall(r"([a-z][a-z ()'-]+) \d+\.\d%", capsys.readouterr().out.split(": ", 1)[1])
    assert names and set(names) <= set(core.class_names("kinetics-400"))
