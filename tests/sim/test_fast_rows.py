"""GATHER, SCATTER, SOFTMAX and NORM in the fast path (qasic.sim.fastrows): on the hand-built
operands of tests/sim/test_transformer_instructions.py, the interpreter runs each instruction
itself (no hand-over to the machine) and leaves every memory byte as the per-instruction machine
does; where the machine refuses, the interpreter hands over without writing, so the error is the
machine's."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.errors import InputError, ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.program import Program
from qasic.quant import intops
from qasic.sim import fast
from qasic.sim.machine import Machine
from tests.sim.test_instructions import ARCH, BATCH, REGIONS, ins, machine, put_rows, random_codes
from tests.sim.test_transformer_instructions import IDX, TABLE, gather_case, softmax_case


def clone(m: Machine, arch=None) -> Machine:
    new = Machine(m.program, arch or m.arch, m.batch)
    new.dram[:] = m.dram
    words = min(new.acc.shape[1], m.acc.shape[1])  # the accumulator's words follow acc_bits
    new.acc[:, :words] = m.acc[:, :words]
    for name, mem in m.mem.items():
        new.mem[name][:] = mem
    return new


def fast_step(m: Machine, instr: Instr) -> list[str]:
    """Run the program ``instr``, END on the fast path (qasic.sim.fast.run); the opcodes it
    handed to the machine (which raises its own errors)."""
    m.program = Program((instr, Instr("END")), (0, 0), b"", REGIONS)
    handed: list[str] = []
    step = m.step
    m.step = lambda i, ins: (handed.append(ins.op), step(i, ins))
    fast.run(m)
    return handed


def assert_same(a: Machine, b: Machine) -> None:
    np.testing.assert_array_equal(a.dram, b.dram)
    np.testing.assert_array_equal(a.acc, b.acc)
    for name, mem in a.mem.items():
        np.testing.assert_array_equal(b.mem[name], mem, err_msg=name)


def runs_fast_and_exact(m: Machine, instr: Instr) -> None:
    exact, quick = clone(m), clone(m)
    exact.step(0, instr)
    assert fast_step(quick, instr) == [], f"{instr.op} was handed to the machine"
    assert_same(exact, quick)


def hands_over(m: Machine, instr: Instr, error, match: str) -> None:
    """The machine refuses ``instr``; the fast path hands it over without writing first."""
    quick, writes = clone(m), []
    step = Machine.step

    def watch(self, i, ins):  # the state when the machine receives the instruction
        writes.append(clone(self))
        step(self, i, ins)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Machine, "step", watch)
        with pytest.raises(error, match=match):
            fast_step(quick, instr)
    assert len(writes) == 1
    assert_same(m, writes[0])


# ---- GATHER and SCATTER ----------------------------------------------------------------------

@pytest.mark.parametrize("mem", ["input", "weight", "output", "param"])
def test_gather_per_element_indices(mem):
    m, g, _ = gather_case(mem, np.array([[3, 0, 10, 3], [7, 7, 1, 2]]))
    runs_fast_and_exact(m, g)


def test_gather_bad_index_or_range_is_the_machines_error():
    m, g, _ = gather_case("input", np.array([[3, 0, 11, 3], [7, 7, 1, 2]]))
    hands_over(m, g, InputError, r"index 11 at DRAM byte .* \(batch element 0\)")
    m, g, _ = gather_case("input", np.array([[3, 0, 1, 3], [7, -1, 1, 2]]))
    hands_over(m, g, InputError, r"index -1 at DRAM byte .* \(batch element 1\)")
    m, g, _ = gather_case("input", np.zeros((BATCH, 2), np.int64))
    hands_over(m, ins("GATHER", {**g.args, "mem": "acc"}), ProgramFormatError, "accumulator")
    hands_over(m, ins("GATHER", {**g.args, "sram_addr": ARCH.input_sram_bytes - 9}),
               ProgramFormatError, "scratchpad rows range")
    runs_fast_and_exact(m, ins("GATHER", {**g.args, "count": 0}))  # nothing moves


@pytest.mark.parametrize("mem", ["input", "output"])
def test_scatter_in_order_last_wins(mem):
    rng = np.random.default_rng(5)
    m = machine()
    m.mem[mem][:, :40] = rng.integers(0, 256, size=(BATCH, 40), dtype=np.uint8)
    m.dram[:, IDX:IDX + 12] = np.array([[4, 0, 4], [2, 10, 1]]).astype("<i4").view(np.uint8)
    s = ins("SCATTER", mem=mem, idx_addr=IDX, count=3, table_addr=TABLE, table_stride=7,
            vocab=11, row_bytes=5, sram_addr=6, sram_stride=9)
    runs_fast_and_exact(m, s)
    m.dram[1, IDX + 4:IDX + 8] = np.array([11], "<i4").view(np.uint8)
    hands_over(m, s, InputError, r"^instruction 0 \(SCATTER\): index 11")


# ---- SOFTMAX ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt, ofmt", [("int8", "int8"), ("int4", "int8"), ("int8", "int4"),
                                       ("int6", "int3")])
@pytest.mark.parametrize("causal, masked, q_pos, mask_stride", [
    (0, 0, 0, 0), (1, 0, 0, 0), (1, 0, 3, 0), (0, 1, 0, 0), (1, 1, 2, 0), (0, 1, 0, 12),
    (1, 1, 2, 9)])
def test_softmax(fmt, ofmt, causal, masked, q_pos, mask_stride):
    m, sm, *_ = softmax_case(fmt, ofmt, causal, masked, q_pos, mask_stride=mask_stride)
    runs_fast_and_exact(m, sm)


def test_softmax_in_place_with_a_table_per_element():
    m, sm, *_ = softmax_case("int8", "int8", 1, 1, 1)
    table = intops.exp_table(0.11, 8)  # element 1 has its own table
    m.mem["param"][1, 64:64 + 4 * len(table)] = table.astype("<i4").view(np.uint8)
    runs_fast_and_exact(m, ins("SOFTMAX", {**sm.args, "dst_addr": 100, "dst_stride": 13}))
    m, sm, *_ = softmax_case("int4", "int4", 0, 0, keys=9)
    m.mem["output"][:, 104] |= 0xF0  # bits beyond a packed row are kept
    runs_fast_and_exact(m, ins("SOFTMAX", {**sm.args, "dst_addr": 100, "dst_stride": 13}))
    runs_fast_and_exact(m, ins("SOFTMAX", {**sm.args, "rows": 0}))


def test_softmax_refusals_are_the_machines_errors():
    m, sm, *_ = softmax_case("int8", "int8", 0, 0)
    hands_over(m, ins("SOFTMAX", {**sm.args, "ofmt": "fp8_e4m3"}), ProgramFormatError,
               "is not an INT encoding")
    hands_over(m, ins("SOFTMAX", {**sm.args, "table_addr": 4000}), ProgramFormatError,
               r"exp table range \[4000, 5024\)")
    hands_over(m, ins("SOFTMAX", {**sm.args, "masked": 1, "mask_stride": 1900}),
               ProgramFormatError, r"mask range \[900, 8509\)")
    m.mem["param"][1, 64 + 4 * 7:64 + 4 * 8] = np.array([70000], "<i4").view(np.uint8)
    hands_over(m, sm, ProgramFormatError, r"exp-table entry 70000 at param byte 92 \(batch "
                                          r"element 1\)")


# ---- NORM ------------------------------------------------------------------------------------

def norm_case(fmt: str, zp: int, center: int, chunk: int, rows: int = 3, n: int = 10):
    rng = np.random.default_rng(abs(zp) + center + chunk)
    m = machine()
    put_rows(m.mem["input"], 40, 40, random_codes(rng, (BATCH, rows, n), fmt), fmt)
    for b, scale in enumerate((0.02, 0.3)):  # an epsilon per element
        eps = intops.norm_epsilon(1e-5, scale, n, bool(center))
        m.mem["param"][b, 8:16] = np.array([eps], "<i8").view(np.uint8)
    m.acc[:, :200] = 12345
    return m, ins("NORM", src_addr=40, src_stride=40, rows=rows, len=n, chunk=chunk,
                  acc_addr=20, center=center, zp=zp, eps_addr=8, fmt=fmt)


@pytest.mark.parametrize("fmt, zp", [("int8", -100), ("int8", 0), ("int4", -3), ("int5", 7),
                                     ("int16", -1234)])
@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("chunk", [4, 10, 16])
def test_norm(fmt, zp, center, chunk):
    m, nm = norm_case(fmt, zp, center, chunk)
    runs_fast_and_exact(m, nm)


def test_norm_wraps_to_acc_bits_and_skips_empty_rows():
    m, nm = norm_case("int8", 0, 0, 4)
    narrow = clone(m, dataclasses.replace(ARCH, acc_bits=16))
    runs_fast_and_exact(narrow, nm)
    runs_fast_and_exact(m, ins("NORM", {**nm.args, "rows": 0, "chunk": 0}))


def test_norm_refusals_are_the_machines_errors():
    m, nm = norm_case("int8", 0, 1, 4)
    hands_over(m, ins("NORM", {**nm.args, "chunk": 0}), ProgramFormatError, "chunk = 0")
    hands_over(m, ins("NORM", {**nm.args, "len": 4097}), ProgramFormatError, "exceeds 4096")
    hands_over(m, ins("NORM", {**nm.args, "fmt": "fp8_e4m3"}), ProgramFormatError,
               "is not an INT")
    hands_over(m, ins("NORM", {**nm.args, "len": 4000, "fmt": "int16"}), ProgramFormatError,
               "overflow the int64 sum of squares")
    words = ARCH.acc_sram_bytes // ARCH.acc_word_bytes
    hands_over(m, ins("NORM", {**nm.args, "acc_addr": words - 8}), ProgramFormatError,
               "acc range")
    m.mem["param"][1, 8:16] = np.array([-1], "<i8").view(np.uint8)
    hands_over(m, nm, ProgramFormatError, r"epsilon -1 at param byte 8 \(batch element 1\)")
