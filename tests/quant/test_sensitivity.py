"""Sensitivity methods against exact or hand-computed values on small models and tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qasic.errors import ConfigError
from qasic.quant import QuantConfig, capture, run_float
from qasic.quant import sensitivity as S


@pytest.fixture(scope="module")
def tiny():
    """Linear(4, 5) - ReLU - Linear(5, 3), a batch of 64 and random labels."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).eval()
    x = torch.randn(64, 4)
    y = torch.randint(0, 3, (64,))
    return model, x, y


@pytest.fixture(scope="module")
def graph(tiny):
    return capture(tiny[0], tiny[1][:1])


def exact_traces(model, x, y):
    """Tr of each weight's diagonal Hessian block, from the full Hessian (float64)."""
    l1, l2 = model[0], model[2]
    b1, b2, xd = l1.bias.double(), l2.bias.double(), x.double()

    def loss(w1, w2):
        return F.cross_entropy(F.linear(F.relu(F.linear(xd, w1, b1)), w2, b2), y)

    h = torch.autograd.functional.hessian(loss, (l1.weight.double(), l2.weight.double()))
    return [float(torch.diagonal(h[i][i].reshape(w.numel(), w.numel())).sum())
            for i, w in enumerate((l1.weight, l2.weight))]


def test_hutchinson_matches_the_exact_hessian_trace(tiny, graph):
    model, x, y = tiny
    assert [n.name for n in graph.weighted_nodes()] == ["0", "2"]
    est = S.hessian_traces(graph, x, y.numpy(), n_iter=2000, seed=0)
    exact = exact_traces(model, x, y)
    assert min(exact) > 0
    np.testing.assert_allclose([est["0"], est["2"]], exact, rtol=0.05)
    # seeded: the same numbers again
    assert S.hessian_traces(graph, x, y.numpy(), n_iter=5, seed=3) == \
        S.hessian_traces(graph, x, y.numpy(), n_iter=5, seed=3)


def test_torch_forward_equals_run_float(tiny, graph):
    x = tiny[1]
    xi = graph.to_internal(x.numpy())
    out = S.torch_forward(graph, torch.from_numpy(xi), {})
    np.testing.assert_allclose(out.numpy(), run_float(graph, xi), rtol=1e-12, atol=1e-12)


def test_hawq_is_trace_per_weight_times_quantization_error(tiny, graph):
    _, x, y = tiny
    scores = S.hawq_sensitivity(graph, x, y.numpy(), bits=(2, 8), n_iter=20)
    traces = S.hessian_traces(graph, x, y.numpy(), n_iter=20)
    w = graph.node("2").params["weight"]
    assert scores["2"][2] == pytest.approx(traces["2"] / w.size * S.weight_error(w, 2))
    assert scores["2"][2] > scores["2"][8] > 0


def test_lim_by_hand():
    # one feature each: LIM = -cos^2 of the centred columns
    x = np.array([[0.0], [1.0], [2.0]])   # centred (-1, 0, 1)
    y = np.array([[0.0], [0.0], [3.0]])   # centred (-1, -1, 2)
    # Gram inner product (x.y)^2 = 9, Gram norms |x|^2 = 2 and |y|^2 = 6: cos = 9 / 12
    assert S.lim(x, y) == pytest.approx(-0.75)
    # a scaled, shifted copy does nothing new: -1; an unrelated output: 0
    assert S.lim(x, 3 * x + 7) == pytest.approx(-1.0)
    a = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    b = np.array([[1.0], [1.0], [-1.0], [-1.0]])
    assert S.lim(a, b) == pytest.approx(0.0)
    # widths may differ (4 -> 2 features), images are flattened per sample
    rng = np.random.default_rng(0)
    u = rng.normal(size=(5, 2, 2))
    assert S.lim(u, u.reshape(5, 4) @ rng.normal(size=(4, 2))) < 0
    assert S.lim(np.ones((3, 2)), x) == -1.0  # nothing varies: counted as no change


def test_zd_by_hand():
    # mean 2, std 4: |z| = 0.5, 0.5, 0.5, 0.5, 2 -> one of five beyond 1
    assert S.zd(np.array([0.0, 0.0, 0.0, 0.0, 10.0])) == pytest.approx(0.2)
    assert S.zd(np.array([-1.0, 1.0])) == 0.0  # |z| = 1 exactly is not > 1
    assert S.zd(np.full((3, 3), 2.5)) == 0.0
    assert S.zd(np.array([[-3.0, 0.0], [0.0, 3.0], [0.0, 0.0]])) == pytest.approx(2 / 6)


def test_ranked_sensitivity_orders_layers(tiny, graph):
    x = tiny[1]
    assert S.importance_ranks({"a": 0.3, "b": -1.0, "c": 0.1}) == {"a": 3, "b": 1, "c": 2}
    zd = S.zd_scores(graph, x)
    scores = S.zd_sensitivity(graph, x, bits=(3,))
    ranks = S.importance_ranks({k: -v for k, v in zd.items()})
    for name, by_bits in scores.items():
        w = graph.node(name).params["weight"]
        rel = S.weight_error(w, 3) / np.sum(w ** 2)
        assert by_bits[3] == pytest.approx(ranks[name] * rel)
    lims = S.lim_scores(graph, x)
    assert set(lims) == {"0", "2"} and all(-1 <= v <= 0 for v in lims.values())


