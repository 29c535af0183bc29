"""The program verifier: one test per rejection class, each message one line naming the
instruction, the field and the limit; compiled programs pass and the proof runs once."""

from __future__ import annotations

import copy
import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ProgramFormatError, VerificationError
from qasic.isa import access, limits, schema
from qasic.isa.encoding import assemble
from qasic.isa.program import CRC_OFFSET, HEADER, Program, Region, from_bytes, to_bytes
from qasic.isa.verify import DRAM_LIMIT_BYTES, verify
from qasic.sim.hazards import accesses, hazards
from tests.archs import archs
from tests.compiler.checks import without_load_tokens
from tests.graphs import cnn_graph, residual_graph
from tests.isa.hand import hand_program, meta

ARCH = default_arch()
REGIONS = (Region("x", 0, 64, "input", (8, 8, 1, 0)),
           Region("y", 256, 16, "output", (1, 1, 16, 0)),
           Region("constants", 512, 64, "constants"))
LOAD = "LOAD mem=input planes=1 rows=1 row_bytes=16"
GEMM = "GEMM lines=1 rows=1 k=16 n=16 wbits=8"
POST = "POST rows=1 n=16 hi=127"
STORE = "STORE mem=output planes=1 rows=1 row_bytes=16 dram_addr=256"
# load -> compute -> store -> compute, every token popped
BASE = f"""{LOAD} +push_next
{GEMM} +pop_prev
{POST} +push_next
{STORE} +pop_prev +push_prev
END +pop_next"""


def program(text: str = BASE, regions=REGIONS, **meta_changes) -> Program:
    p = hand_program(text, ARCH, regions, bytes(regions[-1].size))
    return dataclasses.replace(p, meta={**p.meta, **meta_changes})


def rejects(p: Program, pattern: str, error=VerificationError) -> None:
    with pytest.raises(error, match=pattern) as e:
        verify(p)
    assert "\n" not in str(e.value)


def insert(after: int, line: str, text: str = BASE) -> str:
    lines = text.splitlines()
    return "\n".join(lines[:after + 1] + [line] + lines[after + 1:])


def test_the_hand_program_passes_and_the_proof_is_cached():
    p = program()
    v = verify(p)
    assert verify(p) is v
    assert (v.instructions, v.tokens) == (5, (1, 0, 1, 1))


@pytest.mark.parametrize("name, arch", list(archs().items())[:2])
def test_compiled_programs_pass(name, arch):
    for g in (cnn_graph(), residual_graph()):
        v = verify(compile_graph(g, arch))
        assert v.accesses > v.instructions / 2


# ---- metadata schema -----------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("layers"), r"program: metadata lacks the required key 'layers'"),
    (lambda m: m.update(extra=1), r"program: metadata has the unknown key 'extra'; schema 1"),
    (lambda m: m["input"].update(scale="x"),
     r"program: metadata input.scale = 'x' must be int or float"),
    (lambda m: m["output"].update(bits=True), r"metadata output.bits = True must be int"),
    (lambda m: m["input"].update(shape=[8, 0, 1]), r"metadata input.shape = \[8, 0, 1\]"),
    (lambda m: m["layers"][0].pop("macs"), r"metadata layers\[0\] lacks the required key 'macs'"),
    (lambda m: m.update(layers=[3]), r"metadata layers\[0\] is a int, not a record"),
])
def test_metadata_off_the_schema_is_refused(change, message):
    p = program()
    m = copy.deepcopy(p.meta)
    change(m)
    rejects(dataclasses.replace(p, meta=m), message)


def test_a_file_of_another_schema_version_is_refused():
    blob = to_bytes(program())
    body = blob[HEADER.size:].replace(b'"schema": 1', b'"schema": 7')
    blob = blob[:CRC_OFFSET] + struct.pack("<I", zlib.crc32(body)) + body
    with pytest.raises(ProgramFormatError, match=r"schema = 7; this qasic reads metadata "
                                                 r"schema 1: recompile"):
        from_bytes(blob, "old.qasic")


def test_the_file_name_leads_every_message():
    p = program()
    blob = to_bytes(dataclasses.replace(p, meta={**p.meta, "model": 3}))
    rejects(from_bytes(blob, "m.qasic"), r"^program m.qasic: metadata.model = 3 must be str")


@pytest.mark.parametrize("change, message", [
    ({"nope": 1}, r"metadata arch_config has the unknown key 'nope'"),
    ({"array_rows": 0}, r"program: metadata arch config: array.rows = 0 must be in 1..256"),
    ({"input_sram_bytes": 1 << 25},
     r"input scratchpad \(33554432 bytes\) is larger than its 24-bit address fields reach"),
    ({"energy_table": "nope.toml"}, r"energy_table = 'nope.toml' names no energy table"),
])
def test_an_arch_config_that_cannot_run_is_refused(change, message):
    p = program()
    rejects(program(arch_config={**p.meta["arch_config"], **change}), message)


