"""Empirical bias correction (QuantConfig(bias_correction=True), qasic.quant.biascorr) and the
classifier output observer (QuantConfig(output_observer="top"), observers.top_range)."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError
from qasic.quant import QuantConfig, accuracy, quantize, run_float
from qasic.quant.biascorr import correct_biases
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.graph import TensorQ
from qasic.quant.observers import top_range


def _linear_graph(weight: np.ndarray, bias: np.ndarray) -> FGraph:
    fc = FNode("fc", "linear", ("x",), "fc", {}, {"weight": weight, "bias": bias})
    return FGraph("fc", "x", "fc", (fc,), {"x": (weight.shape[1],), "fc": (weight.shape[0],)})


def test_correction_by_hand_on_one_linear_layer():
    # y = w . x + b with w = (0.3, -0.2) stood in for by w_q = (0.25, -0.25): error -0.05 x0 -
    # 0.05 x1, mean over the batch -0.05 * 2 - 0.05 * 1 = -0.15, so the bias gains +0.15
    w, b = np.array([[0.3, -0.2]]), np.array([1.0])
    g = _linear_graph(w, b)
    x = np.array([[1.0, 0.0], [3.0, 2.0]])  # column means (2, 1)
    values = run_float(g, x, keep=True)
    acts = {"x": TensorQ(1.0, 0, 8), "fc": TensorQ(2 ** -10, 0, 8)}  # inputs exact on the grid
    fixed = correct_biases(g, x, acts, lambda node: np.array([[0.25, -0.25]]))
    np.testing.assert_allclose(fixed.node("fc").params["bias"], [1.15])
    np.testing.assert_array_equal(fixed.node("fc").params["weight"], w)  # float weights kept
    # with w_q and the corrected bias the batch mean equals the float one
    mean_q = (x @ np.array([0.25, -0.25]) + 1.15).mean()
    assert mean_q == pytest.approx(values["fc"].mean())


def test_correction_sees_the_fake_quantized_input():
    # exact weights, but the input rounds 0.4 -> 0 and 1.4 -> 1 (step 1): mean shift -0.4 * w
    w = np.array([[2.0]])
    g = _linear_graph(w, np.array([0.0]))
    x = np.array([[0.4], [1.4]])
    acts = {"x": TensorQ(1.0, 0, 8), "fc": TensorQ(0.01, 0, 8)}
    fixed = correct_biases(g, x, acts, lambda node: w)
    np.testing.assert_allclose(fixed.node("fc").params["bias"], [0.8])


def test_clamped_layer_corrects_only_where_the_float_value_passes():
    # fc -> clamp(0, 6): w = 1 stood in for by w_q = 1.5 (error 0.5 x). x = 2 passes the clamp
    # (error +1); x = 10 saturates in both models (z = 10, z_q = 15: error +5, never seen by the
    # next layer). Only the passing position counts: delta = 1, not (1 + 5) / 2
    w = np.array([[1.0]])
    fc = FNode("fc", "linear", ("x",), "fc", {}, {"weight": w, "bias": np.array([0.0])})
    act = FNode("act", "clamp", ("fc",), "act", {"min": 0.0, "max": 6.0})
    g = FGraph("g", "x", "act", (fc, act), {"x": (1,), "fc": (1,), "act": (1,)})
    x = np.array([[2.0], [10.0]])
    acts = {"x": TensorQ(1.0, 0, 8), "fc": TensorQ(2 ** -4, -128, 8),
            "act": TensorQ(2 ** -4, -128, 8)}
    fixed = correct_biases(g, x, acts, lambda node: np.array([[1.5]]))
    np.testing.assert_allclose(fixed.node("fc").params["bias"], [-1.0])
    # a channel whose every value saturates keeps its bias
    fixed = correct_biases(g, np.array([[10.0], [20.0]]), acts, lambda node: np.array([[1.5]]))
    np.testing.assert_allclose(fixed.node("fc").params["bias"], [0.0])


def test_chunked_layers_give_the_same_correction(digits_cnn, cnn_fgraph, monkeypatch):
    from qasic.quant import biascorr

    config = QuantConfig(4, activation_bits=4, bias_correction=True)
    whole = quantize(cnn_fgraph, None, digits_cnn.calibration, config)
    monkeypatch.setattr(biascorr, "CHUNK_VALUES", 1000)  # a few samples per conv run
    chunked = quantize(cnn_fgraph, None, digits_cnn.calibration, config)
    for a, b in zip(whole.nodes, chunked.nodes, strict=True):
        for key in a.params:  # a bias code may round the other way on a float-order tie
            np.testing.assert_allclose(a.params[key], b.params[key], rtol=0,
                                       atol=1 if key == "bias" else 0, err_msg=a.name)


def test_only_the_biases_change(digits_cnn, cnn_fgraph):
    plain = quantize(cnn_fgraph, None, digits_cnn.calibration, QuantConfig(4, activation_bits=4))
    fixed = quantize(cnn_fgraph, None, digits_cnn.calibration,
                     QuantConfig(4, activation_bits=4, bias_correction=True))
    assert fixed.tensors == plain.tensors
    changed = 0
    for a, b in zip(plain.nodes, fixed.nodes, strict=True):
        assert a.params.keys() == b.params.keys(), a.name
        for key in a.params:
            if key != "bias":
                np.testing.assert_array_equal(a.params[key], b.params[key], err_msg=a.name)
        changed += "bias" in a.params and not np.array_equal(a.params["bias"], b.params["bias"])
    assert changed == len(plain.weighted_nodes())


def test_correction_rescues_two_bit_weights(digits_cnn, cnn_fgraph):
    """W2A8: rounding to ternary weights shifts every layer's mean; measured 0.964 -> 0.967 on
    the digits CNN (mnist_deep: 0.16 -> 0.74)."""
    x, y = digits_cnn.test_inputs, digits_cnn.test_labels
    acc = [accuracy(quantize(cnn_fgraph, None, digits_cnn.calibration,
                             QuantConfig(2, bias_correction=bc)), x, y) for bc in (False, True)]
    assert acc[1] >= acc[0]


def test_top_range_by_hand():
    scores = np.array([[0.0, 1.0, 2.0, 3.0, 10.0],     # median 2
                       [-5.0, -4.0, -3.0, -2.0, 4.0]])  # median -3
    assert top_range(scores) == (-3.0, 10.0)
    assert top_range(scores, 0.25) == (-4.0, 10.0)
    assert top_range(np.array([1.0, 2.0, 3.0])) == (2.0, 3.0)  # one vector


def test_top_output_observer_keeps_the_max_and_a_finer_step(digits_cnn, cnn_fgraph):
    cal = digits_cnn.calibration
    wide = quantize(cnn_fgraph, None, cal, QuantConfig())
    top = quantize(cnn_fgraph, None, cal, QuantConfig(output_observer="top"))
    out, logits = top.tensors[top.output], run_float(cnn_fgraph, cnn_fgraph.to_internal(cal))
    assert out.scale < wide.tensors[wide.output].scale
    assert out.decode(np.array(out.qmax)) >= logits.max() - out.scale / 2  # max not clipped
    assert {k: v for k, v in top.tensors.items() if k != top.output} == \
        {k: v for k, v in wide.tensors.items() if k != wide.output}
    x, y = digits_cnn.test_inputs, digits_cnn.test_labels
    assert accuracy(top, x, y) >= accuracy(wide, x, y) - 0.005


@pytest.mark.parametrize("kwargs, message", [
    ({"output_observer": "histogram"},
     "output_observer = 'histogram' is unknown: allowed 'minmax', 'top'"),
    ({"bias_correction": "yes"}, "bias_correction = 'yes' must be True or False"),
])
def test_bad_options_name_the_key_and_the_allowed(kwargs, message):
    with pytest.raises(ConfigError) as e:
        QuantConfig(**kwargs)
    assert message in str(e.value)