def test_lim_compares_a_block_input_with_the_next_layers_input(tiny, graph):
    """Layer 0's block ends after the ReLU, where layer 2 reads; the last block at the output."""
    model, x, _ = tiny
    with torch.no_grad():
        hidden = F.relu(model[0](x)).double().numpy()
        out = model(x).double().numpy()
    lims = S.lim_scores(graph, x)
    assert lims["0"] == pytest.approx(S.lim(x.double().numpy(), hidden), rel=1e-6)
    assert lims["2"] == pytest.approx(S.lim(hidden, out), rel=1e-6)
    pre = model[0](x).detach().double().numpy()  # not the pre-activation output
    assert abs(lims["0"] - S.lim(x.double().numpy(), pre)) > 1e-3


def test_measured_is_the_kl_divergence_from_fp32_of_one_fake_quantized_layer(tiny, graph):
    model, x, y = tiny
    scores = S.measured_sensitivity(graph, x, y.numpy(), bits=(2, 8))
    assert scores == S.measured_sensitivity(graph, x, bits=(2, 8))  # labels are not used
    xd = x.double()
    w2, b2 = model[2].weight.double(), model[2].bias.double()

    def logits(w0):
        hidden = F.relu(F.linear(xd, w0, model[0].bias.double()))
        return F.linear(hidden, w2, b2)

    with torch.no_grad():
        w0 = graph.node("0").params["weight"]
        fp32 = F.log_softmax(logits(torch.from_numpy(w0)), dim=1)
        for bits in (2, 8):
            q = F.log_softmax(logits(torch.from_numpy(S.dequantized_weight(w0, bits))), dim=1)
            expect = F.kl_div(q, fp32, log_target=True, reduction="batchmean").item()
            assert scores["0"][bits] == pytest.approx(expect, rel=1e-9, abs=1e-12)
    assert scores["0"][2] > scores["0"][8] > 0


def test_kl_divergence_by_hand():
    p = np.log(np.array([[0.5, 0.5], [0.9, 0.1]]))
    q = np.log(np.array([[0.5, 0.5], [0.5, 0.5]]))
    expect = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)
    np.testing.assert_allclose(S.kl_divergence(p, q), [0.0, expect], atol=1e-12)
    np.testing.assert_allclose(S.kl_divergence(p + 3.0, p), [0.0, 0.0], atol=1e-12)


def test_measured_in_context_quantizes_the_other_layers(tiny, graph):
    """With a context, layer 2 at 3 bits stays quantized while layer 0's loss is measured."""
    _, x, y = tiny
    labels = y.numpy()
    context = {"0": 4, "2": 3}
    scores = S.measured_sensitivity(graph, x, labels, bits=(2, 8), context=context)
    base = S.measured_loss(graph, x, context)
    for b in (2, 8):
        assert scores["0"][b] == pytest.approx(
            S.measured_loss(graph, x, {"0": b, "2": 3}) - base, abs=1e-12)
        assert scores["2"][b] == pytest.approx(
            S.measured_loss(graph, x, {"0": 4, "2": b}) - base, abs=1e-12)
    float_scores = S.measured_sensitivity(graph, x, labels, bits=(2,))
    assert S.measured_loss(graph, x, {}) == 0.0  # the fp32 model itself
    assert float_scores["0"][2] == pytest.approx(S.measured_loss(graph, x, {"0": 2}))
    assert scores["0"][2] != pytest.approx(float_scores["0"][2])
    with pytest.raises(ConfigError, match=r"context names layers \['0'\]; give bits for "
                                          r"exactly 0, 2"):
        S.measured_sensitivity(graph, x, labels, context={"0": 4})


def test_errors():
    with pytest.raises(ConfigError, match="candidate bits"):
        S.check_bits([1, 4])
    with pytest.raises(ConfigError, match="n_iter"):
        S.hessian_traces(capture(nn.Linear(2, 2), torch.zeros(1, 2)), np.zeros((4, 2)),
                         n_iter=0)


# --- measured with fake-quantized activations ---------------------------------------------

