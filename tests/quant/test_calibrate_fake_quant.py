"""Fake-quantized activations (actformat.fake_quantize, run_float(activations=...)) by hand, and
the fake-quantized float model against the golden integer reference."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.quant import QuantConfig, actformat, reference, run_float
from qasic.quant import sensitivity as S
from qasic.quant.actformat import fake_quantize
from qasic.quant.calibrate import check_calibration, encode_activations
from qasic.quant.graph import TensorQ


def test_fake_quantize_int_by_hand():
    # real = 0.5 * (q - (-3)), q a signed 4-bit code: reals -2.5 .. 5.0 in steps of 0.5
    tq = TensorQ(scale=0.5, zero_point=-3, bits=4)
    x = np.array([-10.0, -1.26, 0.24, 0.25, 100.0])
    # saturates low, rounds, rounds half up (0.25 -> 0.5), saturates high
    np.testing.assert_array_equal(fake_quantize(x, tq), [-2.5, -1.5, 0.0, 0.5, 5.0])
    y = fake_quantize(np.linspace(-4, 6, 101), tq)
    np.testing.assert_array_equal(fake_quantize(y, tq), y)  # on the grid: idempotent


def test_fake_quantize_fp8_by_hand():
    # x / 2 -> nearest E4M3: 1.5 exact, 500 saturates at 448, -0.15 -> -0.15625 (step 1/64)
    tq = TensorQ(scale=2.0, zero_point=0, fmt="fp8_e4m3")
    np.testing.assert_array_equal(fake_quantize(np.array([3.0, 1000.0, -0.3]), tq),
                                  [3.0, 896.0, -0.3125])


def test_run_float_fake_quantizes_every_tensor(cnn_fgraph, digits_cnn):
    g = cnn_fgraph
    x = g.to_internal(digits_cnn.test_inputs[:32])
    plain = run_float(g, x, keep=True)
    assert run_float(g, x, keep=True, activations=None).keys() == plain.keys()
    np.testing.assert_array_equal(run_float(g, x, activations={}), plain[g.output])
    acts = encode_activations(g, run_float(g, g.to_internal(digits_cnn.calibration), keep=True),
                              QuantConfig(activation_bits=4))
    fake = run_float(g, x, keep=True, activations=acts)
    for name, values in fake.items():  # relu/pool/flatten too, though they are not re-rounded
        np.testing.assert_array_equal(fake_quantize(values, acts[name]), values, err_msg=name)
        assert len(np.unique(values)) <= 16, name  # 4-bit codes
    assert not np.array_equal(fake[g.input], plain[g.input])  # the input is quantized too
    # only the tensors named: the input alone fake-quantized
    only_input = run_float(g, x, activations={g.input: acts[g.input]})
    np.testing.assert_array_equal(only_input, run_float(g, fake[g.input]))


@pytest.mark.parametrize("weight_bits, config, same_codes", [
    (8, QuantConfig(activation_bits=8), 0.999),
    (4, QuantConfig(activation_bits=4), 0.999),
    (3, QuantConfig(activation_bits=4, activation_observer="percentile"), 0.999),
    (4, QuantConfig(activation_format="fp8_e4m3"), 0.99),  # measured 0.9956
])
def test_fake_quantized_float_model_matches_the_golden_reference(cnn_fgraph, digits_cnn,
                                                                 weight_bits, config,
                                                                 same_codes):
    """Activations at their calibrated TensorQs, weights at Q_b and biases at their codes'
    values: the float64 run gives the golden reference's output codes. INT: all of them
    here (the requantization multipliers' 31-bit rounding may flip a rare tie). FP8: the
    reference rounds an output to an integer level, then to the nearest code, and that double
    rounding moves ~0.05% of a layer's codes (level 26.74 -> 27, a tie of codes 26 and 28 ->
    28); the fake quantization rounds once."""
    import dataclasses

    from qasic.quant import quantize

    g, t = cnn_fgraph, digits_cnn
    qg = quantize(g, None, t.calibration, dataclasses.replace(config, weight_bits=weight_bits))
    calib = g.to_internal(check_calibration(g, t.calibration))
    acts = encode_activations(g, run_float(g, calib, keep=True), config)
    assert acts == dict(qg.tensors)  # the quantizer's calibration, tensor for tensor
    fq = g
    for node in g.weighted_nodes():
        fq = S.with_params(fq, node.name, S.quantized_params(node, weight_bits, "auto", acts))
    fake = run_float(fq, g.to_internal(t.test_inputs), activations=acts)
    golden = reference.run(qg, qg.quantize_input(t.test_inputs))
    out = qg.tensors[qg.output]
    codes = out.encode(fake)
    assert np.mean(codes == golden) >= same_codes
    assert np.mean(fake.argmax(axis=1) == golden.argmax(axis=1)) >= 0.99
    rank = actformat.order_key if out.is_fp else np.asarray  # codes in the order of values
    assert np.abs(rank(codes) - rank(golden)).max() <= 1  # the logits: one step apart at most
