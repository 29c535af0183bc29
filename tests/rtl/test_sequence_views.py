"""Sequence programs whose data moves are views (no instructions) on the RTL: Kim's CNN (the
concat's inputs written by the branches' max-pools into its buffer, permutes and relus folded
by compiler.aliases) and a gated MLP split by a feature chunk (a 'channels' view of a norm's
output): outputs equal to the golden reference's and the simulator's, cycles to the timing
model's, on the shared 4x4 build."""

from __future__ import annotations

import numpy as np
import pytest
import torch


@pytest.mark.rtl
def test_sequence_views_run_on_the_rtl(rtl_build_dir):
    from benchmarks.rtl_run import point_arch, small_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, quantize, reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.run import input_codes
    from qasic.sim.timing import schedule
    from tests.quant.test_concat_carried import KimCNN, _ids
    from tests.quant.test_feature_views import GatedNorm

    arch = point_arch("w8a8", small_arch())
    floats = np.random.default_rng(0).normal(size=(8, 6, 16)).astype(np.float32)
    for model, x, kinds in ((KimCNN().eval(), _ids(), {"gather", "gemm", "pool"}),
                            (GatedNorm().eval(), floats, {"gemm", "norm", "lut", "ew"})):
        graph = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
        program = compile_graph(graph, arch)
        assert {layer["kind"] for layer in program.layers} == kinds  # no copy, table, permute
        codes = input_codes(program, x[:2])
        result = rtl_run(program, arch, codes, rtl_build_dir,
                         reference=reference.run(graph, codes))
        assert result.outputs_equal and result.reference_equal
        assert result.cycles_rtl == result.cycles_sim == schedule(program, arch).total
