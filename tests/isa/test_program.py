"""The program file format: round trip, and every malformed file names its offset or field."""

from __future__ import annotations

import struct
import zlib

import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr
from qasic.isa.program import MAGIC, VERSION, Program, Region, from_bytes, load, save, to_bytes
from qasic.isa.table import WORD_BYTES
from tests.graphs import cnn_graph

HEADER_BYTES = 28  # magic, version, reserved, count, constants, metadata, graph lengths, CRC


@pytest.fixture(scope="module")
def program() -> Program:
    return compile_graph(cnn_graph(), default_arch())


@pytest.fixture(scope="module")
def blob(program) -> bytes:
    return to_bytes(program)


def _reseal(blob: bytes) -> bytes:
    """Recompute the CRC so a deliberate corruption reaches the parser behind the checksum."""
    body = blob[HEADER_BYTES:]
    return blob[:HEADER_BYTES - 4] + struct.pack("<I", zlib.crc32(body)) + body


def test_round_trip_preserves_everything(program, blob):
    back = from_bytes(blob)
    assert back.instrs == program.instrs
    assert back.layer_ids == program.layer_ids
    assert back.constants == program.constants
    assert back.regions == program.regions
    assert back.meta == program.meta
    assert to_bytes(back) == blob


def test_save_and_load(program, blob, tmp_path):
    path = save(program, tmp_path / "cnn.qasic")
    assert path.read_bytes() == blob
    assert load(path).instrs == program.instrs
    with pytest.raises(ProgramFormatError, match="does not exist"):
        load(tmp_path / "missing.qasic")


def test_header_layout(program, blob):
    magic, version, _, count, const_len, meta_len, graph_len, crc = struct.unpack_from(
        "<4sHHIIIII", blob)
    assert (magic, version, count, const_len, graph_len) == (
        MAGIC, VERSION, len(program.instrs), len(program.constants), 0)
    assert len(blob) == HEADER_BYTES + count * (WORD_BYTES + 2) + const_len + meta_len
    assert crc == zlib.crc32(blob[HEADER_BYTES:])


@pytest.mark.parametrize("where", ["instructions", "constants", "metadata"])
def test_corrupt_byte_fails_the_checksum(blob, program, where):
    offset = {"instructions": HEADER_BYTES + 5,
              "constants": HEADER_BYTES + len(program.instrs) * (WORD_BYTES + 2) + 3,
              "metadata": len(blob) - 2}[where]
    bad = bytearray(blob)
    bad[offset] ^= 0x40
    with pytest.raises(ProgramFormatError, match=r"checksum mismatch \(header offset 24\)"):
        from_bytes(bytes(bad))


@pytest.mark.parametrize("keep", [0, 10, HEADER_BYTES - 1])
def test_file_shorter_than_the_header_is_truncated(blob, keep):
    with pytest.raises(ProgramFormatError, match=rf"{keep} bytes is shorter than the 28-byte "
                                                 r"header \(truncated"):
        from_bytes(blob[:keep])


def test_truncated_body_is_reported(blob):
    with pytest.raises(ProgramFormatError, match=rf"body is {len(blob) - 100 - HEADER_BYTES} "
                                                 r"bytes but the header promises .*truncated"):
        from_bytes(blob[:-100])


def test_padded_file_is_reported(blob):
    with pytest.raises(ProgramFormatError, match="padded"):
        from_bytes(blob + b"\0")


def test_bad_magic_names_offset_0(blob):
    with pytest.raises(ProgramFormatError, match=r"bad magic b'ELF\\x7f' at offset 0"):
        from_bytes(b"ELF\x7f" + blob[4:])


def test_wrong_version_names_offset_4(blob):
    bad = blob[:4] + struct.pack("<H", VERSION + 1) + blob[6:]
    with pytest.raises(ProgramFormatError, match=rf"version {VERSION + 1} at offset 4.*recompile"):
        from_bytes(bad)


def test_unknown_opcode_names_the_instruction_and_file_offset(blob):
    index = 7
    at = HEADER_BYTES + index * WORD_BYTES
    bad = bytearray(blob)
    bad[at] &= 0xF0  # opcode 0 is unassigned
    with pytest.raises(ProgramFormatError,
                       match=rf"instruction {index} \(byte offset {at}\): field opcode = 0"):
        from_bytes(_reseal(bytes(bad)))


def test_reserved_bits_name_the_instruction_and_file_offset(blob, program):
    index = len(program.instrs) - 1  # END: every operand bit is reserved
    at = HEADER_BYTES + index * WORD_BYTES
    bad = bytearray(blob)
    bad[at + 15] = 0x80
    with pytest.raises(ProgramFormatError,
                       match=rf"instruction {index} \(byte offset {at}\) \(END\): reserved bits"):
        from_bytes(_reseal(bytes(bad)))


def test_malformed_metadata_names_its_offset(blob):
    meta_at = len(blob) - struct.unpack_from("<I", blob, 16)[0]
    bad = blob[:meta_at] + b"{" * (len(blob) - meta_at)
    with pytest.raises(ProgramFormatError, match=rf"metadata at offset {meta_at} is malformed"):
        from_bytes(_reseal(bad))


def test_program_invariants_are_checked():
    consts = (Region("constants", 0, 0, "constants"),)
    with pytest.raises(ProgramFormatError, match="last instruction must be END"):
        Program((Instr("SYNC"),), (0,), b"", consts)
    with pytest.raises(ProgramFormatError, match="one layer id per instruction"):
        Program((Instr("END"),), (), b"", consts)
    with pytest.raises(ProgramFormatError, match="region x: kind 'rom'"):
        Region("x", 0, 1, "rom")


def test_graph_section_rides_after_the_metadata(program):
    """The embedded graph is opaque to the format: its bytes come back as they went in."""
    import dataclasses

    section = b"graph bytes \x00\xff"
    blob = to_bytes(dataclasses.replace(program, graph=section))
    graph_len = struct.unpack_from("<I", blob, 20)[0]
    assert graph_len == len(section) and blob.endswith(section)
    back = from_bytes(blob)
    assert back.graph == section and back.meta == from_bytes(to_bytes(program)).meta