# ---- region map ----------------------------------------------------------------------------

@pytest.mark.parametrize("regions, message", [
    ((*REGIONS, Region("x", 600, 4, "activation")), r"region 'x' appears 2 times"),
    ((*REGIONS[:2], Region("constants", DRAM_LIMIT_BYTES, 64, "constants")),
     rf"region 'constants' \[{DRAM_LIMIT_BYTES}, \d+\) leaves the {DRAM_LIMIT_BYTES}-byte DRAM"),
    ((*REGIONS, Region("a", 250, 16, "activation")),
     r"region 'y' \[256, 272\) overlaps region 'a' \[250, 266\) without lying inside it"),
    (REGIONS[:2], r"has no region 'constants'"),
    ((Region("x", 0, 65, "input", (8, 8, 1, 0)), *REGIONS[1:]),
     r"region 'x' is 65 bytes; shape \(8, 8, 1, 0\) at 8 bits needs 64"),
    ((*REGIONS[:2], Region("constants", 512, 64, "constants", bits=1)),
     r"region 'constants' has bits = 1"),
    ((*REGIONS[:2], Region("constants", 512, 64, "constants", fill=1 << 40)),
     r"region 'constants' has fill = 1099511627776; a fill is one code"),
])
def test_an_inconsistent_region_map_is_refused(regions, message):
    p = hand_program(BASE, ARCH, regions, bytes(64))
    rejects(dataclasses.replace(p, meta=meta(ARCH, REGIONS)), message)


def test_constants_must_match_the_blob():
    p = program()
    rejects(dataclasses.replace(p, constants=bytes(10)),
            r"region 'constants' is 64 bytes but the file holds 10 constant bytes")


def test_a_concat_view_nested_in_its_tensor_is_fine():
    verify(program(regions=(*REGIONS[:2], Region("view", 0, 64, "activation", (8, 8, 1, 0)),
                            REGIONS[2])))


@pytest.mark.parametrize("key, change, message", [
    ("input", {"tensor": "nope"}, r"metadata input.tensor = 'nope' names no input region"),
    ("output", {"tensor": "x"}, r"metadata output.tensor = 'x' names no output region"),
    ("input", {"shape": [8, 8, 2]}, r"input.shape = \[8, 8, 2\] does not hold the 8x8x1 codes"),
    ("input", {"zero_point": 300}, r"metadata input: zero point 300 outside int8"),
    ("output", {"bits": 9}, r"the output's 9-bit codes must fit them"),
    ("output", {"bits": 1 << 40}, r"metadata output.bits = 1099511627776; codes are 2..32 bits"),
])
def test_io_records_must_match_their_regions(key, change, message):
    p = program()
    rejects(program(**{key: {**p.meta[key], **change}}), message)


# ---- instructions and field limits ---------------------------------------------------------

def test_end_only_last_and_layer_ids_in_range():
    rejects(program(insert(1, "END")), r"instruction 2 \(END\): END is not the last instruction")
    p = program()
    rejects(dataclasses.replace(p, layer_ids=(0, 0, 3, 0, 0)),
            r"instruction 2 \(POST\): layer id = 3 but the metadata has 1 layer records")


@pytest.mark.parametrize("line, message", [
    ("GEMM lines=1 rows=1 k=17 n=16 wbits=8",
     r"instruction 2 \(GEMM\): field k = 17 is above array.rows = 16 \(a fold's reduction"),
    ("GEMM lines=5 rows=13 k=1 n=1 wbits=8",
     r"field lines x rows = 65 is above array.gemm_max_rows = 64"),
    ("GEMM lines=1 rows=1 k=1 n=1 wbits=1", r"field wbits = 1 is below 2"),
    ("POOL h=8 w=8 c=1 kh=2 kw=2 sh=0 sw=2", (r"\(POOL\): field sh = 0 is below 1 \(the vertical "
                                            r"stride divides")),
    ("POOL h=2 w=8 c=1 kh=3 kw=2 sh=1 sw=2", r"field kh = 3 is above field h = 2"),
    ("NORM rows=1 len=8 chunk=0", r"\(NORM\): field chunk = 0 is below 1"),
    ("NORM rows=1 len=5000 chunk=8", r"field len = 5000 is above 4096"),
    ("NORM rows=1 len=8 chunk=8 fmt=fp8_e4m3",
     r"field fmt = fp8_e4m3 is not allowed here; NORM.fmt takes int8, int7"),
    ("SOFTMAX rows=1 len=8 ofmt=fp8_e4m3", r"field ofmt = fp8_e4m3 is not allowed here"),
    ("SOFTMAX rows=1 len=8 qbits=1", r"\(SOFTMAX\): field qbits = 1 is below 2"),
    ("SOFTMAX rows=1 len=8 ofmt=int6 qbits=6",
     r"field qbits - ofmt code bits = 0 is above -1 \(qbits names results narrower"),
    ("GATHER mem=input count=1 row_bytes=4", r"\(GATHER\): field vocab = 0 is below 1"),
    ("LOAD mem=acc planes=1 rows=1 row_bytes=4", r"field mem = acc is not allowed here"),
    ("STORE mem=output fill=1", r"\(STORE\): field fill = 1 is above 0 \(a fill writes"),
])
def test_fields_beyond_their_limits_are_refused(line, message):
    rejects(program(insert(1, line)), message)


