"""The vectorised timing pass equals the instruction-by-instruction one, and the per-kernel
energy priced once per distinct instruction shape equals pricing every instruction."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.compiler import compile_graph
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.packing import dma_bytes, gather_dram_bytes
from qasic.isa.program import Program, Region
from qasic.sim.energy import CATEGORIES, EnergyModel
from qasic.sim.run import layer_costs
from qasic.sim.timing import schedule, schedule_loop
from tests.sim.test_fast import SMALL, attention_block, compiled


def programs():
    for name in ("int8", "int4-packed", "fp8", "mx-shift-lut", "int8-small-array"):
        _, p, arch = compiled(name)
        yield name, p, arch
    for bits, masked in ((8, True), (4, False)):
        yield f"attention-{bits}", compile_graph(attention_block(bits=bits, masked=masked),
                                                 SMALL), SMALL


@pytest.mark.parametrize("name, program, arch", list(programs()), ids=lambda v: str(v)[:20])
def test_vectorised_timing_equals_the_loop(name, program, arch):
    fast, loop = schedule(program, arch), schedule_loop(program, arch)
    assert fast.total == loop.total
    for col in ("start", "end", "issued"):
        np.testing.assert_array_equal(getattr(fast, col), getattr(loop, col), err_msg=col)


@pytest.mark.parametrize("name, program, arch", list(programs()), ids=lambda v: str(v)[:20])
def test_kernel_costs_equal_pricing_every_instruction(name, program, arch):
    model = EnergyModel(arch)
    energy = np.zeros((len(program.layers), len(CATEGORIES)))
    dram = np.zeros(len(program.layers), dtype=np.int64)
    for ins, k in zip(program.instrs, program.layer_ids):
        priced = model.instr(ins)
        energy[k] += [priced[c] for c in CATEGORIES]
        if ins.op in ("LOAD", "STORE") and not ins["fill"]:
            dram[k] += dma_bytes(ins)
        elif ins.op in ("GATHER", "SCATTER"):
            dram[k] += gather_dram_bytes(ins)
    got_energy, got_dram = layer_costs(program, arch)
    np.testing.assert_array_equal(got_energy, energy)  # same sums in the same order
    np.testing.assert_array_equal(got_dram, dram)


def malformed(*instrs: Instr) -> Program:
    return Program((*instrs, Instr("END")), (0,) * (len(instrs) + 1), b"",
                   (Region("constants", 0, 0, "constants"),))


@pytest.mark.parametrize("program, message", [
    (malformed(Instr("GEMM", {"lines": 0, "rows": 4, "k": 1, "n": 1, "wbits": 8})),
     r"instruction 0 \(GEMM\): fold_cycles: t = 0 must be >= 1"),
    (malformed(Instr("LOAD", {"planes": 1}, pop_prev=True)),
     r"instruction 0 \(LOAD\): the load queue has no prev queue to pop a token from"),
    (malformed(Instr("SYNC", pop_prev=True)),
     r"instruction 0 \(SYNC\) waits for a load->compute token that no earlier instruction"),
])
def test_malformed_programs_fail_with_the_loops_message(program, message):
    _, _, arch = compiled("int8")
    with pytest.raises(ProgramFormatError, match=message):
        schedule(program, arch)
