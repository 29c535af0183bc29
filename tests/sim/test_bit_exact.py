"""Simulator == golden reference, raw integers, on every graph shape and tiling we can provoke."""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from qasic.compiler import PATTERNS, compile_graph
from qasic.errors import ConfigError
from qasic.isa.program import Program
from qasic.quant import reference
from qasic.sim import kernels
from qasic.sim.run import run_functional, simulate
from tests.archs import archs
from tests.graphs import cnn_graph, random_codes, residual_graph, strided_graph

ARCHS = archs()
GRAPHS = {
    "cnn-888": lambda: cnn_graph(wbits=(8, 8, 8)),
    "cnn-444": lambda: cnn_graph(seed=1, wbits=(4, 4, 4)),
    "cnn-235": lambda: cnn_graph(seed=2, wbits=(2, 3, 5)),
    "cnn-768": lambda: cnn_graph(seed=3, wbits=(7, 6, 8)),
    "residual": residual_graph,
    "strided": strided_graph,
}
SINGLE_OP_PATTERNS = tuple(p for p in PATTERNS if len(p[0]) == 1)


@cache
def graph(name: str):
    return GRAPHS[name]()


@cache
def program(graph_name: str, arch: str, fused: bool = True) -> Program:
    patterns = PATTERNS if fused else SINGLE_OP_PATTERNS
    return compile_graph(graph(graph_name), ARCHS[arch], patterns=patterns)


def inputs(g, n: int = 12, seed: int = 1) -> np.ndarray:
    """Random codes plus the two saturating extremes."""
    x = random_codes(g, n, seed)
    x[0], x[1] = -128, 127
    return x


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", GRAPHS)
def test_simulator_equals_reference(name, arch, gemm_path):
    """Both GEMM paths (the general Numba kernel and the BLAS one) are bit-exact."""
    g = graph(name)
    x = inputs(g)
    out = simulate(program(name, arch), ARCHS[arch], codes=x, batch=5,
                   gemm_path=gemm_path).outputs
    golden = reference.run(g, x)
    assert out.dtype == golden.dtype == np.int64
    np.testing.assert_array_equal(out, golden)


@pytest.mark.parametrize("name", ["cnn-888", "cnn-235", "residual", "strided"])
def test_unfused_program_equals_reference(name):
    g = graph(name)
    x = inputs(g, seed=2)
    out = simulate(program(name, "default", fused=False), ARCHS["default"], codes=x).outputs
    np.testing.assert_array_equal(out, reference.run(g, x))


def test_float_inputs_are_quantized_like_the_graph():
    g = graph("cnn-888")
    x = np.random.default_rng(3).normal(0, 1.5, (6, 1, 8, 8))  # NCHW, partly saturating
    out = simulate(program("cnn-888", "default"), ARCHS["default"], x).outputs
    np.testing.assert_array_equal(out, reference.run(g, g.quantize_input(x)))


def test_accumulator_overflow_is_refused_at_compile_time():
    narrow = dataclasses.replace(ARCHS["default"], acc_bits=16)
    with pytest.raises(ConfigError, match="array.acc_bits = 16 can overflow in layer conv1"):
        compile_graph(graph("cnn-888"), narrow)


@pytest.fixture
def pure_python_kernels(monkeypatch):
    """NUMBA_DISABLE_JIT semantics: every kernel (and the helpers they call) as plain Python."""
    for name in dir(kernels):
        fn = getattr(kernels, name)
        if hasattr(fn, "py_func"):
            monkeypatch.setattr(kernels, name, fn.py_func)


@pytest.mark.parametrize("name, arch", [("small-cnn", "4x4"), ("residual", "4x8")])
def test_pure_python_kernels_equal_reference(pure_python_kernels, name, arch):
    g = cnn_graph(seed=4, wbits=(3, 5, 8), hw=4, c1=6, c2=5) if name == "small-cnn" else \
        graph(name)
    p = compile_graph(g, ARCHS[arch])
    x = inputs(g, n=3)
    assert not hasattr(kernels.gemm, "py_func")  # really running the Python bodies
    np.testing.assert_array_equal(run_functional(p, ARCHS[arch], x), reference.run(g, x))
