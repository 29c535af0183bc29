"""The ISA table is checked, and every encoding derived from it round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ProgramFormatError
from qasic.isa.encoding import (
    Instr,
    assemble,
    decode,
    decode_all,
    disassemble,
    encode,
    encode_all,
)
from qasic.isa.table import (
    BY_NAME,
    HEADER,
    OPCODES,
    WORD_BITS,
    WORD_BYTES,
    Field,
    Opcode,
    check_table,
)
from tests.isa.instrs import FLAGS, OPERANDS, extreme_instrs, random_instr, random_program

# ---- the table check -----------------------------------------------------------------------


def test_the_table_passes_its_own_check():
    check_table()


def _op(name: str, code: int, *fields: Field) -> Opcode:
    return Opcode(name, code, "compute", "test", HEADER + fields)


def test_duplicate_opcode_number_is_rejected():
    table = (_op("A", 1), _op("B", 1))
    with pytest.raises(ValueError, match="unique"):
        check_table(table)


def test_duplicate_opcode_name_is_rejected():
    with pytest.raises(ValueError, match="unique"):
        check_table((_op("A", 1), _op("A", 2)))


def test_overlapping_fields_are_rejected():
    table = (_op("A", 1, Field("x", 8, 8, "x"), Field("y", 15, 4, "y")),)
    with pytest.raises(ValueError, match=r"A\.y overlaps"):
        check_table(table)


def test_field_overlapping_the_header_is_rejected():
    with pytest.raises(ValueError, match=r"A\.x overlaps"):
        check_table((_op("A", 1, Field("x", 7, 4, "x")),))


def test_field_past_bit_127_is_rejected():
    table = (_op("A", 1, Field("x", WORD_BITS - 4, 8, "x")),)
    with pytest.raises(ValueError, match=rf"A\.x leaves the {WORD_BITS}-bit word"):
        check_table(table)


def test_opcode_that_does_not_fit_its_field_is_rejected():
    with pytest.raises(ValueError, match="does not fit the opcode field"):
        check_table((_op("A", 16),))


# ---- encode / decode -----------------------------------------------------------------------

@pytest.mark.parametrize("op", [op.name for op in OPCODES])
def test_encode_decode_round_trip_for_random_instructions(op):
    rng = np.random.default_rng(list(BY_NAME).index(op))
    for ins in [random_instr(rng, op) for _ in range(200)] + extreme_instrs(op):
        word = encode(ins)
        assert 0 <= word < 1 << WORD_BITS
        assert word & 0xF == BY_NAME[op].code
        assert decode(word) == ins


def test_round_trip_covers_negative_enum_and_flag_values():
    prog = random_program(seed=1)
    assert any(v < 0 for i in prog for v in i.args.values() if isinstance(v, int))
    assert {i["mem"] for i in prog if i.op == "LOAD"} == set(BY_NAME["LOAD"].field("mem").enum)
    assert all(any(getattr(i, t) for i in prog) for t in FLAGS)
    assert decode_all(encode_all(prog)) == prog


def test_every_field_lands_at_its_table_bits():
    for op in OPCODES:
        for f in OPERANDS[op.name]:
            value = f.enum[1] if f.enum else 1
            word = encode(Instr(op.name, {f.name: value}))
            assert word >> f.lo == 1, f"{op.name}.{f.name}"


def test_assemble_inverts_disassemble():
    prog = random_program(seed=2)
    text = disassemble(prog)
    assert assemble(text) == prog
    assert disassemble(assemble(text)) == text


def test_assembler_accepts_comments_blank_lines_and_hex():
    prog = assemble("# a program\n\nGEMM k=0x10 n=16 rows=4 wbits=8 +pop_prev  # fold\nEND\n")
    gemm = Instr("GEMM", {"k": 16, "n": 16, "rows": 4, "wbits": 8}, pop_prev=True)
    assert prog == [gemm, Instr("END")]


def test_unknown_opcode_in_a_word_names_the_instruction():
    words = encode_all([Instr("SYNC"), Instr("SYNC")]) + bytes(WORD_BYTES)  # opcode 0
    with pytest.raises(ProgramFormatError, match=r"instruction 2 \(byte offset 64\).*opcode"):
        decode_all(words)


def test_reserved_bits_set_names_the_instruction():
    word = encode(Instr("SYNC")) | 1 << 100
    with pytest.raises(ProgramFormatError, match=r"instruction 5 .*SYNC.*reserved bits"):
        decode(word, index=5)


def test_enum_field_out_of_range_names_the_field():
    mem = BY_NAME["LOAD"].field("mem")
    word = encode(Instr("LOAD")) | (len(mem.enum) << mem.lo)
    with pytest.raises(ProgramFormatError, match=r"instruction 3 .*LOAD.*field mem"):
        decode(word, index=3)


@pytest.mark.parametrize("op, field, value, kind", [
    ("GEMM", "k", 1 << 9, "9-bit"),
    ("GEMM", "rows", -1, "16-bit"),
    ("GEMM", "lines", 1 << 12, "12-bit"),
    ("POST", "out_zp", 1 << 15, "signed 16-bit"),
    ("POST", "lo", -(1 << 15) - 1, "signed 16-bit"),
    ("POOL", "lo", 128, "signed 8-bit"),
    ("LOAD", "dram_addr", 1 << 36, "36-bit"),
    ("POOL", "sh", 256, "8-bit"),
])
def test_value_too_wide_names_op_and_field(op, field, value, kind):
    with pytest.raises(ProgramFormatError, match=rf"{op}\.{field} = {value} does not fit its "
                                                  rf"{kind} field"):
        Instr(op, {field: value})


def test_bad_enum_value_and_unknown_field_are_rejected():
    with pytest.raises(ProgramFormatError, match=r"LOAD\.mem = 'dram'"):
        Instr("LOAD", {"mem": "dram"})
    with pytest.raises(ProgramFormatError, match="GEMM has no field 'kk'"):
        Instr("GEMM", {"kk": 1})
    with pytest.raises(ProgramFormatError, match="unknown opcode 'FOO'"):
        Instr("FOO")


@pytest.mark.parametrize("line, message", [
    ("FOO x=1", "line 1: unknown opcode 'FOO'"),
    ("GEMM k", "line 1: expected field=value"),
    ("GEMM k=ten", "line 1: k='ten' is not an integer"),
    ("GEMM kk=1", "line 1: GEMM has no field 'kk'"),
    ("GEMM opcode=3", "line 1: opcode is a header field"),
    ("GEMM k=4096", r"line 1: GEMM\.k = 4096 does not fit"),
])
def test_assembler_errors_name_the_line(line, message):
    with pytest.raises(ProgramFormatError, match=message):
        assemble(line)
