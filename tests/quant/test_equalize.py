"""Activation equalization (QuantConfig(equalize=True), qasic.quant.equalize) on a small
MobileNetV2-shaped net whose BN gains make its channels' ranges differ by up to 300x."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.models.mobilenet import ConvBNReLU6, InvertedResidual
from qasic.quant import QuantConfig, capture, quantize
from qasic.quant.calibrate import encode_activations, prepare
from qasic.quant.equalize import MIN_SCALE, components, equalize
from qasic.quant.evaluate import cosine, run_dequantized
from qasic.quant.fgraph import FGraph, FNode, run_float


def _net() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(ConvBNReLU6(3, 8, stride=2), InvertedResidual(8, 8, 1, 2),
                        InvertedResidual(8, 12, 2, 2), InvertedResidual(12, 12, 1, 2),
                        ConvBNReLU6(12, 16, kernel=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(16, 5)).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):  # per-channel gains from 0.01 to 3
                m.weight.copy_(torch.exp(torch.empty(m.num_features).uniform_(-4.6, 1.1)))
                m.bias.uniform_(-0.5, 1.0)
    return net


@pytest.fixture(scope="module")
def setup():
    net = _net()
    rng = np.random.default_rng(0)
    cal, test = (rng.normal(size=(n, 3, 16, 16)).astype(np.float32) for n in (64, 64))
    graph = prepare(capture(net, torch.from_numpy(cal[:1]), "tiny_mnv2"))
    x = graph.to_internal(cal)
    return net, graph, cal, test, x, run_float(graph, x, keep=True)


def test_components_are_the_streams_and_the_block_activations(setup):
    _, graph, _, _, _, values = setup
    comps = components(graph)
    ops = [sorted({graph.producer(t).op for t in c}) for c in comps]
    assert all(graph.input not in c and graph.output not in c for c in comps)
    # the residual stream of the 12-channel stage: two project convs and their add
    assert ["add", "conv2d"] in ops
    stream = comps[ops.index(["add", "conv2d"])]
    assert len(stream) == 3 and {values[t].shape[-1] for t in stream} == {12}
    # the stem's ReLU6 output is the first block's residual input: one stream with its add
    assert ["add", "clamp", "conv2d"] in ops
    # expand and depthwise outputs with their ReLU6; the head's ReLU6 through the pool to fc
    assert ops.count(["clamp", "conv2d"]) == 6
    assert ["avgpool2d", "clamp", "conv2d", "reshape"] in ops


def test_the_float_model_is_unchanged_on_the_calibration_batch(setup):
    _, graph, _, _, x, values = setup
    eq, scales = equalize(graph, values)
    assert scales and all(np.all((s > 0) & (s <= 1) & (s >= MIN_SCALE))
                          for s in scales.values())
    new = run_float(eq, x, keep=True)
    np.testing.assert_allclose(new[graph.output], values[graph.output], rtol=1e-9, atol=1e-9)
    for t, s in scales.items():  # each tensor of a component divided by its channel factors
        np.testing.assert_allclose(new[t], values[t] / s, rtol=1e-9, atol=1e-9)


def test_relu6_bounds_stay_above_every_calibration_value(setup):
    """A ReLU6 in a rescaled component clamps channel c at 6 s_c in the old units: at or above
    the largest value the channel reaches on the calibration batch (so nothing above changes)."""
    _, graph, _, _, _, values = setup
    _, scales = equalize(graph, values)
    clamps = [n for n in graph.nodes if n.op == "clamp" and n.output in scales]
    assert clamps
    for n in clamps:
        reach = values[n.output].reshape(-1, values[n.output].shape[-1]).max(axis=0)
        assert np.all(n.attrs["max"] * scales[n.output] >= reach - 1e-12), n.name


def test_per_tensor_activations_lose_less(setup):
    """A8 activations (min-max; the logits left float), float weights: the output error of the
    fake-quantized model falls from 1 - cosine 2.9e-5 to 4.7e-6 (measured). The golden
    reference's W8A8 stays as close to fp32 (2.7e-5; 1.9e-5 without): the columns scaled down
    in full consumers round coarser with nearest rounding, the trade ALPHA balances."""
    _, graph, cal, test, x, values = setup
    eq, _ = equalize(graph, values)
    xt = graph.to_internal(test)
    fp32 = run_float(graph, xt)
    losses = []
    for g in (graph, eq):
        acts = encode_activations(g, run_float(g, x, keep=True), QuantConfig())
        del acts[g.output]
        losses.append(1 - cosine(run_float(g, xt, activations=acts), fp32))
    assert losses[1] < 0.3 * losses[0]
    ref = quantize(graph, None, cal, QuantConfig(equalize=True))
    assert 1 - cosine(run_dequantized(ref, test), fp32) < 1e-4


def test_a_nonlinear_reader_or_a_graph_edge_keeps_a_tensor_alone():
    w = np.ones((4, 4))
    lin = [FNode(f"fc{i}", "linear", (src,), f"fc{i}", {}, {"weight": w, "bias": np.zeros(4)})
           for i, src in enumerate(("x", "fc0", "t", "fc2"))]
    lut = FNode("t", "lut", ("fc1",), "t", {"fn": "tanh"})
    nodes = (lin[0], lin[1], lut, lin[2], lin[3])
    g = FGraph("g", "x", "fc3", nodes, {n: (4,) for n in ("x", "fc0", "fc1", "t", "fc2", "fc3")})
    # fc0 -> fc1 qualifies; fc1 is read by the lut, t made by it; fc2 -> fc3 but fc3 is the output
    assert components(g) == [["fc0"], ["fc2"]]


def test_searched_strength_is_the_least_lossy_per_component(setup):
    """equalize_alpha="search": each component with a full consumer takes the strength of
    SEARCH_ALPHAS whose consumers' quantized outputs lose least; depthwise-only ones keep
    ALPHA (their factor is m_c / r whatever the strength)."""
    from qasic.quant.equalize import ALPHA, SEARCH_ALPHAS, _consumer_loss, _scales, search_alpha

    _, graph, _, _, _, values = setup
    searched = 0
    for comp in components(graph):
        a = search_alpha(graph, comp, values)
        full = [u for t in comp for u in graph.users(t)
                if u.op in ("conv2d", "linear") and u.params["weight"].shape[-1] != 1]
        if not full:
            assert a == ALPHA
            continue
        searched += 1
        assert a in SEARCH_ALPHAS
    assert searched >= 3
    # by hand on one consumer: the loss of the chosen strength is the least
    comp = next(c for c in components(graph)
                if any(u.op == "linear" for t in c for u in graph.users(t)))
    fc = next(u for t in comp for u in graph.users(t) if u.op == "linear")
    assert [u.name for t in comp for u in graph.users(t) if u.op in ("conv2d", "linear")] \
        == [fc.name]  # the head's ReLU6 through the pool: the classifier alone reads it
    ones = np.ones(values[fc.inputs[0]].shape[-1])
    losses = [_consumer_loss(fc, values[fc.inputs[0]],
                             ones if a == 0 else _scales(graph, comp, values, a), 8, 8)
              for a in SEARCH_ALPHAS]
    assert search_alpha(graph, comp, values) == SEARCH_ALPHAS[int(np.argmin(losses))]


def test_searched_equalization_keeps_the_float_model_and_quantizes(setup):
    _, graph, cal, test, x, values = setup
    eq, _ = equalize(graph, values, "search")
    np.testing.assert_allclose(run_float(eq, x), values[graph.output], rtol=1e-9, atol=1e-9)
    ref = quantize(graph, None, cal, QuantConfig(equalize=True, equalize_alpha="search"))
    fp32 = run_float(graph, graph.to_internal(test))
    assert 1 - cosine(run_dequantized(ref, test), fp32) < 1e-4


@pytest.mark.parametrize("alpha", [-0.1, 1.5, "auto", True])
def test_bad_equalize_alpha_is_refused(alpha):
    from qasic.errors import ConfigError

    with pytest.raises(ConfigError, match="equalize_alpha"):
        QuantConfig(equalize=True, equalize_alpha=alpha)


def test_cli_takes_the_strength_and_fisher_gptq(quantize_configs, capsys):
    import json

    from qasic.cli import main

    seen = quantize_configs
    assert main(["quantize", "--equalize", "--equalize-alpha", "search", "--weight-rounding",
                 "gptq_fisher", "--bias-correction", "--json"]) == 0
    assert (seen[-1].equalize_alpha, seen[-1].weight_rounding) == ("search", "gptq_fisher")
    assert json.loads(capsys.readouterr().out)["accuracy"] > 0.95
    assert main(["quantize", "--equalize", "--equalize-alpha", "0.25"]) == 0
    assert seen[-1].equalize_alpha == 0.25
    capsys.readouterr()
    assert main(["quantize", "--equalize-alpha", "strong"]) == 1
    assert "--equalize-alpha 'strong'" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_a_stream_passes_through_resizes(mode):
    """A U-Net decoder's conv -> ReLU -> upsample -> conv: every resize is linear per channel,
    so the upsampled map shares its producer's channel scaling (one component) and the float
    model is unchanged."""
    torch.manual_seed(0)
    size = {"nearest": (16, 16), "bilinear": (16, 16), "bicubic": (12, 10)}[mode]
    net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.Upsample(size=size, mode=mode), nn.Conv2d(6, 4, 3, padding=1)).eval()
    with torch.no_grad():
        net[1].weight.copy_(torch.exp(torch.linspace(-4.0, 1.0, 6)))
    x = np.random.default_rng(1).normal(size=(8, 3, 8, 8)).astype(np.float32)
    graph = prepare(capture(net, torch.from_numpy(x[:1]), "up"))
    values = run_float(graph, graph.to_internal(x), keep=True)
    ops = [sorted({graph.producer(t).op for t in c}) for c in components(graph)]
    resize = next(n.op for n in graph.nodes if n.op.startswith(("upsample", "resize")))
    assert [o for o in ops if resize in o] == [sorted({"conv2d", "relu", resize})]
    eq, scales = equalize(graph, values)
    up = next(n.output for n in graph.nodes if n.op == resize)
    assert up in scales and np.ptp(scales[up]) > 0
    new = run_float(eq, graph.to_internal(x), keep=True)
    np.testing.assert_allclose(new[graph.output], values[graph.output], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(new[up], values[up] / scales[up], rtol=1e-9, atol=1e-9)
