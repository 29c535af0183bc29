"""GEMM wtrans, GATHER, SOFTMAX and NORM on hand-assembled operands (ISA v5).

The machine runs a batch of two states with different data. Expected values come from numpy and
from qasic.quant.intops (the one definition of the integer softmax and normalization, which the
simulator must apply to exactly the codes the table's doc says it reads), with float checks that
the integers mean what they should.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.errors import InputError, ProgramFormatError
from qasic.isa.encoding import Instr, assemble
from qasic.isa.packing import pack_bits
from qasic.isa.program import Program
from qasic.quant import intops
from qasic.sim.hazards import accesses, hazards
from qasic.sim.machine import Machine
from tests.sim.test_instructions import (
    ARCH,
    BATCH,
    REGIONS,
    get_rows,
    ins,
    machine,
    put_rows,
    random_codes,
    run,
)

# ---- GEMM wtrans -----------------------------------------------------------------------------


def put_blob(mem: np.ndarray, addr: int, blob: bytes) -> None:
    mem[:, addr:addr + len(blob)] = np.frombuffer(blob, np.uint8)


@pytest.mark.parametrize("gemm_path", ["numba", "blas"])
@pytest.mark.parametrize("afmt, wbits", [("int8", 8), ("int8", 4), ("int4", 4), ("int8", 3)])
@pytest.mark.parametrize("bscale", ["none", "mulzp"])
def test_gemm_wtrans_reads_n_rows_of_k_codes(afmt, wbits, gemm_path, bscale):
    rng = np.random.default_rng(wbits)
    m, t, k, n = machine(gemm_path), 6, 13, 7  # k != n: a transposed read of the wrong layout
    a = random_codes(rng, (BATCH, t, k), afmt)  # would not even have the right shape
    put_rows(m.mem["input"], 0, 20, a, afmt)
    wt = rng.integers(-(1 << (wbits - 1)), 1 << (wbits - 1), size=(n, k))  # stored: n rows of k
    scale = rng.integers(1, 5, size=n)
    zero = rng.integers(-3, 4, size=n)
    head = b"" if bscale == "none" else scale.astype(np.uint8).tobytes() + zero.astype(
        np.int8).tobytes()
    put_blob(m.mem["weight"], 30, head + pack_bits(wt, wbits))
    run(m, ins("GEMM", inp_stride=20, lines=1, rows=t, wgt_addr=30, acc_addr=3, k=k, n=n,
               wbits=wbits, afmt=afmt, wtrans=1, bscale=bscale))
    want = a @ wt.T if bscale == "none" else (a @ (wt.T - zero)) * scale  # zero per column
    np.testing.assert_array_equal(m.acc[:, 3:3 + t * n].reshape(BATCH, t, n), want)
    assert m.gemm_calls[gemm_path] == 1


def test_gemm_wtrans_checks_the_n_stored_rows():
    # k = 2, n = 16 at 8 bits: 16 rows of 2 bytes = 32 bytes (k rows of n would also be 32, so
    # use k = 1: 16 rows of 1 byte = 16 bytes, not 1 row of 16)
    end = ARCH.weight_sram_bytes
    ok = ins("GEMM", lines=1, rows=1, k=1, n=16, wbits=8, wtrans=1, wgt_addr=end - 16)
    run(machine(), ok)
    with pytest.raises(ProgramFormatError, match=rf"weight range \[{end - 15}, {end + 1}\)"):
        run(machine(), ins("GEMM", {**ok.args, "wgt_addr": end - 15}))


# ---- GATHER ----------------------------------------------------------------------------------

TABLE, IDX = 1000, 9000  # DRAM byte addresses of the table and of the indices


def gather_case(mem: str, ids: np.ndarray, vocab: int = 11, row_bytes: int = 5,
                table_stride: int = 7, sram_stride: int = 9):
    rng = np.random.default_rng(3)
    m = machine()
    table = rng.integers(0, 256, size=(BATCH, vocab, table_stride), dtype=np.uint8)
    m.dram[:, TABLE:TABLE + vocab * table_stride] = table.reshape(BATCH, -1)
    m.dram[:, IDX:IDX + 4 * ids.shape[1]] = ids.astype("<i4").view(np.uint8)
    g = ins("GATHER", mem=mem, idx_addr=IDX, count=ids.shape[1], table_addr=TABLE,
            table_stride=table_stride, vocab=vocab, row_bytes=row_bytes, sram_addr=6,
            sram_stride=sram_stride)
    return m, g, table[np.arange(BATCH)[:, None], np.clip(ids, 0, vocab - 1), :row_bytes]


@pytest.mark.parametrize("mem", ["input", "weight", "output", "param"])
def test_gather_copies_the_indexed_rows_of_each_batch_element(mem):
    ids = np.array([[3, 0, 10, 3], [7, 7, 1, 2]])  # a different sequence per batch element
    m, g, want = gather_case(mem, ids)
    before = m.mem[mem].copy()
    run(m, g)
    got = m.mem[mem][:, 6 + 9 * np.arange(4)[:, None] + np.arange(5)]
    np.testing.assert_array_equal(got, want)
    touched = np.zeros(m.mem[mem].shape[1], bool)
    touched[6 + 9 * np.arange(4)[:, None] + np.arange(5)] = True
    np.testing.assert_array_equal(m.mem[mem][:, ~touched], before[:, ~touched])


@pytest.mark.parametrize("bad, batch", [(11, 1), (-1, 0), (1 << 30, 1)])
def test_gather_index_outside_the_vocab_stops_the_machine(bad, batch):
    ids = np.array([[3, 0, 10, 3], [7, 7, 1, 2]])
    ids[batch, 2] = bad
    m, g, _ = gather_case("input", ids)
    with pytest.raises(InputError, match=(
            rf"^instruction 0 \(GATHER\): index {bad} at DRAM byte {IDX + 8} \(batch element "
            rf"{batch}\) is outside the table's 11 rows; indices \(token ids, positions\) must "
            r"lie in \[0, 11\)$")):
        run(m, g)


def test_gather_checks_table_destination_and_scratchpad():
    ids = np.zeros((BATCH, 2), np.int64)
    m, g, _ = gather_case("input", ids)
    with pytest.raises(ProgramFormatError, match=r"\(GATHER\): table range \[16380, 16455\)"):
        run(m, ins("GATHER", {**g.args, "table_addr": 16380}))
    with pytest.raises(ProgramFormatError, match=r"\(GATHER\): scratchpad rows range"):
        run(m, ins("GATHER", {**g.args, "sram_addr": ARCH.input_sram_bytes - 9}))
    with pytest.raises(ProgramFormatError, match=r"\(GATHER\): the accumulator is not"):
        run(m, ins("GATHER", {**g.args, "mem": "acc"}))


# ---- SCATTER ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mem", ["input", "output"])
def test_scatter_writes_rows_to_the_indexed_table_rows_last_wins(mem):
    rng = np.random.default_rng(5)
    m = machine()
    rows = rng.integers(0, 256, size=(BATCH, 3, 5), dtype=np.uint8)
    for i in range(3):
        m.mem[mem][:, 6 + 9 * i:11 + 9 * i] = rows[:, i]
    ids = np.array([[4, 0, 4], [2, 10, 1]])  # batch 0 writes row 4 twice: the last wins
    m.dram[:, IDX:IDX + 12] = ids.astype("<i4").view(np.uint8)
    before = m.dram.copy()
    run(m, ins("SCATTER", mem=mem, idx_addr=IDX, count=3, table_addr=TABLE, table_stride=7,
               vocab=11, row_bytes=5, sram_addr=6, sram_stride=9))
    want = before.copy()
    for b in range(BATCH):
        for i in range(3):
            want[b, TABLE + 7 * ids[b, i]:TABLE + 7 * ids[b, i] + 5] = rows[b, i]
    np.testing.assert_array_equal(m.dram, want)


def test_scatter_index_outside_the_vocab_stops_the_machine_before_writing():
    m = machine()
    ids = np.array([[1, 11], [0, 0]])
    m.dram[:, IDX:IDX + 8] = ids.astype("<i4").view(np.uint8)
    before = m.dram.copy()
    with pytest.raises(InputError, match=r"^instruction 0 \(SCATTER\): index 11 at DRAM byte"):
        run(m, ins("SCATTER", mem="output", idx_addr=IDX, count=2, table_addr=TABLE,
                   table_stride=7, vocab=11, row_bytes=5, sram_addr=0, sram_stride=5))
    np.testing.assert_array_equal(m.dram, before)


def test_scatter_costs_like_a_gather():
    from qasic.sim.energy import EnergyModel
    from qasic.sim.timing import duration

    args = {"mem": "output", "count": 3, "row_bytes": 40, "vocab": 8, "table_stride": 40}
    g, s = Instr("GATHER", args), Instr("SCATTER", args)
    busy, done = duration(g, ARCH)
    assert duration(s, ARCH) == (busy, done + 1)  # + the scratchpad read before its W beats
    assert EnergyModel(ARCH).instr(g) == EnergyModel(ARCH).instr(s)
    assert s.queue == "store"


# ---- SOFTMAX ---------------------------------------------------------------------------------

def softmax_case(fmt: str, ofmt: str, causal: int, masked: int, q_pos: int = 0,
                 rows: int = 5, keys: int = 9, scale: float = 0.05, mask_stride: int = 0):
    """mask_stride > 0: a mask row per row (rows apart by mask_stride bytes), else one mask."""
    rng = np.random.default_rng(len(fmt) + 2 * causal + masked)
    bits, obits = int(fmt[3:]), int(ofmt[3:])
    m = machine()
    x = random_codes(rng, (BATCH, rows, keys), fmt)
    put_rows(m.mem["output"], 100, 13, x, fmt)
    table = intops.exp_table(scale, bits)
    m.mem["param"][:, 64:64 + 4 * len(table)] = table.astype("<i4").view(np.uint8)
    mask = (rng.random((BATCH, rows if mask_stride else 1, keys)) < 0.7).astype(np.uint8)
    mask[1, 0] = 0  # batch element 1, masked: every key of row 0 hidden -> an all-zero row
    for r in range(mask.shape[1]):
        m.mem["output"][:, 900 + r * mask_stride:900 + r * mask_stride + keys] = mask[:, r]
    sm = ins("SOFTMAX", src_addr=100, src_stride=13, dst_addr=500, dst_stride=11, rows=rows,
             len=keys, table_addr=64, causal=causal, q_pos=q_pos, masked=masked, mask_addr=900,
             fmt=fmt, ofmt=ofmt, mask_stride=mask_stride)
    valid = np.ones((BATCH, rows, keys), bool)
    if causal:  # key j visible to row r iff j <= q_pos + r
        valid &= np.arange(keys) <= q_pos + np.arange(rows)[:, None]
    if masked:
        valid &= mask != 0
    return m, sm, x, intops.softmax_rows(x, table, obits, valid), valid


@pytest.mark.parametrize("fmt, ofmt", [("int8", "int8"), ("int4", "int8"), ("int8", "int4"),
                                       ("int6", "int3")])
@pytest.mark.parametrize("causal, masked, q_pos, mask_stride", [
    (0, 0, 0, 0), (1, 0, 0, 0), (1, 0, 3, 0), (0, 1, 0, 0), (1, 1, 2, 0), (0, 1, 0, 12),
    (1, 1, 2, 9)])
def test_softmax_rows_equal_intops(fmt, ofmt, causal, masked, q_pos, mask_stride):
    m, sm, x, want, valid = softmax_case(fmt, ofmt, causal, masked, q_pos,
                                         mask_stride=mask_stride)
    run(m, sm)
    got = get_rows(m.mem["output"], 500, 11, 5, 9, ofmt)
    np.testing.assert_array_equal(got, want)
    assert not got[~valid].any()
    # what the codes mean: p = y / qmax ~ softmax(s x) over the valid keys
    z = np.where(valid, 0.05 * x, -np.inf)
    with np.errstate(invalid="ignore"):  # rows with no valid key: all zeros
        z = z - z.max(axis=-1, keepdims=True)
        p = np.nan_to_num(np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True))
    qmax = (1 << (int(ofmt[3:]) - 1)) - 1
    assert np.abs(got / qmax - p).max() <= 0.5 / qmax + 0.002


def test_softmax_in_place_and_bits_beyond_a_packed_row_kept():
    m, sm, _, want, _ = softmax_case("int4", "int4", 0, 0, keys=9)  # 9 codes: 4.5 bytes a row
    m.mem["output"][:, 100 + 4] |= 0xF0  # the unused high nibble of row 0's last byte
    run(m, ins("SOFTMAX", {**sm.args, "dst_addr": 100, "dst_stride": 13}))
    np.testing.assert_array_equal(get_rows(m.mem["output"], 100, 13, 5, 9, "int4"), want)
    assert (m.mem["output"][:, 104] >> 4 == 0xF).all()


def test_softmax_refuses_fp_codes_and_a_bad_table():
    m, sm, *_ = softmax_case("int8", "int8", 0, 0)
    with pytest.raises(ProgramFormatError, match=r"^instruction 0 \(SOFTMAX\): ofmt = fp8_e4m3 "
                                                 r"is not an INT encoding"):
        run(m, ins("SOFTMAX", {**sm.args, "ofmt": "fp8_e4m3"}))
    m.mem["param"][1, 64 + 4 * 7:64 + 4 * 8] = np.array([70000], "<i4").view(np.uint8)
    with pytest.raises(ProgramFormatError, match=(
            r"^instruction 0 \(SOFTMAX\): exp-table entry 70000 at param byte 92 \(batch element "
            r"1\) is outside \[0, 65536\]")):
        run(m, sm)
    with pytest.raises(ProgramFormatError, match=r"\(SOFTMAX\): exp table range \[4000, 5024\)"):
        run(m, ins("SOFTMAX", {**sm.args, "table_addr": 4000}))
    # the last row's mask: 900 + 4 * 1900 + 9 bytes, past the 8192-byte scratchpad
    m, sm, *_ = softmax_case("int8", "int8", 0, 0)
    with pytest.raises(ProgramFormatError, match=r"^instruction 0 \(SOFTMAX\): mask range "
                                                 r"\[900, 8509\) is outside the 8192-byte"):
        run(m, ins("SOFTMAX", {**sm.args, "masked": 1, "mask_stride": 1900}))


# ---- NORM ------------------------------------------------------------------------------------

def chunked(acc: np.ndarray, addr: int, rows: int, n: int, chunk: int) -> np.ndarray:
    """(batch, rows, n) words of NORM's layout: channel i of row r at addr + (i // chunk) *
    rows * chunk + r * chunk + i % chunk."""
    i = np.arange(n)
    return acc[:, addr + (i // chunk) * rows * chunk + np.arange(rows)[:, None] * chunk
               + i % chunk]


@pytest.mark.parametrize("fmt, zp", [("int8", -100), ("int8", 0), ("int4", -3), ("int5", 7)])
@pytest.mark.parametrize("center", [0, 1])
@pytest.mark.parametrize("chunk", [4, 10, 16])
def test_norm_writes_chunked_accumulator_tiles(fmt, zp, center, chunk):
    rng = np.random.default_rng(abs(zp) + center)
    m, rows, n, scale = machine(), 3, 10, 0.02
    x = random_codes(rng, (BATCH, rows, n), fmt)
    put_rows(m.mem["input"], 40, 17, x, fmt)
    eps = intops.norm_epsilon(1e-5, scale, n, bool(center))
    m.mem["param"][:, 8:16] = np.array([eps], "<i8").view(np.uint8)
    m.acc[:, :200] = 12345
    run(m, ins("NORM", src_addr=40, src_stride=17, rows=rows, len=n, chunk=chunk, acc_addr=20,
               center=center, zp=zp, eps_addr=8, fmt=fmt))
    v = x - zp
    want = intops.norm_rows(v, eps, bool(center))
    np.testing.assert_array_equal(chunked(m.acc, 20, rows, n, chunk), want)
    assert (m.acc[:, :20] == 12345).all()
    last = 20 + ((n - 1) // chunk) * rows * chunk + (rows - 1) * chunk + (n - 1) % chunk + 1
    assert (m.acc[:, last:200] == 12345).all()
    # what the words mean: t / 2^20 = (v - mean) / sqrt(var + eps) / sqrt(n) (RMS without
    # center), within the floor square root's relative error 1 / isqrt(V) and 2^-20
    f = (v - v.mean(axis=-1, keepdims=True)) if center else v.astype(float)
    var = (f * f).mean(axis=-1, keepdims=True) + 1e-5 / scale ** 2
    exact = f / np.sqrt(var) / np.sqrt(n)
    root = np.sqrt(var * n * (n * n if center else 1))  # sqrt(V)
    assert (np.abs(want / 2.0 ** 20 - exact) <= np.abs(exact) / (root - 1) + 2.0 ** -20).all()


def test_norm_chunks_are_dense_tiles_for_post():
    """A chunk of c channels of all rows reads as a dense rows x c tile at acc_addr + j*rows*c."""
    m, rows, n, chunk = machine(), 2, 8, 4
    x = np.arange(BATCH * rows * n).reshape(BATCH, rows, n) % 50 - 20
    put_rows(m.mem["input"], 0, 8, x, "int8")
    run(m, ins("NORM", rows=rows, len=n, chunk=chunk, acc_addr=0, center=1, fmt="int8"))
    t = intops.norm_rows(x, 0, True)
    for j in range(n // chunk):
        tile = m.acc[:, j * rows * chunk:(j + 1) * rows * chunk].reshape(BATCH, rows, chunk)
        np.testing.assert_array_equal(tile, t[:, :, j * chunk:(j + 1) * chunk])


def test_norm_wraps_to_acc_bits():
    arch = dataclasses.replace(ARCH, acc_bits=16)
    m = Machine(machine().program, arch, BATCH)
    x = np.array([[[100, -100, 0, 0]]] * BATCH)
    put_rows(m.mem["input"], 0, 4, x, "int8")
    run(m, ins("NORM", rows=1, len=4, chunk=4, center=0, fmt="int8"))
    t = intops.norm_rows(x, 0, False)
    assert np.abs(t).max() > 1 << 15  # wider than the accumulator: it wraps like GEMM's sums
    np.testing.assert_array_equal(m.acc[:, :4], (t[:, 0] + (1 << 15)) % (1 << 16) - (1 << 15))


def test_norm_refuses_bad_fields_and_epsilon():
    with pytest.raises(ProgramFormatError, match=r"^instruction 0 \(NORM\): chunk = 0; set it"):
        run(machine(), ins("NORM", rows=1, len=4, chunk=0))
    with pytest.raises(ProgramFormatError, match=r"\(NORM\): len = 4097 channels exceeds 4096"):
        run(machine(), ins("NORM", rows=1, len=4097, chunk=4))
    with pytest.raises(ProgramFormatError, match=r"\(NORM\): fmt = fp8_e4m3 is not an INT"):
        run(machine(), ins("NORM", rows=1, len=4, chunk=4, fmt="fp8_e4m3"))
    m = machine()
    m.mem["param"][:, :8] = np.array([-1], "<i8").view(np.uint8)
    with pytest.raises(ProgramFormatError, match=rf"\(NORM\): epsilon -1 at param byte 0 \(batch "
                                                 rf"element 0\) is outside \[0, {1 << 60}\]"):
        run(m, ins("NORM", rows=1, len=4, chunk=4))
    words = ARCH.acc_sram_bytes // ARCH.acc_word_bytes
    with pytest.raises(ProgramFormatError, match=rf"\(NORM\): acc range \[{words - 8}, "
                                                 rf"{words + 4}\)"):
        run(machine(), ins("NORM", rows=3, len=4, chunk=4, acc_addr=words - 8))


# ---- hazards: what each instruction reads and writes -----------------------------------------

def flat(groups) -> dict[str, set]:
    out: dict[str, set] = {}
    for mem, idx in groups:
        out.setdefault(mem, set()).update(int(v) for v in np.ravel(idx))
    return out


def test_accesses_of_the_new_instructions():
    g = Instr("GATHER", {"mem": "output", "idx_addr": 100, "count": 2, "table_addr": 0,
                         "table_stride": 10, "vocab": 3, "row_bytes": 4, "sram_addr": 50,
                         "sram_stride": 5})
    reads, writes = accesses(g)
    assert flat(reads) == {"dram": set(range(100, 108)) | {r * 10 + j for r in range(3)
                                                            for j in range(4)}}
    assert flat(writes) == {"output": {50, 51, 52, 53, 55, 56, 57, 58}}
    s = Instr("SOFTMAX", {"src_addr": 0, "src_stride": 8, "dst_addr": 100, "dst_stride": 3,
                          "rows": 2, "len": 5, "table_addr": 40, "masked": 1, "mask_addr": 60,
                          "fmt": "int4", "ofmt": "int4"})
    reads, writes = accesses(s)
    assert flat(reads) == {"output": {0, 1, 2, 8, 9, 10} | set(range(60, 65)),
                           "param": set(range(40, 40 + 64))}
    assert flat(writes) == {"output": {100, 101, 102, 103, 104, 105}}
    nm = Instr("NORM", {"src_addr": 0, "src_stride": 6, "rows": 2, "len": 6, "chunk": 4,
                        "acc_addr": 10, "eps_addr": 16, "fmt": "int8"})
    reads, writes = accesses(nm)
    assert flat(reads) == {"input": set(range(12)), "param": set(range(16, 24))}
    # chunk 0: rows x 4 at 10..17; chunk 1: channels 4, 5 of rows 0, 1 at 18, 19 and 22, 23
    assert flat(writes) == {"acc": set(range(10, 20)) | {22, 23}}


def test_gemm_wtrans_accesses_n_rows_of_k_codes():
    gemm = Instr("GEMM", {"lines": 1, "rows": 1, "k": 3, "n": 5, "wbits": 4, "wtrans": 1,
                          "wgt_addr": 7})
    assert flat(accesses(gemm)[0])["weight"] == set(range(7, 7 + 5 * 2))  # 5 rows of 2 bytes


def test_a_gather_read_without_a_token_is_a_hazard():
    gather = "GATHER mem=input idx_addr=0 count=4 table_addr=64 table_stride=16 vocab=8 " \
             "row_bytes=16 sram_stride=16"
    norm = "NORM rows=4 len=16 chunk=16 src_stride=16 fmt=int8"
    racing = assemble(f"{gather}\n{norm}\nEND")
    ordered = assemble(f"{gather} +push_next\n{norm} +pop_prev\nEND")
    for instrs, found in ((racing, ["RAW on input: instruction 0 (GATHER) vs 1 (NORM)"]),
                          (ordered, [])):
        assert hazards(Program(tuple(instrs), (0,) * 3, b"", REGIONS), ARCH) == found
