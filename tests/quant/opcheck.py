"""Helpers for the op-coverage tests: capture a tiny torch module, compare the float executor and
the golden reference with torch."""

from __future__ import annotations

import numpy as np
import torch

from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine


def torch_out(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x.copy())).double().numpy()  # in-place ops


def to_torch_layout(y: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Graph layout (NHWC, or N1LC for sequences) -> torch's (NCHW / NCL)."""
    if like.ndim == 4:
        return y.transpose(0, 3, 1, 2)
    if like.ndim == 3:
        return y[:, 0].transpose(0, 2, 1)
    return y


def float_matches(module, x: np.ndarray, atol: float = 1e-4):
    """Capture ``module`` and check run_float against torch; returns the FGraph."""
    graph = capture(module.eval(), torch.from_numpy(x[:1]))
    want = torch_out(module, x)
    got = to_torch_layout(run_float(graph, graph.to_internal(x)), want)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=atol)
    return graph


def quantized(module, x: np.ndarray, act_bits: int = 8, weight_bits: int = 8, **kw):
    """QGraph of ``module`` calibrated on ``x``."""
    cfg = QuantConfig(weight_bits, activation_bits=act_bits, **kw)
    return quantize(module.eval(), torch.from_numpy(x[:1]), x, cfg)


def reference_out(qgraph, x: np.ndarray) -> np.ndarray:
    """Golden reference output, dequantized, in torch's layout."""
    y = qgraph.dequantize_output(reference.run(qgraph, qgraph.quantize_input(x)))
    return to_torch_layout(y, x if y.ndim == x.ndim else y)


def reference_cosine(module, x: np.ndarray, act_bits: int = 8, **kw) -> float:
    g = quantized(module, x, act_bits, **kw)
    want = torch_out(module, x)
    got = g.dequantize_output(reference.run(g, g.quantize_input(x)))
    return cosine(to_torch_layout(got, want), want)


def codes_vs_fake_quant(module, x: np.ndarray, act_bits: int = 8, **kw) -> np.ndarray:
    """|golden reference codes - codes of the fake-quantized float run| for a weightless
    module: the integer formulas against their float definition (0 but for the requantization
    multipliers' 31-bit rounding at ties)."""
    g = quantized(module, x, act_bits, **kw)
    fg = capture(module.eval(), torch.from_numpy(x[:1]))
    from qasic.quant.calibrate import prepare

    fg = prepare(fg)
    ref = reference.run(g, g.quantize_input(x), keep=True)
    flt = run_float(fg, fg.to_internal(x), keep=True, activations=g.tensors)
    out = g.tensors[g.output]
    canonical = out.encode(out.decode(ref[g.output]))  # FP8: -0 and +0 are one value
    return np.abs(canonical - out.encode(flt[g.output]))
