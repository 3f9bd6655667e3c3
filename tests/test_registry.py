"""The contract every registered model keeps (a new variant is covered without new tests): forward and backward,
a gradient for every parameter, activation checkpointing changes nothing, one compiled graph."""
from __future__ import annotations

import pytest
import torch
import torch._dynamo as dynamo

from core import create_model, list_models
from helpers import tiny_input, tiny_kwargs

NAMES = list_models()


def test_every_method_package_registered_its_models():
    assert {"swin_t", "video_swin_t", "swin_mlp_t_c24", "video_swin_mlp_t"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = create_model(name, **tiny_kwargs(name), drop_path_rate=0.1).train()
    x = tiny_input(name)
    out = model(x)
    assert out.shape == (2, 3) and torch.isfinite(out).all()
    out.square().mean().backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not no_grad, f"{name}: no (finite) gradient for {no_grad}"
    assert all(float(p.grad.abs().sum()) > 0 for p in model.parameters()), name


@pytest.mark.parametrize("name", NAMES)
def test_activation_checkpointing_changes_nothing(name):
    torch.manual_seed(0)
    model = create_model(name, **tiny_kwargs(name), drop_path_rate=0.0).train()
    x = tiny_input(name)
    results = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        torch.manual_seed(1)  # the same dropout draws in both passes
        out = model(x)
        out.square().mean().backward()
        results.append((out.detach(), [p.grad.clone() for p in model.parameters()]))
    (a, ga), (b, gb) = results
    assert torch.equal(a, b)
    for g1, g2 in zip(ga, gb):
        torch.testing.assert_close(g1, g2, rtol=1e-5, atol=1e-7)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_traces_as_one_graph(name):
    model = create_model(name, **tiny_kwargs(name)).eval()
    explained = dynamo.explain(model)(tiny_input(name, batch=1))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, name


@pytest.mark.parametrize("name", [n for n in NAMES if tiny_input(n).ndim == 5])
def test_a_head_that_keeps_time_sees_the_order_of_events(name):
    """head_time_bins: the space-averaged features of each time bin side by side, earliest first (the adaptive
    average over T' for any clip length); a clip played backwards gives other logits than the global average's."""
    torch.manual_seed(0)
    model = create_model(name, **tiny_kwargs(name), head_time_bins=2).eval()
    x = tiny_input(name)
    feats = model.forward_features(x)                                      # (B, T', H', W', C)
    per_t = feats.mean((2, 3))
    t = per_t.shape[1]
    bins = [per_t[:, (i * t) // 2:-((-(i + 1) * t) // 2)].mean(1) for i in range(2)]
    torch.testing.assert_close(model.forward_head(feats, pre_logits=True), torch.cat(bins, 1))
    assert model.head.fc.in_features == 2 * model.num_features == model.head.out_features
    model.reset_classifier(5)
    assert model.head.time_bins == 2 and model(x).shape == (2, 5)
