"""Fast tier: the SOFTMAX unit (qasic.rtl.softmax) in Amaranth's simulator against
qasic.quant.intops.softmax_rows as sim.rowops.softmax applies it (rows read and written packed,
causal and byte masks: one for every row, or one per row at mask_stride), and its measured cycles
against softmax_cycles."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.isa.encoding import Instr, encode
from qasic.isa.limits import ALLOWED
from qasic.isa.table import encoding_bits, encoding_bytes
from qasic.quant import intops
from qasic.rtl.softmax import SoftmaxUnit, softmax_cycles
from qasic.sim import kernels as K

from .spads import UNITS_ARCH, Spad, run_unit

ARCH = UNITS_ARCH
INTS = ALLOWED[("SOFTMAX", "fmt")]


def random_softmax(rng, k: int, dst: int, table_addr: int) -> tuple[Instr, np.ndarray]:
    fmt, ofmt = INTS[k % len(INTS)], INTS[(3 * k + 2) % len(INTS)]
    rows, n = int(rng.integers(1, 4)), int(rng.integers(1, 12))
    table = intops.exp_table(float(rng.uniform(0.05, 1.5)), encoding_bits(fmt))
    if k % 5 == 4:
        table[0] = int(rng.integers(1, 300))  # a small sum: the quotient's high bits
    ins = Instr("SOFTMAX", {
        "src_addr": int(rng.integers(0, 1024)), "src_stride": encoding_bytes(n, fmt) + 1,
        "dst_addr": dst, "dst_stride": encoding_bytes(n, ofmt) + int(rng.integers(0, 2)),
        "rows": rows, "len": n, "table_addr": table_addr, "causal": int(k % 3 == 1),
        "q_pos": int(rng.integers(0, 4)), "masked": int(k % 4 >= 2),
        "mask_addr": int(rng.integers(1100, 1400)), "fmt": fmt, "ofmt": ofmt,
        # one mask for every row, a row after row, or rows apart (at most 1400 + 2*16 + 11)
        "mask_stride": (0, n, n + int(rng.integers(1, 6)))[k % 3],
        # every other instruction: results narrower than their container (a 2..7-bit tensor
        # stored a byte per code)
        "qbits": int(rng.integers(2, encoding_bits(ofmt))) if k % 2 and ofmt == "int8" else 0})
    return ins, np.frombuffer(table.astype("<i4").tobytes(), np.uint8)


def reference(out: np.ndarray, par: np.ndarray, ins: Instr) -> None:
    """sim.rowops.softmax on one (1, bytes) output memory."""
    rows, n = ins["rows"], ins["len"]
    if rows == 0 or n == 0:
        return
    bits, obits = encoding_bits(ins["fmt"]), encoding_bits(ins["ofmt"])
    ta = ins["table_addr"]
    table = np.frombuffer(par[0, ta:ta + 4 * (1 << bits)].tobytes(), "<i4").astype(np.int64)
    valid = np.ones((1, rows, n), dtype=bool)
    if ins["causal"]:
        valid &= intops.causal_valid(rows, n, ins["q_pos"])
    if ins["masked"]:  # naive: row r's bytes at mask_addr + r * mask_stride
        for r in range(rows):
            a = ins["mask_addr"] + r * ins["mask_stride"]
            valid[:, r] &= out[:, a:a + n] != 0
    x = K.get_rows(out, ins["src_addr"], ins["src_stride"], rows, n, bits)
    y = intops.softmax_rows(x, table, ins["qbits"] or obits, valid,
                            ins["sink"] if ins["sunk"] else None)
    K.put_rows(out, ins["dst_addr"], ins["dst_stride"], y, obits)


def prepare(items, seed: int, patch=None):
    """(output memory, param memory, expected output memory); ``patch``: {address: bytes}
    written over the random output memory first."""
    rng = np.random.default_rng(seed)
    out = rng.integers(0, 256, size=ARCH.output_sram_bytes).astype(np.uint8)
    out[1100:1500] = rng.choice([0, 0, 1, 7], size=400)  # mask bytes: many zeros
    for at, blob in (patch or {}).items():
        out[at:at + len(blob)] = blob
    par = rng.integers(0, 256, size=ARCH.param_sram_bytes).astype(np.uint8)
    for ins, table in items:
        par[ins["table_addr"]:ins["table_addr"] + len(table)] = table
    want = out[None].copy()
    for ins, _ in items:
        reference(want, par[None], ins)
    return out, par, want[0]


def run(items, seed: int, patch=None):
    """Amaranth's simulator: (durations, output memory, expected output memory)."""
    out, par, want = prepare(items, seed, patch)
    unit = SoftmaxUnit(ARCH)
    mem, params = Spad(out), Spad(par)
    procs = [mem.reader(unit.src, unit.window), mem.reader(unit.mask, unit.lanes),
             mem.reader(unit.tail, 1), params.reader(unit.param, unit.param_bytes),
             mem.writer(unit.out, len(unit.out.mask))]
    durations = run_unit(unit, procs, [encode(ins) for ins, _ in items], limit=20000)
    return durations, mem.mem, want


