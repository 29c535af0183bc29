"""The Amaranth instruction layouts are the table's bit positions, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, enum
from amaranth.sim import Simulator

from qasic.isa.encoding import encode
from qasic.isa.layouts import HEADER_LAYOUT, INSTR, LAYOUTS, Op, field_shape, struct_layout
from qasic.isa.table import HEADER, OPCODES, WORD_BITS, Field
from tests.isa.instrs import OPERANDS, random_instr

NAMES = [op.name for op in OPCODES]


def _named(layout: data.StructLayout) -> dict[str, data.Field]:
    return {name: f for name, f in layout if not name.startswith("_")}


@pytest.mark.parametrize("op", OPCODES, ids=NAMES)
def test_offsets_widths_and_signedness_match_the_table(op):
    layout = LAYOUTS[op.name]
    assert layout.size == WORD_BITS
    assert list(_named(layout)) == [f.name for f in sorted(op.fields, key=lambda f: f.lo)]
    for f in op.fields:
        got = layout[f.name]
        shape = Shape.cast(got.shape)
        assert (got.offset, got.width) == (f.lo, f.width), f"{op.name}.{f.name}"
        assert shape.signed == f.signed, f"{op.name}.{f.name}"


@pytest.mark.parametrize("op", OPCODES, ids=NAMES)
def test_layout_reads_back_every_encoded_field(op):
    rng = np.random.default_rng(op.code)
    for _ in range(100):
        ins = random_instr(rng, op.name)
        word = encode(ins)
        view = INSTR.from_bits(word)
        assert view.header.opcode is Op[op.name]
        assert view.as_bits() == word
        fields = view[op.name]
        for t in ("pop_prev", "pop_next", "push_prev", "push_next"):
            assert fields[t] == int(getattr(ins, t))
        for f in op.fields[len(HEADER):]:
            got = fields[f.name]
            assert (got.name if f.enum else got) == ins[f.name], f"{op.name}.{f.name}"


@pytest.mark.parametrize("op", OPCODES, ids=NAMES)
def test_layout_constant_encodes_like_the_encoder(op):
    rng = np.random.default_rng(100 + op.code)
    for _ in range(50):
        ins = random_instr(rng, op.name)
        init = {"opcode": Op[op.name], **ins.tokens()}
        for f in op.fields[len(HEADER):]:
            shape = field_shape(f)
            init[f.name] = shape[ins[f.name]] if f.enum else ins[f.name]
        assert LAYOUTS[op.name].const(init).as_bits() == encode(ins)


def test_enums_are_shaped_like_their_fields():
    assert Shape.cast(Op) == Shape.cast(HEADER_LAYOUT["opcode"].shape)
    assert {m.name: m.value for m in Op} == {op.name: op.code for op in OPCODES}
    mem = LAYOUTS["LOAD"]["mem"].shape
    assert mem is LAYOUTS["STORE"]["mem"].shape  # one enum shared by every opcode that uses it
    assert [m.name for m in mem] == list(OPCODES[0].field("mem").enum)


def test_gateware_view_decodes_what_the_host_encoded():
    """Drive a Signal(INSTR) in Amaranth's simulator and read each opcode's fields back."""
    sig, rng = Signal(INSTR), np.random.default_rng(7)
    instrs = [random_instr(rng, op.name) for op in OPCODES for _ in range(3)]
    seen = []

    async def testbench(ctx):
        for ins in instrs:
            ctx.set(sig.as_value(), encode(ins))
            fields = sig[ins.op]
            assert ctx.get(sig.header.opcode) is Op[ins.op]
            got = {f.name: ctx.get(getattr(fields, f.name))
                   for f in OPERANDS[ins.op]}
            seen.append({k: v.name if isinstance(v, enum.Enum) else v for k, v in got.items()})

    sim = Simulator(Module())
    sim.add_testbench(testbench)
    sim.run()
    assert seen == [dict(ins.args) for ins in instrs]


def test_gaps_and_tail_are_padding():
    layout = struct_layout((Field("a", 2, 3, "a"), Field("b", 9, 2, "b")), width=16)
    assert [(n, f.offset, f.width) for n, f in layout] == [
        ("_0", 0, 2), ("a", 2, 3), ("_1", 5, 4), ("b", 9, 2), ("_2", 11, 5)]
