"""A sampled map at computed locations (quant.grid_sample: distance linears, tent tables, their
product and a matmul with the map as dynamic weights) on the RTL: outputs equal to the golden
reference's and the simulator's, cycles to the timing model's, on the shared 4x4 build."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.mark.rtl
def test_grid_sample_runs_on_the_rtl(rtl_build_dir):
    from benchmarks.rtl_run import point_arch, small_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, quantize, reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.run import input_codes
    from qasic.sim.timing import schedule
    from tests.quant.test_grid_sample import GridNet, _x

    arch = point_arch("w8a8", small_arch())
    x = _x(8)
    graph = quantize(GridNet().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    program = compile_graph(graph, arch)
    codes = input_codes(program, x[:2])
    result = rtl_run(program, arch, codes, rtl_build_dir,
                     reference=reference.run(graph, codes))
    assert result.outputs_equal and result.reference_equal
    assert result.cycles_rtl == result.cycles_sim == schedule(program, arch).total
    assert np.isfinite(result.cycles_rtl)
