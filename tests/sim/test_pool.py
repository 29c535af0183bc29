"""Pooled machines (qasic.sim.pool): a machine handed out again is in exactly the state of a new
one, and runs on it give the per-instruction machine's outputs."""

from __future__ import annotations

import numpy as np

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.isa.encoding import Instr
from qasic.isa.program import Program, Region
from qasic.quant import reference
from qasic.sim import fast, pool
from qasic.sim.machine import Machine
from qasic.sim.run import run_functional
from tests.compiler.test_transformer import codes_for
from tests.compiler.transformers import attention_block
from tests.graphs import cnn_graph, random_codes, with_act_bits

ARCH = default_arch()


def assert_same(m: Machine, new: Machine) -> None:
    np.testing.assert_array_equal(m.dram, new.dram)
    np.testing.assert_array_equal(m.acc, new.acc)
    for name, mem in new.mem.items():
        np.testing.assert_array_equal(m.mem[name], mem, err_msg=name)
    assert m.gemm_calls == new.gemm_calls


def assert_runs_as_new(g, p, codes, run=fast.run) -> Machine:
    """A run, a reset and a second run on other inputs leave every memory (DRAM, scratchpads,
    accumulator) as that second run on a new machine: bytes the program never reads before
    writing need no zeroing, the run rewrites them."""
    batch = len(codes[0])
    m = Machine(p, ARCH, batch)
    m.write_region(p.meta["input"]["tensor"], codes[0])
    run(m)
    assert np.any(m.acc != 0) and np.any(m.mem["output"] != 0)
    pool.reset(m)
    m.write_region(p.meta["input"]["tensor"], codes[1])
    run(m)
    new = Machine(p, ARCH, batch)
    new.write_region(p.meta["input"]["tensor"], codes[1])
    run(new)
    assert_same(m, new)
    return m


def test_a_reset_machine_runs_as_a_new_one():
    g = cnn_graph()
    p = compile_graph(g, ARCH)
    assert_runs_as_new(g, p, [random_codes(g, 3, seed=s) for s in (1, 2)])
    assert pool.written(p, Machine(p, ARCH, 1)).zero == frozenset()  # all written first


def test_a_reset_machine_after_an_attention_block_runs_as_a_new_one():
    """Dynamic weights, KV-free attention: every scratchpad and DRAM written."""
    g = attention_block(bits=8, masked=True)
    p = compile_graph(g, ARCH)
    assert_runs_as_new(g, p, [codes_for(g, 2, seed=s) for s in (1, 2)], Machine.run)


def test_packed_codes_zero_the_scratchpad_they_share_bytes_in():
    """INT4 codes: a POST writes half bytes, keeping the other half (a read of it)."""
    g = with_act_bits(cnn_graph(), 4)
    p = compile_graph(g, ARCH)
    assert "output" in pool.written(p, Machine(p, ARCH, 1)).zero
    assert_runs_as_new(g, p, [random_codes(g, 2, seed=s) for s in (3, 4)])


def test_a_read_before_any_write_zeroes_that_scratchpad():
    """A GEMM reads input bytes no LOAD has written yet (a fresh machine's zeros), then a LOAD
    writes them: the reset must zero the input scratchpad, or the second run would read what
    the first left there."""
    regions = (Region("constants", 0, 512, "constants"), Region("x", 512, 16, "input"))
    load = {"rows": 1, "planes": 1, "dram_stride": 0, "sram_stride": 0}
    gemm = {"lines": 1, "rows": 2, "k": 16, "n": 16, "wbits": 8, "afmt": "int8",
            "accumulate": 1}
    instrs = (Instr("LOAD", dict(load, mem="weight", row_bytes=256, dram_addr=0)),
              Instr("GEMM", gemm),
              Instr("LOAD", dict(load, mem="input", row_bytes=32, dram_addr=256)),
              Instr("GEMM", gemm), Instr("END"))
    consts = np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8).tobytes()
    p = Program(instrs, (0,) * len(instrs), consts, regions,
                {"input": {"tensor": "x"}})
    m = Machine(p, ARCH, 1)
    assert pool.written(p, m).zero == {"input", "acc"}
    fast.run(m)
    first = m.acc.copy()
    pool.reset(m)
    fast.run(m)
    np.testing.assert_array_equal(m.acc, first)


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
