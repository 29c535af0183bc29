"""qasic.flow.arch_for: the array fitted to a quantized graph holds the operands of every GEMM
the compiler emits, a resize's constant GEMMs included (compiler.resize): at FP8 activations a
nearest or bicubic resize's intermediate is an FP8 matmul operand (19-bit E4M3 levels) and its
row weights 8-bit codes, which the fitted 5-bit PEs refused (Encodec, Xcodec2, ClapAudio)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.flow import arch_for
from qasic.quant import QuantConfig, quantize, reference
from qasic.quant.evaluate import cosine
from qasic.sim.run import run_functional
from tests.quant.opcheck import to_torch_layout

F = torch.nn.functional


class Resize(torch.nn.Module):
    def __init__(self, mode: str, scale: float):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.mode, self.scale = torch.nn.Conv2d(3, 8, 1), mode, scale

    def forward(self, x):
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode=self.mode)


@pytest.mark.parametrize(("mode", "scale"), [("nearest", 0.5), ("bicubic", 0.5),
                                             ("nearest", 1.5)])
@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e3m4"])
def test_a_resize_at_fp8_activations_runs_on_the_fitted_array(mode, scale, fmt):
    net = Resize(mode, scale).eval()
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    g = quantize(net, torch.from_numpy(x[:1]), x, QuantConfig(activation_format=fmt))
    arch = arch_for(g, default_arch())
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    got = run_functional(compile_graph(g, arch), arch, codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    q = to_torch_layout(g.dequantize_output(want).reshape(4, *f.shape[2:], 8), f)
    assert cosine(q, f) > 0.99
