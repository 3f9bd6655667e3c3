"""torch.compile: one graph, no graph breaks, no recompiles on repeated calls; compiled == eager."""
import torch
import torch._dynamo as dynamo

from core import create_model
from helpers import TINY_MODEL as TINY


def test_model_traces_as_one_graph():
    model = create_model("swin_t", **TINY).eval()
    explained = dynamo.explain(model)(torch.randn(1, 3, 30, 26))
    assert explained.graph_count == 1 and explained.graph_break_count == 0


def test_no_recompiles_and_same_outputs():
    dynamo.reset()
    dynamo.utils.counters.clear()
    model = create_model("video_swin_t", **TINY | {"window_size": (2, 4, 4)}).eval()
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    x = torch.randn(2, 3, 6, 30, 26)
    with torch.no_grad():
        outs = [compiled(x) for _ in range(3)]
        ref = model(x)
    assert dynamo.utils.counters["stats"]["unique_graphs"] == 1
    for out in outs:
        assert torch.allclose(out, ref, atol=1e-5)
