"""The 'fisher' activation observer (qasic.quant.fisher): a weighted histogram by hand, the
squared loss gradients against numpy, the refusal of non-classifiers, and the digits CNN."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError
from qasic.quant import QuantConfig, accuracy, quantize
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.fisher import fisher_weights
from qasic.quant.observers import histogram_range


def test_weights_decide_whether_outliers_count():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.uniform(0, 1, 10_000), np.full(20, 50.0)])
    ignored = np.concatenate([np.ones(10_000), np.zeros(20)])
    lo, hi = histogram_range(values, 4, weights=ignored)
    assert lo == 0 and hi <= 2.0  # the 20 outliers cost nothing: a fine step for the rest
    assert histogram_range(values, 4, weights=1000 * (1 - ignored) + ignored)[1] >= 45.0
    assert histogram_range(values, 4, weights=np.ones_like(values)) == histogram_range(values, 4)


def _linear(w: np.ndarray) -> FGraph:
    fc = FNode("fc", "linear", ("x",), "fc", {}, {"weight": w, "bias": np.zeros(len(w))})
    return FGraph("lin", "x", "fc", (fc,), {"x": (w.shape[1],), "fc": (len(w),)})


def test_squared_gradients_of_the_cross_entropy_with_the_own_top1():
    rng = np.random.default_rng(1)
    w, x = rng.normal(size=(5, 7)), rng.normal(size=(20, 7))
    weights = fisher_weights(_linear(w), x, batch=8)
    z = x @ w.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    dz = p - np.eye(5)[z.argmax(1)]  # d CE / d logits at the model's own top-1
    np.testing.assert_allclose(weights["fc"], dz ** 2, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(weights["x"], (dz @ w) ** 2, rtol=1e-4, atol=1e-7)
    assert weights["x"].shape == x.shape and weights["x"].dtype == np.float32


def test_needs_a_classifier_output():
    fc = FNode("fc", "linear", ("x",), "fc", {}, {"weight": np.ones((4, 3)),
                                                 "bias": np.zeros(4)})
    g = FGraph("img", "x", "r", (fc, FNode("r", "reshape", ("fc",), "r", {"shape": (2, 2)})),
               {"x": (3,), "fc": (4,), "r": (2, 2)})
    with pytest.raises(ConfigError, match=r"^observer 'fisher' needs a classifier output "
                                          r"\(batch, classes\); model img outputs \(2, 2\)"):
        fisher_weights(g, np.ones((2, 3)))


def test_ranges_differ_from_the_histogram_and_keep_the_digits_cnn(digits_cnn, cnn_fgraph):
    """A4 on the digits CNN: measured 98.9 % (histogram), 99.2 % (fisher)."""
    cal, x, y = digits_cnn.calibration, digits_cnn.test_inputs, digits_cnn.test_labels
    hist = quantize(cnn_fgraph, None, cal, QuantConfig(activation_bits=4,
                                                       activation_observer="histogram"))
    fisher = quantize(cnn_fgraph, None, cal, QuantConfig(activation_bits=4,
                                                         activation_observer="fisher"))
    assert fisher.tensors != hist.tensors
    assert fisher.tensors[fisher.output] == hist.tensors[hist.output]  # the logits: min-max
    assert accuracy(fisher, x, y) >= 0.985


def test_fisher_output_observer_weights_the_competing_scores(digits_cnn, cnn_fgraph):
    """output_observer='fisher': the logits' 'histogram' range with each score weighted by
    (softmax - onehot(top-1))^2, so the low scores may clip; every other tensor keeps its
    encoding, and the output's step is finer than min-max's."""
    from qasic.quant import run_float
    from qasic.quant.observers import affine

    cal = digits_cnn.calibration
    wide = quantize(cnn_fgraph, None, cal, QuantConfig())
    fish = quantize(cnn_fgraph, None, cal, QuantConfig(output_observer="fisher"))
    assert {k: v for k, v in fish.tensors.items() if k != fish.output} == \
        {k: v for k, v in wide.tensors.items() if k != wide.output}
    z = run_float(cnn_fgraph, cnn_fgraph.to_internal(cal))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(p)), z.argmax(1)] -= 1.0
    want = affine(*histogram_range(z, 8, weights=p ** 2), 8)
    got = fish.tensors[fish.output]
    assert got.scale == pytest.approx(want.scale, rel=1e-3) and got.scale < \
        wide.tensors[wide.output].scale
    x, y = digits_cnn.test_inputs, digits_cnn.test_labels
    assert accuracy(fish, x, y) >= accuracy(wide, x, y) - 0.005