def _check(items, seed, patch=None, runner=None):
    durations, got, want = (runner or run)(items, seed, patch)
    for ins, _ in items:
        a = ins["dst_addr"]
        span = max(ins["rows"] - 1, 0) * ins["dst_stride"] + encoding_bytes(ins["len"],
                                                                           ins["ofmt"])
        assert np.array_equal(got[a:a + span], want[a:a + span]), \
            f"{ins}:\nrtl {got[a:a + span]}\nsim {want[a:a + span]}"
    np.testing.assert_array_equal(got, want)
    for (ins, _), d in zip(items, durations):
        assert (d, d) == tuple(int(v) for v in softmax_cycles(ins, ARCH)), \
            f"{ins}: measured {d}, softmax_cycles {softmax_cycles(ins, ARCH)}"
    return got


def test_masked_first_group_and_negative_codes():
    """The first group's keys all masked, the valid ones negative: the row's max must come from
    valid keys only (a row with no valid key yet has no max)."""
    rng = np.random.default_rng(6)
    ins, table = random_softmax(rng, 2, 2048, 0)  # int8 codes, masked
    ins = Instr("SOFTMAX", {**ins.args, "fmt": "int8", "rows": 2, "len": 7, "causal": 0,
                            "masked": 1, "mask_addr": 1600, "mask_stride": 0, "src_addr": 100,
                            "src_stride": 7})
    levels = rng.integers(0, 1 << 16, size=256)  # not exponential: a wrong max shows
    levels[0] = 1 << 16
    table = np.frombuffer(levels.astype("<i4").tobytes(), np.uint8)
    patch = {1600: np.array([0, 0, 1, 1, 0, 1, 1], np.uint8),
             100: np.array([50, 60, -3, -9, 70, -1, -20] * 2, np.int8).view(np.uint8)}
    _check([(ins, table)], seed=7, patch=patch)


# a window over 6 queries of 7 keys: row r's mask row at 1600 + r * 8 (a byte between rows)
WINDOW = np.array([[r <= j + 1 <= r + 3 for j in range(7)] for r in range(6)], np.uint8)


def window_case():
    """(items, patch): the WINDOW softmax of equal scores (int8 -> int8, results at 2048)."""
    ins, table = random_softmax(np.random.default_rng(8), 0, 2048, 0)
    ins = Instr("SOFTMAX", {**ins.args, "rows": 6, "len": 7, "causal": 0, "masked": 1,
                            "mask_addr": 1600, "mask_stride": 8, "src_addr": 100,
                            "src_stride": 7, "dst_stride": 7, "fmt": "int8", "ofmt": "int8"})
    rows = np.concatenate([WINDOW, np.full((6, 1), 9, np.uint8)], axis=1).reshape(-1)
    return [(ins, table)], {1600: rows, 100: np.full(42, 5, np.uint8)}


def test_sliding_window_rows_read_their_own_mask_row():
    """Equal scores: each row's result is nonzero exactly at its window."""
    items, patch = window_case()
    got = _check(items, seed=9, patch=patch)
    y = np.asarray(got[2048:2048 + 42], np.uint8).view(np.int8).reshape(6, 7)
    assert np.array_equal(y != 0, WINDOW.astype(bool))


