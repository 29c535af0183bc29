"""Cycles, energy, hazards and DRAM bytes of the ISA v4 fields, from their documented formulas."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr, assemble
from qasic.isa.program import Program, Region
from qasic.rtl.timing import fold_cycles
from qasic.sim.energy import EnergyModel
from qasic.sim.hazards import accesses, hazards
from qasic.sim.run import _stats
from qasic.sim.timing import duration, schedule

ARCH = default_arch()  # 16 x 16 array, 8 DRAM bytes per cycle, 64 cycles DRAM latency
MODEL = EnergyModel(ARCH)
REGIONS = (Region("x", 0, 4096, "input", (1, 1, 4096, 0)),
           Region("constants", 4096, 0, "constants"))
LAYER = {"name": "k0", "kind": "conv", "ops": ["conv2d"], "macs": 0}


def hand_program(text: str) -> Program:
    instrs = tuple(assemble(text))
    return Program(instrs, (0,) * len(instrs), b"", REGIONS, {"layers": [LAYER]})


def one(text: str) -> Instr:
    return assemble(text)[0]


LOAD_3D = "LOAD mem=input planes=3 rows=4 row_bytes=16 dram_stride=16 sram_stride=16"
FILL_3D = LOAD_3D + " fill=1 fill_byte=7"


# ---- timing ----------------------------------------------------------------------------------

def test_dma_moves_planes_times_rows_times_row_bytes():
    assert (ARCH.array_rows, ARCH.array_cols, ARCH.dram_bytes_per_cycle,
            ARCH.dram_latency_cycles) == (16, 16, 8, 64)
    # 3 * 4 * 16 = 192 bytes / 8 per cycle = 24 cycles, + 64 latency (STORE: + 1 for the
    # scratchpad read before its first W beat)
    assert duration(one(LOAD_3D), ARCH) == (24, 88)
    assert duration(one(LOAD_3D.replace("LOAD", "STORE")), ARCH) == (24, 89)


def test_a_fill_writes_C_bytes_per_cycle_without_dram_latency():
    # 12 rows of 16 bytes, C = 16 per cycle: 12 cycles; done a cycle after the last write
    assert duration(one(FILL_3D), ARCH) == (12, 13)
    t = schedule(hand_program(f"{FILL_3D}\n{LOAD_3D}\nEND"), ARCH)
    assert list(t.start[:2]) == [0, 12] and list(t.end[:2]) == [13, 12 + 88]


def test_gemm_streams_lines_times_rows_vectors():
    gemm = one("GEMM lines=3 rows=5 k=16 n=16 wbits=8")
    # the fold + one cycle of scratchpad read latency before the first weight row
    assert duration(gemm, ARCH) == (fold_cycles(16, 16, 15) + 1,) * 2 == (62, 62)
    with pytest.raises(ProgramFormatError, match=r"instruction 1 \(GEMM\): fold_cycles: t = 0 "
                                                 r"must be >= 1; lines and rows must be >= 1"):
        schedule(hand_program("SYNC\nGEMM lines=0 rows=5 k=1 n=1 wbits=8\nEND"), ARCH)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pool_duration_counts_rectangular_windows(mode):
    pool = one(f"POOL h=9 w=8 c=20 kh=3 kw=2 sh=2 sw=1 mode={mode}")
    # oh = (9 - 3) // 2 + 1 = 4, ow = (8 - 2) // 1 + 1 = 7; per output pixel, ceil(20 / 16) = 2
    # channel groups, one window position per cycle: 28 * 2 * 3 * 2 = 336; + 1 param read,
    # + write delay 5 + 1
    assert duration(pool, ARCH) == (343, 343)


def test_lut_and_add_durations():
    # LUT: the 256-byte table on a 64-byte port (4) + ceil(100 / 16) + write delay 2 + 1
    assert duration(one("LUT count=100"), ARCH) == (14, 14)
    # ADD bcast=4: 25 rows of ceil(4 / 16) = 1 group; + 1 param read + write delay 8 + 1
    assert duration(one("ADD count=100 op=mul bcast=4"), ARCH) == (35, 35)


# ---- energy ----------------------------------------------------------------------------------

def test_dma_energy_is_per_bit_of_the_3d_box():
    e = MODEL.instr(one(LOAD_3D))
    bits = 3 * 4 * 16 * 8
    assert e["dram"] == pytest.approx(bits * MODEL.table["dram_pj_per_bit"])
    assert e["sram"] == pytest.approx(bits * MODEL.sram_bit["input"])


def test_a_fill_costs_only_its_sram_writes():
    e = MODEL.instr(one(FILL_3D))
    assert e["dram"] == 0 and e["mac"] == 0 and e["other"] == 0
    assert e["sram"] == pytest.approx(MODEL.instr(one(LOAD_3D))["sram"])


def test_gemm_energy_follows_the_streamed_vectors():
    two_lines = MODEL.instr(one("GEMM lines=2 rows=5 k=16 n=16 wbits=8"))
    one_line = MODEL.instr(one("GEMM lines=1 rows=10 k=16 n=16 wbits=8"))
    assert two_lines == pytest.approx(one_line)
    assert two_lines["mac"] == pytest.approx(10 * 16 * 16 * MODEL.mac_pj(8, 8))


def test_post_lut_reads_one_table_byte_per_element():
    post = "POST rows=6 n=10 ofmt=int4"
    extra = MODEL.instr(one(post + " lut=1"))["sram"] - MODEL.instr(one(post))["sram"]
    assert extra == pytest.approx(60 * 8 * MODEL.sram_bit["param"])


def test_lut_energy_is_code_traffic_and_table_reads():
    e = MODEL.instr(one("LUT count=50 fmt=int8 ofmt=int4"))
    assert e["sram"] == pytest.approx(50 * (12 * MODEL.sram_bit["output"]
                                            + 8 * MODEL.sram_bit["param"]))
    assert e["mac"] == e["dram"] == e["other"] == 0


def test_avg_pool_adds_each_window_element_and_requantizes_each_result():
    pool = "POOL h=9 w=8 c=20 kh=3 kw=2 sh=2 sw=1"
    e_max, e_avg = MODEL.instr(one(pool)), MODEL.instr(one(pool + " mode=avg"))
    results, window = 4 * 7 * 20, 4 * 7 * 20 * 6
    t = MODEL.table
    assert e_max["other"] == pytest.approx(window * 8 * t["mac_add_pj_per_bit"] * MODEL.logic)
    assert e_avg["other"] == pytest.approx(
        (results * t["int32_mult_pj"] + window * t["int32_add_pj"]) * MODEL.logic)
    assert e_avg["sram"] - e_max["sram"] == pytest.approx(24 * 8 * MODEL.sram_bit["param"])


def test_mul_requantizes_once_where_add_requantizes_three_times():
    add, mul = MODEL.instr(one("ADD count=64")), MODEL.instr(one("ADD count=64 op=mul"))
    assert mul["other"] == pytest.approx(add["other"] / 3)
    assert mul["sram"] == pytest.approx(add["sram"])


# ---- hazards and DRAM bytes ------------------------------------------------------------------

def flat(group: list) -> dict[str, set]:
    out: dict[str, set] = {}
    for mem, idx in group:
        out.setdefault(mem, set()).update(int(i) for i in idx)
    return out


def test_dma_accesses_cover_the_3d_box_and_a_fill_reads_nothing():
    load = one("LOAD mem=weight planes=2 rows=3 row_bytes=4 dram_addr=100 dram_stride=10 "
               "dram_plane_stride=1000 sram_addr=5 sram_stride=8 sram_plane_stride=40")
    reads, writes = accesses(load)
    want_dram = {100 + p * 1000 + r * 10 + j for p in range(2) for r in range(3) for j in range(4)}
    want_sram = {5 + p * 40 + r * 8 + j for p in range(2) for r in range(3) for j in range(4)}
    assert flat(reads) == {"dram": want_dram} and flat(writes) == {"weight": want_sram}
    reads, writes = accesses(Instr("LOAD", {**load.args, "fill": 1}))
    assert reads == [] and flat(writes) == {"weight": want_sram}


def test_compute_accesses_of_the_new_fields():
    gemm = one("GEMM inp_addr=3 inp_stride=2 lines=2 inp_line_stride=100 rows=3 k=4 n=2 "
               "wbits=8 acc_addr=10")
    reads, writes = accesses(gemm)
    assert flat(reads)["input"] == {3 + line * 100 + r * 2 + j
                                    for line in range(2) for r in range(3) for j in range(4)}
    assert flat(writes) == {"acc": set(range(10, 10 + 6 * 2))}
    post = one("POST rows=1 n=1 ofmt=int4 lut=1 lut_addr=500")
    assert set(range(500, 516)) <= flat(accesses(post)[0])["param"]
    pool = one("POOL h=2 w=2 c=1 kh=1 kw=1 sh=1 sw=1 mode=avg param_addr=64")
    assert flat(accesses(pool)[0])["param"] == set(range(64, 88))
    add = one("ADD a_addr=0 b_addr=100 dst_addr=200 count=16 bcast=3 fmt=int4 bfmt=int4 "
              "ofmt=int4")
    assert flat(accesses(add)[0])["output"] == set(range(8)) | {100, 101}
    lut = one("LUT src_addr=0 dst_addr=50 count=5 table_addr=300 fmt=int3 ofmt=int8")
    assert flat(accesses(lut)[0]) == {"output": {0, 1}, "param": set(range(300, 308))}
    assert flat(accesses(lut)[1]) == {"output": set(range(50, 55))}


def test_a_fill_racing_a_gemm_without_a_token_is_a_hazard():
    fill = "LOAD mem=input fill=1 planes=1 rows=1 row_bytes=16"
    gemm = "GEMM lines=1 rows=1 k=16 n=16 wbits=8"
    ordered = hand_program(f"{fill} +push_next\n{gemm} +pop_prev\nEND")
    assert hazards(ordered, ARCH) == []
    racing = hand_program(f"{fill}\n{gemm}\nEND")
    assert hazards(racing, ARCH) == ["RAW on input: instruction 0 (LOAD) vs 1 (GEMM)"]


def test_layer_dram_bytes_count_copies_not_fills():
    p = hand_program(f"{FILL_3D}\n{LOAD_3D}\nSTORE mem=output planes=2 rows=1 row_bytes=5\nEND")
    r = _stats(p, ARCH, np.zeros(0), schedule(p, ARCH))
    assert r.layers[0]["dram_bytes"] == r.dram_bytes == 192 + 10
