"""Tensors calibrated to a range of (almost) zero: a requantization multiplier past 2**30 is
capped where the capped program is the exact one (quant.fixedpoint.SATURATING), an addend
observed all 0 takes its partner's unit (quant.calibrate._zero_addends), a layer's weight scale
is floored where its bias would take more than 2^30 accumulator units (quant.quantize.
bias_weight_scales), and a product whose every nonzero value would saturate is refused in one
line naming the node and its scales."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.fixedpoint import SATURATING, requantize, saturating_multipliers

F = 8


def test_a_capped_multiplier_is_the_exact_program_on_16_bit_codes():
    """clamp(zp + round(acc M)) for M in 2^29 .. 1e15 equals it at M = SATURATING for every
    accumulator of int16 codes (exact integers in Python for the reference)."""
    acc = np.array([-(1 << 40), -70000, -3, -1, 0, 1, 2, 5, 40000, 1 << 45], dtype=np.int64)
    lo, hi, zp = -(1 << 15), (1 << 15) - 1, -1234
    for m in (2.0 ** 30 * 1.5, 3.7e12, 1e15):
        q, s = saturating_multipliers(np.array([m]))
        got = np.clip(zp + requantize(acc, q, s), lo, hi)
        want = [min(max(zp + round(int(a) * m), lo), hi) for a in acc]
        assert got.tolist() == want
    assert saturating_multipliers(np.array([1e15]))[0][0] == saturating_multipliers(
        np.array([SATURATING]))[0][0]


class ZeroChannel(torch.nn.Module):
    """A layer of tiny weights (1e-12) with one channel of zeros: that channel's weight scale is
    arbitrary (1.0), its multiplier 1e11: 'requantization multiplier ... too large' before."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(F, F), torch.nn.Linear(F, F, bias=False)
        with torch.no_grad():
            self.b.weight.normal_(std=1e-12)
            self.b.weight[F - 1] = 0

    def forward(self, x):
        return self.b(self.a(x))


