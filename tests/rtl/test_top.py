"""Whole programs on the whole accelerator: digits_cnn DRAM to DRAM under cocotb + Verilator.

Each design point of the issue runs 16 test samples: the RTL's outputs must equal the golden
reference's and the simulator's on every sample, and its cycle count the timing model's within
1% (the aim is 0). The builds are shared: every point but the fit-arch one compiles for one
array whose PEs cover all of them (a 4x4 array and small scratchpads keep Verilator's build
small enough for CI).
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.quant import QuantConfig

SAMPLES = 16
POINTS = {
    "w8a8": QuantConfig(),
    "mixed_8_4_2": QuantConfig(weight_bits={"conv1": 8, "conv2": 4, "fc": 2}),
    "mxfp4": QuantConfig(weight_format="mxfp4"),
    "fp8_acts": QuantConfig(activation_format="fp8_e4m3"),
}
SMALL = dataclasses.replace(
    default_arch(), name="rtl-ci-4x4", array_rows=4, array_cols=4, gemm_max_rows=16,
    input_sram_bytes=2048, weight_sram_bytes=2048, acc_sram_bytes=1024,
    output_sram_bytes=2048, param_sram_bytes=1024)


@cache
def _trained():
    from qasic.models import get_model
    return get_model("digits_cnn")


@cache
def _graph(point: str):
    from qasic.flow import quantize_model
    if point == "w4a8_fit":
        return quantize_model(_trained(), QuantConfig(weight_bits=4))
    return quantize_model(_trained(), POINTS[point])


@cache
def shared_arch():
    """One array for the shared points: each PE field the widest any point needs."""
    from qasic.flow import arch_for
    fits = [arch_for(_graph(p), SMALL) for p in POINTS]
    keys = ("weight_bits", "weight_shift_bits", "input_bits", "input_shift_bits", "acc_bits")
    return dataclasses.replace(SMALL, **{k: max(getattr(a, k) for a in fits) for k in keys})


def _run(point: str, build_dir):
    from qasic.compiler import compile_graph
    from qasic.flow import arch_for
    from qasic.quant import reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.run import input_codes

    graph = _graph(point)
    arch = arch_for(graph, SMALL) if point == "w4a8_fit" else shared_arch()
    program = compile_graph(graph, arch)
    x = _trained().test_inputs[:SAMPLES]
    codes = input_codes(program, x)
    ref = reference.run(graph, codes)
    return rtl_run(program, arch, codes, build_dir, reference=ref), arch


@pytest.mark.rtl
@pytest.mark.parametrize("point", [*POINTS, "w4a8_fit"])
def test_whole_program_is_bit_exact_and_cycle_matched(point, rtl_build_dir):
    result, arch = _run(point, rtl_build_dir)
    assert result.samples == SAMPLES
    assert result.reference_equal, f"{point}: RTL outputs differ from the golden reference"
    assert np.array_equal(result.outputs, result.sim_outputs)
    assert result.outputs_equal
    assert result.cycle_error <= 0.01, (
        f"{point} on {arch.name}: RTL {result.cycles_rtl} cycles, simulator "
        f"{result.cycles_sim}")
    assert len(set(result.sample_cycles)) == 1  # timing never depends on data
    for q, busy in result.busy_rtl.items():
        assert abs(busy - result.busy_sim[q]) <= 0.01 * max(result.busy_sim[q], 1), q