def random_items(rng):
    items, dst, taddr = [], 2048, 0
    for k in range(10):
        ins, table = random_softmax(rng, k, dst, taddr)
        items.append((ins, table))
        dst += (ins["rows"] - 1) * ins["dst_stride"] + encoding_bytes(ins["len"], ins["ofmt"]) + 1
        taddr += len(table)
    items.append((Instr("SOFTMAX", {**items[0][0].args, "rows": 0}), items[0][1]))
    return items


@pytest.mark.rtl
def test_softmax_on_verilator(rtl_build_dir):
    from qasic.rtl.tb_units import build, run_case

    sim_dir = build(ARCH, rtl_build_dir)

    def on_verilator(items, seed, patch):
        out, par, want = prepare(items, seed, patch)
        res = run_case(sim_dir, ARCH, "softmax", [encode(ins) for ins, _ in items],
                       {"output": out, "param": par})
        np.testing.assert_array_equal(res["busy"], res["done"])
        return list(res["done"]), res["mem_output"], want
    items = random_items(np.random.default_rng(12))
    _check(items[:5] + items[-1:], seed=13, runner=on_verilator)
    items, patch = window_case()
    _check(items, seed=9, patch=patch, runner=on_verilator)


def test_softmax_rows():
    _check(random_items(np.random.default_rng(2)), seed=3)


@pytest.mark.parametrize("sink", [-128, -5, 40, 127])
def test_attention_sink_joins_the_max_and_the_sum(sink):
    """sunk: the sink code is one more key of every row (GPT-OSS's attention sinks): below
    every score, among them, above them (the row's max), with masked keys and a causal row
    (its first row sees one key). RTL == intops.softmax_rows with the sink."""
    rng = np.random.default_rng(11)
    ins, table = random_softmax(rng, 0, 2048, 0)
    ins = Instr("SOFTMAX", {**ins.args, "fmt": "int8", "ofmt": "int8", "rows": 3, "len": 7,
                            "causal": 1, "q_pos": 0, "masked": 1, "mask_addr": 1600,
                            "mask_stride": 0, "src_addr": 100, "src_stride": 7,
                            "dst_stride": 7, "sunk": 1, "sink": sink})
    patch = {1600: np.array([1, 1, 0, 1, 1, 1, 1], np.uint8),
             100: rng.integers(-40, 60, size=21).astype(np.int8).view(np.uint8)}
    got = _check([(ins, table)], seed=12, patch=patch)
    y = np.asarray(got[2048:2048 + 21], np.uint8).view(np.int8).reshape(3, 7).astype(int)
    assert y[0, 0] < 127 if sink > -128 else y[0, 0] >= 126  # the sink takes a share


@pytest.mark.parametrize("qbits", [2, 4, 6, 7])
def test_results_narrower_than_their_container_take_their_own_range(qbits):
    """qbits: a 2..7-bit softmax result stored a byte per code (its rows do not pack into whole
    bytes) is scaled to 2^(qbits-1) - 1, not to int8's 127: RTL == intops at qbits, and a row
    of equal scores gives each of its n keys qmax / n."""
    rng = np.random.default_rng(qbits)
    ins, table = random_softmax(rng, 0, 2048, 0)
    ins = Instr("SOFTMAX", {**ins.args, "fmt": "int8", "ofmt": "int8", "rows": 2, "len": 3,
                            "causal": 0, "masked": 0, "src_addr": 100, "src_stride": 3,
                            "dst_stride": 3, "sunk": 0, "qbits": qbits})
    patch = {100: np.array([5, 5, 5, 9, -3, 0], np.int8).view(np.uint8)}
    got = _check([(ins, table)], seed=4, patch=patch)
    y = np.asarray(got[2048:2048 + 6], np.uint8).view(np.int8).reshape(2, 3).astype(int)
    qmax = (1 << (qbits - 1)) - 1
    assert (y[0] == round(qmax / 3)).all()
    assert 0 <= y.min() and y.max() <= qmax and y[1].argmax() == 0
