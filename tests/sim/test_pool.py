"""Pooled machines (qasic.sim.pool): a machine handed out again is in exactly the state of a new
one, and runs on it give the per-instruction machine's outputs."""

from __future__ import annotations

import numpy as np

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.quant import reference
from qasic.sim import fast, pool
from qasic.sim.machine import Machine
from qasic.sim.run import run_functional
from tests.compiler.test_transformer import codes_for
from tests.compiler.transformers import attention_block
from tests.graphs import cnn_graph, random_codes

ARCH = default_arch()


def assert_fresh(m: Machine) -> None:
    new = Machine(m.program, m.arch, m.batch)
    np.testing.assert_array_equal(m.dram, new.dram)
    np.testing.assert_array_equal(m.acc, new.acc)
    for name, mem in new.mem.items():
        np.testing.assert_array_equal(m.mem[name], mem, err_msg=name)
    assert m.gemm_calls == new.gemm_calls


def test_a_reset_machine_is_a_new_one():
    g = cnn_graph()
    p = compile_graph(g, ARCH)
    m = Machine(p, ARCH, 3)
    m.write_region(p.meta["input"]["tensor"], random_codes(g, 3))
    fast.run(m)
    assert np.any(m.acc != 0) and np.any(m.mem["output"] != 0)
    pool.reset(m)
    assert_fresh(m)


def test_a_reset_machine_after_an_attention_block_is_a_new_one():
    """Dynamic weights, KV-free attention: every scratchpad and DRAM written."""
    g = attention_block(bits=8, masked=True)
    p = compile_graph(g, ARCH)
    m = Machine(p, ARCH, 2)
    m.write_region(p.meta["input"]["tensor"], codes_for(g, 2, seed=1))
    m.run()
    pool.reset(m)
    assert_fresh(m)


def test_repeated_runs_reuse_one_machine_and_stay_exact():
    g = cnn_graph(seed=3)
    p = compile_graph(g, ARCH)
    first = None
    for seed in range(3):
        x = random_codes(g, 4, seed=seed)
        np.testing.assert_array_equal(run_functional(p, ARCH, x), reference.run(g, x))
        kept = pool.machine(p, ARCH, 4)
        first = first or kept
        assert kept is first  # the same machine came back each time
        pool.release(kept)
    x = random_codes(g, 2, seed=9)  # another batch size: another machine
    np.testing.assert_array_equal(run_functional(p, ARCH, x), reference.run(g, x))