# ---- accesses ------------------------------------------------------------------------------

@pytest.mark.parametrize("line, message", [
    ("LOAD mem=input planes=1 rows=1 row_bytes=16 sram_addr=16380",
     (r"instruction 4 \(LOAD\): field sram_addr = 16380: write of input \[16380, 16396\) leaves "
     r"the 16384-byte input memory")),
    ("GEMM lines=1 rows=4 k=16 n=16 wbits=8 acc_addr=4090",
     r"field acc_addr = 4090: write of acc \[4090, 4154\) leaves the 4096-word acc memory"),
    ("LOAD mem=param planes=100 rows=200 row_bytes=1",
     r"write of param \[0, 1\) writes 20000 bytes, more than the 4096-byte memory holds"),
    ("LOAD mem=input planes=1 rows=1 row_bytes=16 dram_addr=56",
     r"field dram_addr = 56: read of dram \[56, 72\) is not inside one DRAM region"),
    ("LOAD mem=input planes=1 rows=1 row_bytes=16 dram_addr=100", r"not inside one DRAM region"),
    ("STORE mem=output planes=1 rows=1 row_bytes=16 dram_addr=512",
     r"write of dram \[512, 528\) writes the constants region 'constants' \(read-only\)"),
    ("STORE mem=output planes=1 rows=100 row_bytes=1",
     r"writes 100 bytes, more than region 'x' holds \(64\)"),
    # the last row's mask: 8000 + 3 * 64 + 8
    (("SOFTMAX rows=4 len=8 src_addr=2000 src_stride=8 dst_addr=1000 dst_stride=8 masked=1 "
      "mask_addr=8000 mask_stride=64"),
     (r"instruction 4 \(SOFTMAX\): field mask_addr = 8000: read of output \[8000, 8200\) "
      r"leaves the 8192-byte output memory")),
])
def test_accesses_outside_their_memory_or_region_are_refused(line, message):
    rejects(program(insert(3, line)), message)


# ---- tokens --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    (BASE.replace("+push_next", "+push_next +pop_prev", 1),
     r"instruction 0 \(LOAD\): field pop_prev = 1: the load queue has no previous queue"),
    (BASE.replace(f"{GEMM} +pop_prev", f"{GEMM} +pop_prev +pop_next"),
     (r"instruction 1 \(GEMM\): deadlock: compute waits at 1 \(GEMM\) for load->compute, "
     r"store->compute; store waits at 3 \(STORE\) for compute->store")),
    (f"{GEMM} +pop_prev\n{LOAD} +push_next\nEND",
     (r"instruction 0 \(GEMM\): field pop_prev = 1 pops load->compute token 1, but only 0 were "
     r"pushed before it in program order")),
    (insert(0, f"{LOAD} +push_next"),
     (r"instruction 1 \(LOAD\): field push_next = 1: 1 load->compute tokens are pushed and never "
     r"popped")),
])
def test_unbalanced_or_deadlocking_tokens_are_refused(text, message):
    rejects(program(text), message)


# ---- hazards -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    (BASE.replace(" +push_next", "", 1).replace(f"{GEMM} +pop_prev", GEMM),
     (r"instruction 1 \(GEMM\): RAW on input \[0, 16\) against instruction 0 \(LOAD, load "
     r"queue\): no chain of dependency tokens")),
    (insert(1, "LOAD mem=weight planes=1 rows=1 row_bytes=16 dram_addr=512"),
     r"instruction 2 \(LOAD\): WAR on weight \[0, 16\) against instruction 1 \(GEMM"),
    (insert(3, "LOAD mem=output planes=1 rows=1 row_bytes=16"),
     r"instruction 4 \(LOAD\): WAW on output \[0, 16\) against instruction 2 \(POST"),
    (insert(0, "LOAD mem=input planes=1 rows=1 row_bytes=16 fill=1"),
     r"instruction 1 \(LOAD\): WAW on input \[0, 16\) against instruction 0 \(LOAD, load queue\)"),
])
def test_hazards_no_token_orders_are_refused(text, message):
    rejects(program(text), message)


