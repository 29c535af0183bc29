"""Encoding rules that calibration follows (qasic.quant.encodings): an average pool writes the
encoding it reads (isa.table POOL has one fmt), so at FP8 activations an INT requirement on its
output (a matmul operand) reaches its input. Before, the pool read FP8 and the golden reference
wrote INT codes the simulator never produced (DepthPro's bilinear downsampling of its FP8 input
into a matmul: not bit-exact, cosine 0)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.flow import arch_for
from qasic.quant import QuantConfig, quantize, reference
from qasic.quant.encodings import requirements
from qasic.quant.evaluate import cosine
from qasic.sim.run import run_functional

F = torch.nn.functional


class PoolIntoMatmul(torch.nn.Module):
    """The FP8 input average-pooled (an avgpool2d, or a bilinear 1/2 downsampling lowered to
    one) then a matmul with itself: the pool's output is a symmetric INT operand."""

    def __init__(self, bilinear: bool):
        super().__init__()
        self.bilinear = bilinear

    def forward(self, x):
        p = F.interpolate(x, scale_factor=0.5, mode="bilinear") if self.bilinear \
            else F.avg_pool2d(x, 2)
        p = p.flatten(2)
        return p @ p.transpose(1, 2)


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e3m4"])
@pytest.mark.parametrize("bilinear", [False, True])
def test_a_pool_into_a_matmul_reads_int_at_fp8_activations(fmt, bilinear):
    net = PoolIntoMatmul(bilinear).eval()
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    g = quantize(net, torch.from_numpy(x[:1]), x, QuantConfig(activation_format=fmt))
    pool = next(n for n in g.nodes if n.op == "avgpool2d")
    tin, tout = g.tensors[pool.inputs[0]], g.tensors[pool.output]
    assert not tin.is_fp and not tout.is_fp and tout.zero_point == 0
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    arch = arch_for(g, default_arch())
    got = run_functional(compile_graph(g, arch), arch, codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    assert cosine(g.dequantize_output(want).reshape(f.shape), f) > 0.99


def test_the_int_requirement_passes_through_a_chain_of_pools():
    class Chain(torch.nn.Module):
        def forward(self, x):
            p = F.avg_pool2d(F.avg_pool2d(x, 2), 2).flatten(2)
            return p @ p.transpose(1, 2)

    from qasic.quant import capture
    from qasic.quant.calibrate import SHARES_INPUT

    g = capture(Chain().eval(), torch.zeros(1, 3, 8, 8))
    need = requirements(g, SHARES_INPUT)
    pools = [n for n in g.nodes if n.op == "avgpool2d"]
    assert len(pools) == 2 and all(n.inputs[0] in need for n in pools)


class ClampedIntoNorm(torch.nn.Module):
    """A product clipped (a mul fused with its clamp, as Gemma's audio towers clip) into a
    LayerNorm: the norm's INT requirement reaches the mul through the fused clamp."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin, self.norm = torch.nn.Linear(16, 16), torch.nn.LayerNorm(16)

    def forward(self, x):
        return self.norm(torch.clamp(self.lin(x) * x, -2.0, 2.0))


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "fp8_e3m4"])
def test_a_clamped_product_into_a_norm_is_int_at_fp8_activations(fmt):
    """Was a crash: 'normalization input must be INT codes, not fp8_e4m3'."""
    _norm_input_is_int(ClampedIntoNorm().eval(), fmt)


def _norm_input_is_int(net: torch.nn.Module, fmt: str) -> None:
    """At activation format ``fmt``, ``net``'s norm reads INT codes, and the simulator equals the
    golden reference (cosine to the float net above 0.99)."""
    x = np.random.default_rng(0).standard_normal((8, 5, 16)).astype(np.float32)
    g = quantize(net, torch.from_numpy(x[:1]), x, QuantConfig(activation_format=fmt))
    norm = next(n for n in g.nodes if n.op == "norm")
    assert not g.tensors[norm.inputs[0]].is_fp
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    arch = arch_for(g, default_arch())
    got = run_functional(compile_graph(g, arch), arch, codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    assert cosine(g.dequantize_output(want).reshape(f.shape), f) > 0.99


class NormedAndConcatenated(torch.nn.Module):
    """AXK2's attention: a linear's output read by an RMSNorm and by a concat (its codes go
    straight into the concat's buffer, so it takes the concat's one TensorQ)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = torch.nn.Linear(16, 16), torch.nn.Linear(16, 8)
        self.norm, self.out = torch.nn.RMSNorm(16), torch.nn.Linear(40, 8)

    def forward(self, x):
        a = self.a(x)
        both = torch.cat([a, self.b(x)], dim=-1)
        return self.out(torch.cat([self.norm(a), both], dim=-1))


@pytest.mark.parametrize("fmt", ["fp8_e4m3", "int"])
def test_a_norm_input_pinned_to_a_concat_is_int_at_fp8_activations(fmt):
    """Was a crash at FP8 (AXK2Model: 'normalization input must be INT codes, not fp8_e4m3'):
    the norm's INT need was on the linear's output, whose TensorQ is the concat's."""
    from qasic.quant import capture
    from qasic.quant.calibrate import concat_pins

    net = NormedAndConcatenated().eval()
    graph = capture(net, torch.zeros(1, 5, 16))
    norm = next(n for n in graph.nodes if n.op == "norm")
    assert norm.inputs[0] in concat_pins(graph)  # the case: pinned to the concat
    _norm_input_is_int(net, fmt)