class ZeroBranch(torch.nn.Module):
    """A zero-initialized residual branch (all 0 on calibration data) added to a path of tiny
    values: the branch's arbitrary unit 1.0 took the add's common scale and rounded the tiny
    addend to 0 (cosine 0.0, 'bit-exact'). ``scale`` the tiny path's magnitude."""

    def __init__(self, scale: float, matmul: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.zero = torch.nn.Linear(F, F), torch.nn.Linear(F, F)
        torch.nn.init.zeros_(self.zero.weight)
        torch.nn.init.zeros_(self.zero.bias)
        self.scale, self.matmul = scale, matmul

    def forward(self, x):
        h = self.a(x)
        y = self.zero(h) + h * self.scale
        if self.matmul:  # the sum is an operand of a product of activations
            return y.view(-1, 2, F // 2) @ h.view(-1, 2, F // 2).transpose(1, 2)
        return y


def _x(n: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, F)).astype(np.float32)


class ZeroedDivisor(torch.nn.Module):
    """EfficientViT's normalizer written otherwise: (h g) / (2 g + eps) or (h g) * 1 / g.clamp(
    min=eps), g = relu(.) 0 on about half the rows (the numerator with it): the reciprocal's
    range held 1 / eps (1e12) and its product's multiplier overflowed (or the quotient was 0)."""

    def __init__(self, clamp: bool) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.clamp = torch.nn.Linear(F, F), clamp

    def forward(self, x):
        h = self.a(x)
        g = torch.relu(h[..., :1])
        if self.clamp:
            return (h * g) * torch.reciprocal(g.clamp(min=1e-12))
        return (h * g) / (2 * g + 1e-12)


class BiasOverVanishing(torch.nn.Module):
    """A biased layer over an input whose values vanish (~1e-13: MONAI's FlexibleUNet over a
    randomly initialized EfficientNet) or over one channel of tiny weights (1e-12): the bias was
    ~2^55 accumulator units (s_in * s_w[c]), saturated, and no accumulator held it ('array.
    acc_bits = 32 can overflow ... worst case |acc| = 36028797021753161'). The channel's weight
    scale is now floored at |b| / (s_in 2^30) (quant.quantize.bias_weight_scales)."""

    def __init__(self, tiny: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(F, F), torch.nn.Linear(F, F)
        with torch.no_grad():
            if tiny == "input":
                self.a.weight.mul_(1e-13)
                self.a.bias.zero_()
            elif tiny == "channel":
                self.b.weight[0].mul_(1e-12)

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("model", [ZeroChannel(), ZeroBranch(1e-9), ZeroBranch(1e-7),
                                   ZeroBranch(1e-9, matmul=True), ZeroedDivisor(False),
                                   ZeroedDivisor(True), BiasOverVanishing("input"),
                                   BiasOverVanishing("channel")],
                         ids=["zero-channel", "zero-branch-1e-9", "zero-branch-1e-7",
                              "zero-branch-matmul", "zeroed-divisor", "zeroed-divisor-clamp",
                              "bias-over-vanishing-input", "bias-over-tiny-channel"])
def test_near_zero_ranges_run_bit_exact_close_to_float(model):
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    model = model.eval()
    cal, x = _x(32), _x(8, seed=1)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).double().numpy()
    fg = capture(model, torch.from_numpy(cal[:1]))
    np.testing.assert_allclose(run_float(fg, x).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-4 * np.abs(want).max())
    g = quantize(model, torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = g.quantize_input(x)
    gold = reference.run(g, codes)
    got = run_functional(compile_graph(g, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(gold.shape), gold)
    # measured: 0.9952 (two 8-bit layers into 8 outputs), 0.99993, 0.99995, 0.99992, 0.9999,
    # 0.987 (the clamp's table), 0.999998 (a bias over vanishing inputs), 0.99994 (a tiny channel)
    assert cosine(g.dequantize_output(gold).reshape(want.shape), want) > 0.98


class HugeFactor(torch.nn.Module):
    """A product whose second operand is huge (exp(60 g) up to ~1e28) only where the first is
    0: the product's range is the first operand's, ~1e25 times finer than a step of the
    product of the operands' codes."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(F, F)

    def forward(self, x):
        h = self.a(x)
        g = h[..., :1]
        return (h * (g <= 0).float()) * torch.exp(60 * torch.relu(g))


def test_a_product_whose_every_nonzero_value_saturates_is_one_line():
    cal = _x(32)
    with pytest.raises(UnsupportedOpError) as e:
        quantize(HugeFactor().eval(), torch.from_numpy(cal[:1]), cal, QuantConfig())
    msg = str(e.value)
    assert "\n" not in msg and "times finer than a step of its operands' product" in msg
    assert "calibrate on data" in msg and msg.startswith("mul ")


class NotFinite(torch.nn.Module):
    """sqrt of a layer's output (NaN where it is negative), or a division by a comparison that
    is 0 everywhere (inf): 'cannot convert float NaN to integer' / 'tensor scale inf' before."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.kind = torch.nn.Linear(F, F), kind

    def forward(self, x):
        h = self.a(x)
        return torch.sqrt(h) if self.kind == "sqrt" else h / (h > 100).float()


@pytest.mark.parametrize(("kind", "tensor"), [("sqrt", "sqrt"), ("div", "div.reciprocal")])
def test_a_tensor_not_finite_on_the_calibration_data_is_one_line(kind, tensor):
    from qasic.errors import InputError

    cal = _x(32)
    with pytest.raises(InputError, match=f"tensor {tensor} is NaN or inf at [0-9]+ of 256 "
                                         "values on the calibration data") as e:
        quantize(NotFinite(kind).eval(), torch.from_numpy(cal[:1]), cal, QuantConfig())
    assert "\n" not in str(e.value)


def test_a_bias_floor_leaves_ordinary_layers_alone():
    """An ordinary layer's bias is ~1e3-1e4 accumulator units, far below BIAS_UNITS: the floor
    (bias_weight_scales) does not bind there."""
    from qasic.quant.quantize import BIAS_UNITS

    m, cal = BiasOverVanishing("none").eval(), _x(32)
    g = quantize(m, torch.from_numpy(cal[:1]), cal, QuantConfig())
    for n in g.weighted_nodes():
        assert np.abs(n.params["bias"]).max() < BIAS_UNITS >> 10


def test_a_bias_over_a_vanishing_input_of_fp8_weights_names_the_input_in_one_line():
    """FP8 weights keep their levels' own scales (no floor): on PEs wide enough for them, the
    overflow of a 32-bit accumulator names the layer's input and its almost-zero scale, not only
    acc_bits."""
    from dataclasses import replace

    from qasic.compiler import compile_graph
    from qasic.errors import ConfigError

    m, cal = BiasOverVanishing("input").eval(), _x(32)
    graph = quantize(m, torch.from_numpy(cal[:1]), cal, QuantConfig(weight_format="fp8_e4m3"))
    arch = replace(default_arch(), weight_bits=19)  # FP8 E4M3's levels
    with pytest.raises(ConfigError, match=r"its input 'a' was calibrated to an almost-zero "
                                          r"range") as e:
        compile_graph(graph, arch)
    assert "\n" not in str(e.value)
