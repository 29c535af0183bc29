"""simulate computes cycles, energy and per-layer stats once per program and arch
(run.program_costs) and hands every run its own copy."""

from __future__ import annotations

import numpy as np

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.sim import simulate
from qasic.sim.run import _stats
from qasic.sim.timing import schedule
from tests.graphs import cnn_graph, random_codes

ARCH = default_arch()


def test_every_run_has_the_costs_of_a_fresh_computation_and_its_own_copy():
    g = cnn_graph(seed=2)
    p = compile_graph(g, ARCH)
    x = random_codes(g, 3)
    first = simulate(p, ARCH, codes=x)
    first.layers[0]["energy_pj"]["total"] = -1.0  # a caller editing its result
    first.layers[0]["cycles"] = -1
    first.energy_pj["total"] = -1.0
    first.meta["model"] = "edited"
    again = simulate(p, ARCH, codes=x[:2])
    fresh = _stats(p, ARCH, again.outputs, schedule(p, ARCH))
    assert again.layers == fresh.layers
    assert again.energy_pj == fresh.energy_pj
    assert again.meta == fresh.meta
    assert (again.cycles, again.macs, again.dram_bytes) == (fresh.cycles, fresh.macs,
                                                           fresh.dram_bytes)
    np.testing.assert_array_equal(again.timing.end, fresh.timing.end)
    np.testing.assert_array_equal(again.outputs, first.outputs[:2])
