"""torch.export (.pt2) and ONNX exports of Swin, Swin-MLP and Video Swin give eager's outputs on fresh inputs."""
import pytest
import torch

from cli.export import main
from core import create_model
from core.export import export
from helpers import randomize_, tiny_kwargs

TOL = 1e-4
# one per family; sizes not divisible by the window (padding, masks and shrunk windows are exercised)
MODELS = {"swin_t": (3, 36, 28), "swin_mlp_t_c24": (3, 36, 28), "video_swin_t": (3, 6, 36, 28)}


def tiny(name):
    torch.manual_seed(0)
    return randomize_(create_model(name, **tiny_kwargs(name))).eval()


def eager(model, x):
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("name", list(MODELS))
def test_pt2_dynamic_batch(name, tmp_path):
    model = tiny(name)
    path = export(model, "pt2", tmp_path / "m.pt2", (1, *MODELS[name]), dynamic_batch=True)
    loaded = torch.export.load(str(path)).module()
    for batch in (1, 3):
        x = torch.randn(batch, *MODELS[name])
        y = eager(model, x)
        assert y.abs().mean() > 1e-3
        assert (loaded(x) - y).abs().max() < TOL


@pytest.mark.parametrize("name", list(MODELS))
def test_onnx_dynamic_batch(name, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    model = tiny(name)
    path = export(model, "onnx", tmp_path / "m.onnx", (2, *MODELS[name]), dynamic_batch=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (2, 5):
        x = torch.randn(batch, *MODELS[name])
        (y,) = session.run(None, {"input": x.numpy()})
        assert (torch.from_numpy(y) - eager(model, x)).abs().max() < TOL


def test_exported_size_is_fixed(tmp_path):
    """An export runs at exactly its traced size: pt2 refuses another batch (without --dynamic-batch) or spatial size."""
    model = tiny("swin_t")
    loaded = torch.export.load(str(export(model, "pt2", tmp_path / "m.pt2", (2, 3, 36, 28)))).module()
    x = torch.randn(2, 3, 36, 28)
    assert (loaded(x) - eager(model, x)).abs().max() < TOL
    for shape in ((3, 3, 36, 28), (2, 3, 40, 28)):
        with pytest.raises(Exception, match="shape|size|Expected"):
            loaded(torch.randn(*shape))


def test_cli_from_checkpoint(tmp_path, capsys):
    """python -m core.export: a run-style checkpoint (weights + recipe) -> a .pt2 that runs at the traced size."""
    model = tiny("video_swin_t")
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in tiny_kwargs("video_swin_t").items()}
    kw.pop("num_classes")
    ckpt = tmp_path / "best.pth"
    torch.save({"model": model.state_dict(), "config": {"model": {"name": "video_swin_t", "kwargs": kw}}}, ckpt)
    out = tmp_path / "v.pt2"
    assert main(["video_swin_t", "--checkpoint", str(ckpt), "--format", "pt2", "--input", "1", "3", "6", "36", "28",
                 "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    x = torch.randn(1, 3, 6, 36, 28)
    assert (torch.export.load(str(out)).module()(x) - eager(model, x)).abs().max() < TOL


def test_cli_takes_model_and_input_size_from_the_recipe(tmp_path, capsys):
    """Without MODEL and --input: the recipe's model.name and its trained size (crop_size, clip_len)."""
    model = tiny("video_swin_t")
    kw = {k: list(v) if isinstance(v, tuple) else v for k, v in tiny_kwargs("video_swin_t").items()}
    kw.pop("num_classes")
    ckpt = tmp_path / "best.pth"
    recipe = {"model": {"name": "video_swin_t", "kwargs": kw}, "data": {"crop_size": 24, "clip_len": 4}}
    torch.save({"model": model.state_dict(), "config": recipe}, ckpt)
    assert main(["--checkpoint", str(ckpt), "--format", "pt2"]) == 0
    assert "input 1 x 3 x 4 x 24 x 24" in capsys.readouterr().out
    x = torch.randn(1, 3, 4, 24, 24)
    exported = torch.export.load(str(tmp_path / "video_swin_t_pt2.pt2")).module()
    assert (exported(x) - eager(model, x)).abs().max() < TOL
    assert main(["swin_t", "--checkpoint", str(ckpt), "--format", "onnx"]) == 2
    assert "the checkpoint is a 'video_swin_t' (its recipe's model.name), not 'swin_t'" in capsys.readouterr().err


def test_cli_bad_input_fails_fast(tmp_path, capsys):
    model = tiny("swin_t")
    ckpt = tmp_path / "best.pth"
    torch.save({"model": model.state_dict()}, ckpt)
    kw = "{embed_dim: 32, depths: [2, 2], num_heads: [1, 2], window_size: 4}"
    assert main(["swin_t", "--checkpoint", str(ckpt), "--format", "onnx", "--kwargs", kw,
                 "--input", "1", "3", "6", "36", "28"]) == 2
    assert "expected a 4-d input" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["swin_t", "video_swin_t"])
def test_onnx_graph_holds_masks_and_bias_as_constants(name, tmp_path):
    """Masks, index tables and the folded bias are initializers: no ops that build them (Range, If, ScatterND, the
    mask's comparisons) and no gather from the bias tables."""
    onnx = pytest.importorskip("onnx")
    path = export(tiny(name), "onnx", tmp_path / "m.onnx", (2, *MODELS[name]), dynamic_batch=True)
    graph = onnx.load(str(path)).graph
    assert not {n.op_type for n in graph.node} & {"Range", "If", "ScatterND", "Equal", "Not", "Where"}
    assert not [i.name for i in graph.initializer if "relative_position" in i.name]


def test_pt2_graph_holds_masks_and_bias_as_constants(tmp_path):
    model = tiny("video_swin_t")
    program = torch.export.load(str(export(model, "pt2", tmp_path / "m.pt2", (1, *MODELS["video_swin_t"]))))
    ops = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert not [op for op in ops if any(w in op for w in ("arange", "index", "ne.", "eq.", "scatter"))], ops
    assert program.constants  # the folded bias + mask of each block


def test_unreadable_or_unsafe_checkpoint_is_one_line(tmp_path, capsys):
    import pickle

    from cli import export as cli

    class Evil:
        def __reduce__(self):
            return (print, ("this must not run",))

    (tmp_path / "random.pth").write_bytes(bytes(range(256)) * 8)
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"model": Evil()}, f)
    for name, expected in (("random.pth", "cannot read checkpoint"), ("evil.pth", "refused without running them"),
                           ("missing.pth", "checkpoint not found")):
        assert cli.main(["--format", "pt2", "--checkpoint", str(tmp_path / name)]) == 2
        err = capsys.readouterr()
        assert expected in err.err and "Traceback" not in err.err and len(err.err.strip().splitlines()) == 1
        assert "this must not run" not in err.out and "weights_only=False" not in err.err