@pytest.mark.parametrize("mask_stride", [0, 100])
def test_a_softmax_reads_every_row_of_its_mask(mask_stride):
    """A LOAD without a token writes the output bytes of the second mask row only."""
    text = insert(2, f"SOFTMAX rows=2 len=8 src_addr=2000 src_stride=8 dst_addr=1000 "
                     f"dst_stride=8 masked=1 mask_addr=2900 mask_stride={mask_stride}",
                  insert(0, "LOAD mem=output planes=1 rows=1 row_bytes=8 sram_addr=3000"))
    if mask_stride == 0:
        verify(program(text))
    else:
        rejects(program(text), r"instruction 3 \(SOFTMAX\): RAW on output \[3000, 3008\) against "
                               r"instruction 1 \(LOAD, load queue\)")


def test_byte_disjoint_strided_accesses_are_no_hazard():
    """Bounds overlap, bytes do not: a LOAD filling even bytes races a GEMM reading odd ones."""
    text = insert(1, "LOAD mem=weight planes=1 rows=8 row_bytes=1 sram_stride=2 sram_addr=1000")
    text = text.replace(GEMM, "GEMM lines=1 rows=1 k=1 n=1 wbits=8 wgt_addr=1001")
    verify(program(text))


@pytest.mark.parametrize("name", ["default", "8x4-fast-dram"])
def test_the_static_proof_agrees_with_the_dynamic_oracle(name):
    """Compiled programs pass both; with a kernel's load tokens removed both refuse."""
    arch = archs()[name]
    p = compile_graph(cnn_graph(), arch)
    assert hazards(p, arch) == []
    verify(p)
    broken = without_load_tokens(p, "conv2")
    assert hazards(broken, arch)
    with pytest.raises(VerificationError, match="a token is missing"):
        verify(broken)


def test_the_access_table_matches_the_simulators_byte_sets():
    """isa.access boxes hold exactly the bytes sim.hazards.accesses lists (NORM: a superset, its
    last chunk's gaps included)."""
    instrs = compile_graph(residual_graph(), archs()["4x4"]).instrs + tuple(assemble("""
        GATHER mem=output idx_addr=8 count=3 table_addr=64 table_stride=12 vocab=5 row_bytes=10
        SOFTMAX rows=3 len=9 src_stride=16 dst_addr=100 dst_stride=12 masked=1 mask_addr=300
        SOFTMAX rows=3 len=9 dst_addr=100 dst_stride=12 masked=1 mask_addr=300 mask_stride=11
        NORM rows=3 len=20 chunk=8 src_stride=24 fmt=int4
        GEMM lines=2 rows=3 k=12 n=5 wbits=4 wtrans=1 bscale=mulzp inp_line_stride=40
        POOL h=5 w=4 c=3 kh=2 kw=2 sh=1 sw=2 mode=avg src_pix_stride=3 dst_pix_stride=4
        ADD count=10 bcast=3 fmt=int4
        LUT count=7 fmt=int4 ofmt=int8
        POST rows=4 n=5 lut=1 ofmt=int6 out_stride=9
        STORE mem=param planes=2 rows=3 row_bytes=4 sram_stride=8 dram_plane_stride=100""")) \
        + tuple(assemble("END"))
    acc = access.table(access.group(instrs))
    for i, ins in enumerate(instrs):
        mine = {}
        for k in np.flatnonzero(acc.instr == i):
            key = (access.MEMORIES[acc.mem[k]], bool(acc.write[k]))
            mine[key] = mine.get(key, set()) | set(acc.bytes_of(k).tolist())
        theirs = {}
        for write, group in enumerate(accesses(ins)):
            for mem, idx in group:
                if len(idx):
                    theirs[(mem, bool(write))] = theirs.get((mem, bool(write)), set()) | set(
                        np.asarray(idx).tolist())
        if ins.op == "NORM":
            assert mine.keys() == theirs.keys() and all(theirs[k] <= mine[k] for k in mine)
        else:
            assert mine == theirs, (i, ins.op)


def test_docs_list_the_limits_and_the_schema():
    text = (Path(__file__).parents[2] / "docs" / "verify.md").read_text()
    assert limits.markdown() in text
    assert schema.markdown() in text
