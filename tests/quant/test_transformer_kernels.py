"""The integer softmax and normalization kernels (quant.intops) against float, across input
scales and widths: the error bounds docs/ops.md states, and the quantization of a norm's
affine part (signed multipliers, tiny gammas)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qasic.quant import QuantConfig, intops, quantize, reference
from qasic.quant.evaluate import cosine
from qasic.quant.fixedpoint import requantize

RNG = np.random.default_rng(0)


def _float_softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("scale", [1 / 128, 1 / 32, 1 / 8, 1 / 2])
@pytest.mark.parametrize("keys", [16, 128])
def test_softmax_kernel_is_within_half_an_output_step(scale, keys):
    """Against the float softmax of the same (dequantized) inputs: only the output rounding,
    0.5 / 127, remains (measured 0.501 / 127 at every scale): the 16-bit exp table and the
    32-bit reciprocal add < 0.01 of a step."""
    x = np.clip(np.rint(RNG.normal(size=(500, keys)) * 40), -128, 127).astype(np.int64)
    y = intops.softmax_rows(x, intops.exp_table(scale, 8), 8) / 127
    err = np.abs(y - _float_softmax(x * scale)).max()
    assert err <= 0.51 / 127, err * 127


def test_softmax_total_error_grows_with_the_input_step():
    """With the scores' own 8-bit rounding (step s) the error grows with s: measured max
    0.57, 1.9, 8.0, 14.8 steps of 1/127 for s ~ 1/128, 1/16, 1/4, 1/2 (16 keys)."""
    errs = []
    for r in (1, 8, 32, 64):
        s = 2 * r / 255
        z = np.clip(RNG.normal(size=(2000, 16)) * r / 3, -r, r)
        q = np.clip(np.floor(z / s + 0.5), -128, 127).astype(np.int64)
        y = intops.softmax_rows(q, intops.exp_table(s, 8), 8) / 127
        errs.append(np.abs(y - _float_softmax(z)).max() * 127)
    assert errs == sorted(errs) and errs[0] < 1 and errs[-1] < 20, errs


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("d", [32, 64, 384, 768])
@pytest.mark.parametrize("spread", [2, 20, 120])
def test_norm_kernel_error_is_bounded_by_the_integer_square_root(center, d, spread):
    """|n - exact| <= |exact| / r + 2 sqrt(D) 2^-F per element, r = isqrt(V) of its row: the
    floor square root's relative error, then the 2^-F rounding of t (n = t sqrt(D) / 2^F).
    r grows with D^(3/2) std(v) with centering and only sqrt(D) rms(v) without, so LayerNorm
    rows are exact to ~1e-5 and RMSNorm rows of small codes are not (measured max relative
    error at spread 20: 2.4e-2 / 1.9e-2 / 7.1e-3 / 4.4e-3 for D = 32 / 64 / 384 / 768)."""
    v = np.clip(np.rint(RNG.normal(size=(300, d)) * spread / 3), -128, 127).astype(np.int64)
    s, eps = 0.05, 1e-5
    e_int = intops.norm_epsilon(eps, s, d, center)
    t = intops.norm_rows(v, e_int, center)
    n = t * math.sqrt(d) / 2 ** intops.NORM_FRAC_BITS
    c = d * v - v.sum(-1, keepdims=True) if center else v
    r = intops.isqrt((c * c).sum(-1, keepdims=True) + e_int)
    x = v * s
    xc = x - x.mean(-1, keepdims=True) if center else x
    exact = xc / np.sqrt((xc * xc).mean(-1, keepdims=True) + eps)
    bound = np.abs(exact) / r + 2 * math.sqrt(d) / 2 ** intops.NORM_FRAC_BITS + 1e-9
    assert (np.abs(n - exact) <= bound).all()


def test_requantize_is_exact_with_negative_multipliers():
    """A norm with gamma < 0 has q < 0: requantize still rounds acc * q * 2^(shift - 31)
    exactly (ties toward +inf), checked against Python integers."""
    acc = RNG.integers(-(1 << 54), 1 << 54, size=2000, dtype=np.int64)
    q = -RNG.integers(1 << 30, 1 << 31, size=2000, dtype=np.int64)
    shift = RNG.integers(-40, 10, size=2000, dtype=np.int64)
    got = requantize(acc, q, shift)
    for a, m, sh, g in zip(acc.tolist(), q.tolist(), shift.tolist(), got.tolist()):
        total = 31 - sh
        want = (a * m + (1 << (total - 1))) >> total
        assert g == max(-(1 << 62), min(1 << 62, want))


def test_layer_norm_with_negative_and_vanishing_gammas():
    torch.manual_seed(0)
    ln = nn.LayerNorm(64)
    with torch.no_grad():
        ln.weight.copy_(torch.randn(64))
        ln.weight[:8] = 0.0            # gamma 0: the output is beta
        ln.weight[8:16] = 1e-12        # below the clamp
        ln.bias.copy_(torch.randn(64) * 3)
    x = np.random.default_rng(1).normal(size=(256, 8, 64)).astype(np.float32) * 4
    model = nn.Sequential(nn.Linear(64, 64), ln).eval()
    q = quantize(model, torch.from_numpy(x[:2]), x, QuantConfig(8))
    node = next(n for n in q.nodes if n.op == "norm")
    gamma = ln.weight.detach().numpy()
    assert np.array_equal(np.sign(node.params["multiplier"]), np.where(gamma < 0, -1, 1))
    assert np.abs(node.params["bias"]).max() < 2 ** 54
    got = q.dequantize_output(reference.run(q, q.quantize_input(x)))
    with torch.no_grad():
        want = model(torch.from_numpy(x)).double().numpy()
    assert np.abs(got[..., :16] - want[..., :16]).max() <= q.tensors[q.output].scale
    assert cosine(got, want) > 0.9999
