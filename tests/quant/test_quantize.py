import numpy as np
import pytest
import torch

from qasic.errors import ConfigError, InputError
from qasic.quant import QuantConfig, accuracy, quantize, reference, run_dequantized
from qasic.quant.evaluate import cosine


def test_qgraph_structure_and_encodings(quantized):
    g = quantized(8)
    assert [n.op for n in g.nodes] == [
        "conv2d", "relu", "conv2d", "relu", "maxpool2d", "flatten", "linear"]
    assert g.input_shape == (8, 8, 1) and g.shapes["pool"] == (4, 4, 32)
    assert g.node("conv1").params["weight"].shape == (16, 3, 3, 1)
    for name in ("relu1", "relu2", "pool", "flatten"):  # these ops share their input's encoding
        node = g.node(name)
        assert g.tensors[node.output] is g.tensors[node.inputs[0]]
    conv1 = g.tensors["conv1"]
    assert conv1.zero_point == conv1.qmin  # calibrated on the relu output: real 0 = lowest code
    assert g.node("conv1").attrs["clamp"] == (conv1.zero_point, conv1.qmax)
    assert "clamp" not in g.node("fc").attrs
    assert g.tensors["input"].zero_point == -128 and np.isclose(g.tensors["input"].scale, 1 / 255)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_weight_codes_and_parameter_dtypes(quantized, bits):
    g = quantized(bits)
    qmax = (1 << (bits - 1)) - 1
    for node in g.weighted_nodes():
        w = node.params["weight"]
        assert node.weight_bits == bits and node.weight_format == f"int{bits}"
        assert w.dtype == np.int8 and -qmax <= w.min() and w.max() <= qmax
        assert node.params["bias"].dtype == np.int64
        q = node.params["multiplier"]
        assert q.shape == (w.shape[0],) and np.all((q >= 1 << 30) & (q < 1 << 31))


def test_accuracy_targets(digits_cnn, quantized):
    x, y = digits_cnn.test_inputs, digits_cnn.test_labels
    fp32 = digits_cnn.fp32_accuracy
    assert fp32 >= 0.97
    assert accuracy(quantized(8), x, y) >= fp32 - 0.005
    assert accuracy(quantized(4), x, y) >= 0.95
    w2_mse = accuracy(quantized(2), x, y)
    assert w2_mse >= 0.88
    assert w2_mse > accuracy(quantized(2, weight_clipping="minmax"), x, y)


def test_golden_output_tracks_float_logits(digits_cnn, quantized):
    x = digits_cnn.test_inputs
    with torch.no_grad():
        logits = digits_cnn.module(torch.from_numpy(x)).numpy()
    assert cosine(run_dequantized(quantized(8), x), logits) > 0.99
    assert cosine(run_dequantized(quantized(8, activation_observer="percentile"), x),
                  logits) > 0.99


@pytest.mark.parametrize("bits", [8, 2])
def test_relu_after_conv_is_a_noop(digits_cnn, quantized, bits):
    """The fusion invariant: a compiler that drops these relus stays bit-exact."""
    g = quantized(bits)
    env = reference.run(g, g.quantize_input(digits_cnn.test_inputs), keep=True)
    for relu in (n for n in g.nodes if n.op == "relu"):
        assert np.array_equal(env[relu.output], env[relu.inputs[0]])
    assert env["conv1"].min() == g.tensors["conv1"].zero_point  # the clamp is active


def test_mixed_precision_per_layer(digits_cnn, cnn_fgraph):
    cfg = QuantConfig({"conv1": 8, "conv2": 4, "fc": 2})
    g = quantize(cnn_fgraph, None, digits_cnn.calibration, cfg)
    assert [n.weight_bits for n in g.weighted_nodes()] == [8, 4, 2]
    assert accuracy(g, digits_cnn.test_inputs, digits_cnn.test_labels) >= 0.9


def test_quantize_from_module(digits_cnn, quantized):
    m = digits_cnn
    g = quantize(m.module, m.example_input, torch.from_numpy(m.calibration), name="digits_cnn")
    for a, b in zip(g.nodes, quantized(8).nodes, strict=True):
        assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)


def test_unknown_layer_in_bits_dict(digits_cnn, cnn_fgraph):
    with pytest.raises(ConfigError, match="weight_bits names layer 'conv3', which model "
                                          "digits_cnn does not have; its layers: conv1, conv2, fc"):
        quantize(cnn_fgraph, None, digits_cnn.calibration, QuantConfig({"conv3": 4}))


def test_bad_calibration_data(digits_cnn, cnn_fgraph):
    cal = digits_cnn.calibration.copy()
    cal[3, 0, 2, 2] = np.nan
    with pytest.raises(InputError, match="calibration data contains 1 NaN or inf values"):
        quantize(cnn_fgraph, None, cal, QuantConfig())
    with pytest.raises(InputError, match=r"calibration data of shape \(4, 3, 8, 8\) does not fit "
                                         r"model digits_cnn: expected \(batch >= 1, 1, 8, 8\)"):
        quantize(cnn_fgraph, None, np.zeros((4, 3, 8, 8)), QuantConfig())
