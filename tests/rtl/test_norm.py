"""Fast tier: the NORM unit (qasic.rtl.norm) in Amaranth's simulator against
qasic.quant.intops.norm_rows as sim.rowops.norm applies it (packed rows of every INT encoding,
LayerNorm and RMSNorm, chunked accumulator layout wrapped to acc_bits), and its measured cycles
against norm_cycles."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.isa.encoding import Instr, encode
from qasic.isa.limits import ALLOWED
from qasic.isa.table import encoding_bits, encoding_bytes
from qasic.quant import intops
from qasic.rtl.norm import NormUnit, norm_cycles
from qasic.sim import kernels as K
from qasic.sim.rowops import norm_words

from .spads import UNITS_ARCH, Spad, run_unit

ARCH = UNITS_ARCH
INTS = ALLOWED[("NORM", "fmt")]


def random_norm(rng, k: int, acc_at: int, eps_at: int) -> tuple[Instr, int]:
    fmt = INTS[k % len(INTS)]
    bits = encoding_bits(fmt)
    rows, n = int(rng.integers(1, 3)), int(rng.integers(1, 10))
    chunk = int(rng.integers(1, n + 2))
    ins = Instr("NORM", {
        "src_addr": int(rng.integers(0, 256)), "src_stride": encoding_bytes(n, fmt) + 1,
        "rows": rows, "len": n, "chunk": chunk, "acc_addr": acc_at, "center": (k // 2) % 2,
        "zp": int(rng.integers(-(1 << (bits - 2)), 1 << (bits - 2))), "eps_addr": eps_at,
        "fmt": fmt})
    eps = int(rng.choice([0, 1, 1000, int(rng.integers(0, 1 << 40))]))
    return ins, eps


def reference(inp: np.ndarray, acc: np.ndarray, par: np.ndarray, ins: Instr) -> None:
    """sim.rowops.norm on (1, ...) memories."""
    rows, n = ins["rows"], ins["len"]
    if rows == 0 or n == 0:
        return
    bits = encoding_bits(ins["fmt"])
    eps = int(np.frombuffer(par[0, ins["eps_addr"]:ins["eps_addr"] + 8].tobytes(), "<i8")[0])
    v = K.get_rows(inp, ins["src_addr"], ins["src_stride"], rows, n, bits) - ins["zp"]
    t = intops.norm_rows(v, eps, bool(ins["center"]))
    K.put_acc_chunks(acc, ins["acc_addr"], t, ins["chunk"], ARCH.acc_bits)


def prepare(items, seed: int, patch=None):
    """(input, acc, param memories, expected acc); ``patch``: {address: bytes} written over the
    random input memory first."""
    rng = np.random.default_rng(seed)
    inp = rng.integers(0, 256, size=ARCH.input_sram_bytes).astype(np.uint8)
    for at, blob in (patch or {}).items():
        inp[at:at + len(blob)] = blob
    words = ARCH.acc_sram_bytes // ARCH.acc_word_bytes
    half = 1 << (ARCH.acc_bits - 1)
    acc = rng.integers(-half, half, size=words)
    par = rng.integers(0, 256, size=ARCH.param_sram_bytes).astype(np.uint8)
    for ins, eps in items:
        par[ins["eps_addr"]:ins["eps_addr"] + 8] = np.frombuffer(
            np.array([eps], "<i8").tobytes(), np.uint8)
    want = acc[None].copy()
    for ins, _ in items:
        reference(inp[None], want, par[None], ins)
    return inp, acc, par, want[0]


def run(items, seed: int, patch=None):
    """Amaranth's simulator: (durations, acc memory, expected acc memory)."""
    inp, acc, par, want = prepare(items, seed, patch)
    unit = NormUnit(ARCH)
    inp_mem, acc_mem, par_mem = Spad(inp), Spad(acc, 8 * ARCH.acc_word_bytes), Spad(par)
    procs = [inp_mem.reader(unit.src, unit.window), par_mem.reader(unit.eps, 8),
             acc_mem.writer(unit.acc, unit.lanes, signed=True)]
    durations = run_unit(unit, procs, [encode(ins) for ins, _ in items], limit=20000)
    return durations, acc_mem.mem, want


def _check(items, seed, patch=None, runner=None):
    durations, got, want = (runner or run)(items, seed, patch)
    for ins, _ in items:
        a, span = ins["acc_addr"], norm_words(ins)
        assert np.array_equal(got[a:a + span], want[a:a + span]), \
            f"{ins}:\nrtl {got[a:a + span]}\nsim {want[a:a + span]}"
    np.testing.assert_array_equal(got, want)
    for (ins, _), d in zip(items, durations):
        assert (d, d) == tuple(int(v) for v in norm_cycles(ins, ARCH)), \
            f"{ins}: measured {d}, norm_cycles {norm_cycles(ins, ARCH)}"


def random_items(rng, count: int = 8):
    items, acc_at = [], 0
    for k in range(count):
        ins, eps = random_norm(rng, k, acc_at, 8 * k)
        items.append((ins, eps))
        acc_at += norm_words(ins) + 1
    items.append((Instr("NORM", {**items[0][0].args, "len": 0}), items[0][1]))
    return items


def test_norm_rows():
    _check(random_items(np.random.default_rng(4)), seed=5)


@pytest.mark.rtl
def test_norm_on_verilator(rtl_build_dir):
    from qasic.rtl.tb_units import build, run_case

    sim_dir = build(ARCH, rtl_build_dir)
    word = 8 * ARCH.acc_word_bytes

    def on_verilator(items, seed, patch):
        inp, acc, par, want = prepare(items, seed, patch)
        res = run_case(sim_dir, ARCH, "norm", [encode(ins) for ins, _ in items],
                       {"input": inp, "acc": acc, "param": par})
        np.testing.assert_array_equal(res["busy"], res["done"])
        got = (res["mem_acc"] + (1 << (word - 1))) % (1 << word) - (1 << (word - 1))
        return list(res["done"]), got, want
    _check(random_items(np.random.default_rng(14), count=4), seed=15, runner=on_verilator)


def test_exact_squares_and_constant_rows():
    """Q + eps a perfect square (3, 4 -> 25: r = 5 exactly), a zero row (r = max(0, 1)) and a
    constant row under LayerNorm (c = 0)."""
    base = {"src_stride": 4, "rows": 1, "chunk": 2, "zp": 0, "fmt": "int8", "eps_addr": 0}
    items = [(Instr("NORM", {**base, "src_addr": 0, "len": 2, "center": 0, "acc_addr": 0}), 0),
             (Instr("NORM", {**base, "src_addr": 4, "len": 4, "center": 0, "acc_addr": 8}), 0),
             (Instr("NORM", {**base, "src_addr": 8, "len": 3, "center": 1, "acc_addr": 16}), 0),
             (Instr("NORM", {**base, "src_addr": 12, "len": 4, "center": 0, "acc_addr": 24,
                             "zp": 1}), 0)]
    patch = {0: np.array([3, 4, 0, 0, 0, 0, 0, 0, 7, 7, 7, 0, 4, 5, 1, 1], np.uint8)}
    _check(items, seed=6, patch=patch)
