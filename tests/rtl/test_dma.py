"""The DMA units (rtl/dma.py) under cocotb + Verilator: random LOAD, fill, STORE, GATHER and
SCATTER instructions on DmaLoad + DmaStore + scratchpads + the DRAM model (rtl/tb_dma.py),
memory contents against qasic.sim.kernels and busy / done cycles against dma.cycles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.isa.encoding import Instr, encode
from qasic.isa.table import WORD_BYTES
from qasic.rtl import dma
from qasic.rtl.dma import ERR_INDEX, ERR_MEM, LOAD_MEMS, cycles, refusal
from qasic.rtl.ports import sram_elements
from qasic.sim import kernels as K

pytestmark = pytest.mark.rtl
ARCH = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, gemm_max_rows=16,
                           input_sram_bytes=256, weight_sram_bytes=256, output_sram_bytes=512,
                           param_sram_bytes=256, dram_bytes_per_cycle=8, dram_latency_cycles=5)
DRAM_BYTES = 8192
SRC = (0, 3072)        # LOAD / GATHER sources
IDX = (3072, 3584)     # int32 indices, values in [0, 24)
DST = (4096, 8192)     # STORE / SCATTER destinations
SIZES = {mem: sram_elements(ARCH)[mem][0] for mem in LOAD_MEMS}


# ---- build and run ---------------------------------------------------------------------------

def build(build_dir: Path) -> Path:
    from qasic.rtl import harness
    from qasic.rtl.tb_dma import HARNESS_TOP, DmaHarness

    return harness.build(DmaHarness(ARCH), HARNESS_TOP, build_dir, "dma")


def run_case(sim_dir: Path, dram: np.ndarray, queues: dict[str, list[tuple[Instr, int]]],
             stall: float = 0.0) -> dict:
    from qasic.rtl import harness
    from qasic.rtl.tb_dma import HARNESS_TOP

    arrays = {"dram": dram, "latency": ARCH.dram_latency_cycles, "stall": stall,
              **{f"size_{mem}": SIZES[mem] for mem in LOAD_MEMS}}
    for q, items in queues.items():
        words = [np.frombuffer(encode(ins).to_bytes(WORD_BYTES, "little"), np.uint8)
                 for ins, _ in items]
        arrays[f"{q}_words"] = np.array(words, np.uint8).reshape(-1, WORD_BYTES)
        arrays[f"{q}_phase"] = np.array([p for _, p in items], np.int64)
    return harness.run(sim_dir, HARNESS_TOP, "qasic.rtl.tb_dma", arrays,
                       ("QASIC_DMA_CASE", "QASIC_DMA_RESULTS"), "DMA units")


def _box(rng, lo: int, hi: int, planes: int, rows: int, rb: int) -> tuple[int, int, int]:
    """(addr, plane_stride, stride) of a planes x rows x rb box inside [lo, hi)."""
    for _ in range(100):
        stride = int(rng.integers(0, 2 * rb + 3))
        plane = int(rng.integers(0, rows * max(stride, rb) + 9))
        extent = (planes - 1) * plane + (rows - 1) * stride + rb
        if extent <= hi - lo:
            return int(rng.integers(lo, hi - extent + 1)), plane, stride
    return lo, 0, 0


def rand_copy(rng, op: str, mem: str, sram: tuple[int, int], dram: tuple[int, int]) -> Instr:
    planes, rows, rb = int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 27))
    if rng.random() < 0.08:
        planes, rows, rb = [(0, rows, rb), (planes, 0, rb), (planes, rows, 0)][rng.integers(3)]
    s_addr, s_plane, s_stride = _box(rng, *sram, max(planes, 1), max(rows, 1), max(rb, 1))
    if op == "STORE":  # DRAM rows must not overlap: a STORE's rows then land in a known order
        s = max(rb, 1) + int(rng.integers(0, 9))
        d_stride, d_plane = s, s * max(rows, 1) + int(rng.integers(0, 9))
        extent = (max(planes, 1) - 1) * d_plane + (max(rows, 1) - 1) * d_stride + max(rb, 1)
        d_addr = int(rng.integers(dram[0], dram[1] - extent + 1))
    else:
        d_addr, d_plane, d_stride = _box(rng, *dram, max(planes, 1), max(rows, 1), max(rb, 1))
    return Instr(op, {"mem": mem, "dram_addr": d_addr, "dram_stride": d_stride,
                      "dram_plane_stride": d_plane, "sram_addr": s_addr,
                      "sram_stride": s_stride, "sram_plane_stride": s_plane, "planes": planes,
                      "rows": rows, "row_bytes": rb})


def rand_fill(rng, mem: str, sram: tuple[int, int]) -> Instr:
    planes, rows, rb = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 14))
    s_addr, s_plane, s_stride = _box(rng, *sram, planes, rows, rb)
    return Instr("LOAD", {"mem": mem, "fill": 1, "fill_byte": int(rng.integers(256)),
                          "sram_addr": s_addr, "sram_stride": s_stride,
                          "sram_plane_stride": s_plane, "planes": planes, "rows": rows,
                          "row_bytes": rb})


def rand_indexed(rng, op: str, mem: str, sram: tuple[int, int], table: tuple[int, int],
                 dram: np.ndarray) -> Instr:
    count, rb = int(rng.integers(1, 38)), int(rng.integers(1, 20))
    if rng.random() < 0.08:
        count = 0
    idx_addr = 4 * int(rng.integers(IDX[0] // 4, (IDX[1] - 4 * max(count, 1)) // 4 + 1))
    idx = dram[idx_addr:idx_addr + 4 * count].view("<i4")
    vocab = int(idx.max(initial=0)) + 1 + int(rng.integers(0, 3))
    stride = rb + int(rng.integers(0, 12))
    t_addr = int(rng.integers(table[0], table[1] - (vocab - 1) * stride - rb + 1))
    s_stride = rb + int(rng.integers(0, 5)) if op == "GATHER" else int(rng.integers(0, 2 * rb))
    if (max(count, 1) - 1) * s_stride + rb > sram[1] - sram[0]:
        s_stride, count = rb, min(count, (sram[1] - sram[0]) // rb)
    s_addr = int(rng.integers(sram[0], sram[1] - (max(count, 1) - 1) * s_stride - rb + 1))
    return Instr(op, {"mem": mem, "idx_addr": idx_addr, "count": count, "table_addr": t_addr,
                      "table_stride": stride, "vocab": vocab, "row_bytes": rb,
                      "sram_addr": s_addr, "sram_stride": s_stride})


def half(mem: str, which: int) -> tuple[int, int]:
    """Scratchpad region: 0 = DRAM data (LOAD / GATHER / STORE source), 1 = fills. Fills never
    overlap bytes a LOAD of the same queue may still be landing (dma.py's program rule)."""
    h = SIZES[mem] // 2
    return (0, h) if which == 0 else (h, SIZES[mem])


def rand_load(rng, dram, mems=LOAD_MEMS) -> Instr:
    mem = str(rng.choice(mems))
    kind = rng.random()
    if kind < 0.45:
        return rand_copy(rng, "LOAD", mem, half(mem, 0), SRC)
    if kind < 0.75:
        return rand_fill(rng, mem, half(mem, 1))
    return rand_indexed(rng, "GATHER", mem, half(mem, 0), SRC, dram)


def rand_store(rng, dram) -> Instr:
    if rng.random() < 0.6:
        return rand_copy(rng, "STORE", "output", half("output", 0), DST)
    return rand_indexed(rng, "SCATTER", "output", half("output", 0), DST, dram)


# ---- the reference ---------------------------------------------------------------------------

def apply(ins: Instr, dram: np.ndarray, mems: dict[str, np.ndarray]) -> None:
    """``ins`` on (1, n) arrays with qasic.sim.kernels, as the functional simulator does."""
    if ins.op in ("LOAD", "STORE"):
        p, r, n = ins["planes"], ins["rows"], ins["row_bytes"]
        d = (dram, ins["dram_addr"], ins["dram_plane_stride"], ins["dram_stride"])
        s = (mems[ins["mem"]], ins["sram_addr"], ins["sram_plane_stride"], ins["sram_stride"])
        if ins["fill"]:
            K.fill(*s, p, r, n, np.uint8(ins["fill_byte"]))
        else:
            K.dma(*(d + s if ins.op == "LOAD" else s + d), p, r, n)
        return
    count, n = ins["count"], ins["row_bytes"]
    if count == 0 or n == 0:
        return
    a = ins["idx_addr"]
    idx = dram[:, a:a + 4 * count].view("<i4").astype(np.int64)
    sram = mems[ins["mem"]]
    if ins.op == "GATHER":
        K.gather(dram, idx, ins["table_addr"], ins["table_stride"], sram, ins["sram_addr"],
                 ins["sram_stride"], n)
    else:
        K.scatter(sram, ins["sram_addr"], ins["sram_stride"], dram, idx, ins["table_addr"],
                  ins["table_stride"], n)


def check_timing(q: str, items, res: dict) -> int:
    """busy == dma.cycles' b; completion = max(start + d, previous completion + 1)."""
    start, busy, done = res[f"{q}_start"], res[f"{q}_busy"], res[f"{q}_done"]
    prev_end = -1
    for i, (ins, _) in enumerate(items):
        b, d = cycles(ins, ARCH)
        assert busy[i] == b, f"{q} {i} {ins}: busy {busy[i]} cycles, formula {b}"
        end = start[i] + done[i]
        want = max(start[i] + d, prev_end + 1)
        assert done[i] > 0 and end == want, \
            f"{q} {i} {ins}: done after {done[i]} cycles, formula {want - start[i]} (d = {d})"
        prev_end = end
    return len(items)


def initial_dram(rng) -> np.ndarray:
    dram = rng.integers(0, 256, DRAM_BYTES).astype(np.uint8)
    dram[IDX[0]:IDX[1]] = rng.integers(0, 24, (IDX[1] - IDX[0]) // 4).astype("<i4").view(np.uint8)
    return dram


# ---- tests -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sim_dir(rtl_build_dir):
    return build(rtl_build_dir)


def random_case(seed: int):
    """Phase 0: loads of every kind into every scratchpad. Phase 1: more loads beside STOREs
    and SCATTERs of the output scratchpad's data half, both queues at once."""
    rng = np.random.default_rng(seed)
    dram = initial_dram(rng)
    loads = [(rand_load(rng, dram), 0) for _ in range(40)]
    loads += [(rand_load(rng, dram, ("input", "weight", "param")), 1) for _ in range(30)]
    stores = [(rand_store(rng, dram), 1) for _ in range(30)]
    return dram, loads, stores


def check_memories(res: dict, dram: np.ndarray, loads, stores) -> None:
    want_dram = dram[None].copy()
    mems = {mem: np.zeros((1, SIZES[mem]), np.uint8) for mem in LOAD_MEMS}
    for ins, _ in loads + stores:  # stores follow every phase-0 load and touch other bytes
        apply(ins, want_dram, mems)
    for mem in LOAD_MEMS:
        np.testing.assert_array_equal(res[mem], mems[mem][0], err_msg=f"scratchpad {mem}")
    np.testing.assert_array_equal(res["dram"], want_dram[0], err_msg="DRAM")
    for q in ("load", "store"):
        assert tuple(res[f"{q}_error"]) == (0, 0)


def test_random_instructions(sim_dir):
    dram, loads, stores = random_case(12)
    res = run_case(sim_dir, dram, {"load": loads, "store": stores})
    check_memories(res, dram, loads, stores)
    assert check_timing("load", loads, res) + check_timing("store", stores, res) == 100
    kinds = {(i.op, bool(i.args.get("fill"))) for i, _ in loads + stores}
    assert len(kinds) == 5  # LOAD, fill, GATHER, STORE, SCATTER all ran


def test_random_instructions_under_backpressure(sim_dir):
    """The DRAM model holds back AR, AW, W, R and B a third of the time: same memory
    contents, every instruction done once, never faster than the formula."""
    dram, loads, stores = random_case(21)
    res = run_case(sim_dir, dram, {"load": loads, "store": stores}, stall=0.35)
    check_memories(res, dram, loads, stores)
    for q, items in (("load", loads), ("store", stores)):
        formula = np.array([cycles(ins, ARCH) for ins, _ in items])
        assert np.all(res[f"{q}_done"] >= formula[:, 1]) and np.all(res[f"{q}_busy"] >= 1)
        assert np.sum(res[f"{q}_busy"] > formula[:, 0]) > len(items) // 4  # stalls happened


def test_fills_behind_a_held_back_load_finish_in_order(sim_dir):
    """A slow slave (R held back 60 % of cycles) makes LOADs land long after the fills issued
    behind them complete; every done still comes once, in issue order, after the LOAD's."""
    rng = np.random.default_rng(5)
    dram = initial_dram(rng)
    loads = []
    for k in range(12):  # a LOAD, three fills; every other LOAD one beat, right behind them
        mem = LOAD_MEMS[k % 4]
        if k % 2:
            ins = Instr("LOAD", {"mem": mem, "dram_addr": 8 * int(rng.integers(0, 300)),
                                 "sram_addr": int(rng.integers(0, 100)), "rows": 1,
                                 "planes": 1, "row_bytes": int(rng.integers(1, 9))})
        else:
            ins = rand_copy(rng, "LOAD", mem, half(mem, 0), SRC)
        loads.append((ins, 0))
        loads += [(rand_fill(rng, mem, half(mem, 1)), 0) for _ in range(3)]
    stores = [(rand_store(rng, dram), 1) for _ in range(6)]  # after the loads
    res = run_case(sim_dir, dram, {"load": loads, "store": stores}, stall=0.6)
    check_memories(res, dram, loads, stores)
    ends = res["load_start"] + res["load_done"]
    assert np.all(res["load_done"] > 0) and np.all(np.diff(ends) >= 1)
    held = [i for i in range(0, len(loads), 4)
            if ends[i] > res["load_start"][i + 3] + cycles(loads[i + 3][0], ARCH)[1]]
    assert held  # some fill completed before the LOAD ahead of it and waited for its done


def test_index_outside_the_table_stops_with_an_error(sim_dir):
    """A GATHER whose 6th index is vocab: rows 0..4 land, then error ERR_INDEX, no done, busy
    stays high. A SCATTER of the same indices (vocab - 1 = 2 ... ) likewise on the store unit."""
    rng = np.random.default_rng(3)
    dram = initial_dram(rng)
    idx = np.array([1, 0, 2, 2, 1, 3, 0, 1], "<i4")
    dram[IDX[0]:IDX[0] + 32] = idx.view(np.uint8)
    args = {"idx_addr": IDX[0], "count": 8, "table_stride": 8, "vocab": 3, "row_bytes": 8,
            "sram_addr": 0, "sram_stride": 8}
    good = Instr("LOAD", {"mem": "input", "dram_addr": 16, "rows": 1, "row_bytes": 8,
                          "planes": 1, "sram_addr": 100})
    gather = Instr("GATHER", {"mem": "input", "table_addr": 64, **args})
    scatter = Instr("SCATTER", {"mem": "output", "table_addr": DST[0], **args})
    res = run_case(sim_dir, dram, {"load": [(good, 0), (gather, 0)], "store": [(scatter, 0)]})
    assert tuple(res["load_error"]) == (1, ERR_INDEX)
    assert tuple(res["store_error"]) == (1, ERR_INDEX)
    assert res["load_done"][0] > 0 and res["load_done"][1] == -1 and res["load_busy"][1] == -1
    assert res["store_done"][0] == -1
    rows = dram[64:64 + 24].reshape(3, 8)
    np.testing.assert_array_equal(res["input"][:40], rows[idx[:5]].reshape(-1))
    np.testing.assert_array_equal(res["input"][40:64], 0)  # nothing of rows 5.. landed
    np.testing.assert_array_equal(res["dram"][DST[0] + 24:], dram[DST[0] + 24:])


def test_refusal_names_what_the_rtl_cannot_run():
    acc = Instr("LOAD", {"mem": "acc", "rows": 1, "planes": 1, "row_bytes": 4})
    assert "mem = acc" in refusal(acc, ARCH)
    assert "fill" in refusal(Instr("STORE", {"mem": "output", "fill": 1}), ARCH)
    assert "idx_addr = 6" in refusal(Instr("GATHER", {"mem": "input", "idx_addr": 6}), ARCH)
    assert "mem = input" in refusal(Instr("SCATTER", {"mem": "input"}), ARCH)
    assert refusal(Instr("LOAD", {"mem": "param"}), ARCH) is None
    assert ERR_MEM != ERR_INDEX


@pytest.mark.parametrize("b", [4, 8, 128])
def test_vectorized_durations_equal_cycles(b):
    """dma.durations (sim.timing's rows) equals dma.cycles on random instructions."""
    arch = dataclasses.replace(ARCH, dram_bytes_per_cycle=b)
    rng = np.random.default_rng(b)
    dram = initial_dram(rng)
    for op, make in (("LOAD", lambda: rand_load(rng, dram)),
                     ("STORE", lambda: rand_copy(rng, "STORE", "output", (0, 256), DST)),
                     ("GATHER", lambda: rand_indexed(rng, "GATHER", "input", (0, 128), SRC,
                                                     dram))):
        items = [make() for _ in range(60)]
        items = [i for i in items if i.op == op]
        items.append(Instr(op, {**items[0].args, **({"count": 70} if op == "GATHER" else {})}))
        cols = {key: np.array([i[key] for i in items]) for key in items[0].args}
        busy, done = dma.durations(op, cols, arch)
        want = np.array([cycles(i, arch) for i in items])
        np.testing.assert_array_equal(np.stack([busy, done], 1), want, err_msg=op)
        assert dma.durations(op, items[0].args, arch)[0] == want[0, 0]


def test_cycle_formula_written_out():
    """B = 8, L = 5, C = 4, K = 16, by hand."""
    def load(**kw):
        return cycles(Instr("LOAD", {"mem": "input", "planes": 1, "rows": 1, **kw}), ARCH)
    assert load(row_bytes=16) == (2, 7)                       # two aligned words
    assert load(row_bytes=16, dram_addr=3) == (3, 8)          # three words touched
    assert load(row_bytes=5, dram_addr=3, rows=4, dram_stride=8) == (4, 9)
    assert load(row_bytes=5, dram_addr=3, rows=4, dram_stride=4) == (6, 11)  # offsets 3,7,3,7
    assert load(row_bytes=9, fill=1, rows=2) == (6, 7)        # ceil(9/4) = 3 per row
    assert load(row_bytes=0) == (1, 2)
    store = Instr("STORE", {"mem": "output", "planes": 2, "rows": 1, "row_bytes": 8})
    assert cycles(store, ARCH) == (2, 8)
    g = Instr("GATHER", {"mem": "input", "idx_addr": 4, "count": 17, "table_addr": 2,
                         "table_stride": 12, "vocab": 9, "row_bytes": 5})
    # chunks of 16 and 1 index: ceil((4+64)/8) = 9 and ceil((4+4)/8) = 1 beats, 2 waits of L-1;
    # G = gcd(8, 12) = 4, o_max = 2 + 4 = 6, Rg = ceil(11/8) = 2
    assert cycles(g, ARCH) == (9 + 1 + 2 * 4 + 17 * 2, 9 + 1 + 2 * 4 + 17 * 2 + 5)
    assert cycles(Instr("SCATTER", {**g.args}), ARCH)[1] == 9 + 1 + 8 + 34 + 6
    cols = {k: np.array([v, g.args[k]]) for k, v in g.args.items()}
    cols["count"][0] = 40
    busy, done = dma.durations("GATHER", cols, ARCH)
    assert (busy[1], done[1]) == cycles(g, ARCH)
    assert (busy[0], done[0]) == cycles(Instr("GATHER", {**g.args, "count": 40}), ARCH)
    assert dma.row_beats(5, 4, 8, 3, 5, 9, 8) == sum(
        -(-((5 + p * 4 + r * 8) % 8 + 9) // 8) for p in range(3) for r in range(5))