def test_measured_with_activations_fake_quantizes_base_and_perturbed_runs(tiny, graph):
    """Scores are increases over the base loss with A4 activations (weights float), whose
    reference is the fp32 output; the encodings come from ``act_calibration``."""
    _, x, y = tiny
    a4 = QuantConfig(activation_bits=4)
    scores = S.measured_sensitivity(graph, x, y.numpy(), bits=(2, 8), activations=a4)
    base = S.measured_loss(graph, x, {}, activations=a4)
    # 4-bit activations alone move the outputs away from fp32 (measured 4.9e-4), 8-bit ones less
    assert base > 1e-4
    assert base > 10 * S.measured_loss(graph, x, {}, activations=QuantConfig()) > 0
    for b in (2, 8):
        assert scores["0"][b] == pytest.approx(
            S.measured_loss(graph, x, {"0": b}, activations=a4) - base, abs=1e-12)
    acts = S.activation_encodings(graph, x, a4)
    xi = graph.to_internal(x.numpy())
    fp32 = run_float(graph, xi)
    fake = run_float(graph, xi, activations=acts)  # float weights and biases
    assert base == pytest.approx(float(np.mean(S.kl_divergence(fp32, fake))), rel=1e-12)
    float_acts = S.measured_sensitivity(graph, x, bits=(2, 8))
    assert scores["0"][2] != pytest.approx(float_acts["0"][2], rel=1e-3)
    # another calibration batch, other encodings, another loss; default: the scored batch
    other = S.measured_loss(graph, x, {}, activations=a4, act_calibration=x[:8])
    assert other != pytest.approx(base, rel=1e-6)
    assert S.measured_loss(graph, x, {}, activations=a4, act_calibration=x) == base
    with pytest.raises(ConfigError, match=r"activations = 4 must be a QuantConfig"):
        S.measured_loss(graph, x, {}, activations=4)


def test_quantized_params_round_the_bias_to_its_codes(tiny, graph):
    node = graph.node("2")
    acts = S.activation_encodings(graph, tiny[1], QuantConfig(activation_bits=4))
    plain = S.quantized_params(node, 3, "auto")
    assert set(plain) == {"weight"}
    np.testing.assert_array_equal(plain["weight"], S.dequantized_weight(node.params["weight"], 3))
    p = S.quantized_params(node, 3, "auto", acts)
    step = acts[node.inputs[0]].unit * S.weight_scale(node.params["weight"], 3)
    np.testing.assert_allclose(p["bias"] / step, np.rint(node.params["bias"] / step), atol=1e-9)
    assert np.all(np.abs(p["bias"] - node.params["bias"]) <= step / 2 + 1e-12)
    assert not np.array_equal(p["bias"], node.params["bias"])


def test_activation_aware_measured_on_the_digits_cnn(digits_cnn, cnn_fgraph):
    """A4 activations: the base loss is far above A8's, and the per-layer scores are their own
    numbers, not the float-activation ones."""
    x, y = digits_cnn.scoring_data()
    calib = digits_cnn.calibration

    def base(bits):
        return S.measured_loss(cnn_fgraph, x, {}, activations=QuantConfig(activation_bits=bits),
                               act_calibration=calib)

    a8, a4 = base(8), base(4)
    assert 0 < a8 < 1e-4 and a4 > 1e-3 and a4 > 50 * a8  # measured 2e-5 and 5.4e-3
    bits = (2, 4)
    aware = S.measured_sensitivity(cnn_fgraph, x, y, bits=bits,
                                   activations=QuantConfig(activation_bits=4),
                                   act_calibration=calib)
    plain = S.measured_sensitivity(cnn_fgraph, x, y, bits=bits)
    assert aware.keys() == plain.keys() == {"conv1", "conv2", "fc"}
    for name in aware:
        assert all(np.isfinite(v) for v in aware[name].values())
        assert aware[name][2] > aware[name][4]  # 2-bit weights still cost the most
        assert aware[name] != pytest.approx(plain[name], rel=0.01, abs=1e-5), name


class _GroupNormNet(nn.Module):
    """conv -> GroupNorm (captured as reshapes and permutes of the NHWC map) -> conv."""

    def __init__(self):
        super().__init__()
        self.a, self.norm, self.b = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), \
            nn.Conv2d(8, 4, 1)

    def forward(self, x):
        return self.b(torch.relu(self.norm(self.a(x))))


class _ConvTransposeNet(nn.Module):
    """conv -> ConvTranspose2d (a conv, then a pixel shuffle of reshapes and permutes)."""

    def __init__(self):
        super().__init__()
        self.a, self.up = nn.Conv2d(3, 8, 3, padding=1), nn.ConvTranspose2d(8, 4, 2, 2)

    def forward(self, x):
        return self.up(torch.relu(self.a(x)))


@pytest.mark.parametrize("net", [_GroupNormNet, _ConvTransposeNet])
def test_torch_forward_equals_run_float_through_image_reshapes_and_permutes(net):
    """The torch form (NCHW) moves a map's values as run_float does in NHWC, not only the
    (C,) <-> (1, 1, C) reshapes of a pooled vector."""
    torch.manual_seed(0)
    model = net().eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    graph = capture(model, torch.from_numpy(x[:1]))
    assert {"reshape", "permute"} <= {n.op for n in graph.nodes}
    xi = graph.to_internal(x)
    out = S.torch_forward(graph, torch.from_numpy(xi).double(), {}).numpy()
    want = run_float(graph, xi)
    assert out.shape == want.shape[:1] + (want.shape[3],) + want.shape[1:3]  # NCHW of NHWC
    np.testing.assert_allclose(out, want.transpose(0, 3, 1, 2), rtol=1e-9, atol=1e-9)
