"""Check the RTL against the simulator on the exact GEMM tiles a compiled program produces.

The simulator runs the program on real inputs; before each selected GEMM instruction it reads the
operand tile (the T = lines x rows streamed input vectors of k, k x n weights, and for a
block-scaled GEMM the n column scales and the mode) out of its scratchpads, and after it the
accumulator tile it computed. Operands are captured as the array sees them: decoded weight levels
for table formats, and inputs as ``Machine.activations`` reads them for the GEMM's ``afmt``
(packed intB codes, or the fixed-point levels of FP8 codes). The RTL core then streams the same T
vectors under Verilator; outputs must be equal and the measured cycles must equal the fold the
timing model's GEMM row contains (``rtl.timing.fold_cycles``: 2R + C + T - 2; the GEMM unit of
the whole accelerator adds its prologue and one scratchpad read, ``rtl.timing.gemm_unit_cycles``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.isa.encoding import Instr
from qasic.isa.packing import gemm_vectors, gemm_weight_span, unpack_bits
from qasic.isa.program import Program
from qasic.isa.table import ACT_FORMATS, BSCALE_BYTES, encoding_bits
from qasic.isa.verify import verify as verify_program
from qasic.rtl.packing import wrap
from qasic.rtl.timing import fold_cycles
from qasic.sim.machine import Machine
from qasic.sim.run import write_inputs

CYCLE_TOLERANCE = 0  # the RTL must take exactly the modelled cycles


@dataclass(frozen=True, eq=False)
class Tile:
    layer: str
    index: int          # instruction index in the program
    a: np.ndarray       # (T, k) int: what the array streams in (int codes or FP8 levels)
    w: np.ndarray       # (k, n) int
    expected: np.ndarray  # (T, n) what the simulator's GEMM added, wrapped to acc_bits
    sim_cycles: int
    scale: np.ndarray | None = None  # (n,) unsigned block scales; None when mode is "none"
    mode: str = "none"               # the GEMM's bscale field, one of isa.table.BSCALE_MODES
    afmt: str = "int8"               # the GEMM's afmt field, one of isa.table.ACT_ENCODINGS


def capture_tiles(program: Program, arch: ArchConfig, codes: np.ndarray,
                  per_layer: int = 4) -> list[Tile]:
    """GEMM tiles of the first input in ``codes``: up to ``per_layer`` per kernel (first, last and
    evenly spaced ones in between). Only a verified program runs (qasic.isa.verify)."""
    verify_program(program)
    chosen = _select(program, per_layer)
    m = Machine(program, arch, 1)
    write_inputs(m, program, np.asarray(codes[:1]))  # (several inputs: each its region)
    tiles = []
    for i, ins in enumerate(program.instrs):
        if i in chosen:
            a, w, scale, before = _operands(m, ins)
            m.step(i, ins)
            # The accumulator wraps, so what the GEMM added is the difference modulo 2^acc_bits.
            added = wrap(_acc(m, ins) - before, arch.acc_bits)
            name = program.layers[program.layer_ids[i]]["name"]
            fold = fold_cycles(arch.array_rows, arch.array_cols, gemm_vectors(ins))
            tiles.append(Tile(name, i, a, w, added, fold, scale, ins["bscale"], ins["afmt"]))
        else:
            m.step(i, ins)
    return tiles


def _select(program: Program, per_layer: int) -> set[int]:
    by_layer: dict[int, list[int]] = {}
    for i, (ins, k) in enumerate(zip(program.instrs, program.layer_ids)):
        if ins.op == "GEMM":
            by_layer.setdefault(k, []).append(i)
    chosen = set()
    for idx in by_layer.values():
        picks = np.linspace(0, len(idx) - 1, min(per_layer, len(idx))).round().astype(int)
        chosen |= {idx[p] for p in picks}
    return chosen


def _operands(m: Machine, ins: Instr):
    """(A (T, k), W (k, n), scales (n,) or None, accumulator before) of one GEMM; A's rows are
    the T = lines x rows vectors in stream order (``Machine.activations``).

    A block-scaled GEMM keeps its n scales in the weight scratchpad at wgt_addr, and its weight
    rows after them (``isa.packing.gemm_weight_span``).
    """
    rows, k, n, wb = gemm_vectors(ins), ins["k"], ins["n"], ins["wbits"]
    s_addr, w_addr, row_bytes = gemm_weight_span(ins)
    w = unpack_bits(m.mem["weight"][0, w_addr:w_addr + k * row_bytes].tobytes(), k, n, wb)
    if ins["lut"]:  # the array multiplies the decoded fixed-point values
        w = m._lut(ins)[0][w & ((1 << wb) - 1)]
    if ins["bscale"] == "mulzp":  # the load path subtracts the zero points: the array gets q - z
        zero = m.mem["weight"][0, s_addr + n * BSCALE_BYTES:][:n].view(np.int8)
        w = w - zero.astype(np.int64)
    scale = None if s_addr is None else _scales(m.mem["weight"][0], s_addr, n)
    before = _acc(m, ins) if ins["accumulate"] else np.zeros((rows, n), dtype=np.int64)
    return m.activations(ins)[0], w, scale, before


def _scales(mem: np.ndarray, addr: int, n: int) -> np.ndarray:
    """n unsigned little-endian scales of BSCALE_BYTES bytes each, from ``addr``."""
    raw = mem[addr:addr + n * BSCALE_BYTES].reshape(n, BSCALE_BYTES).astype(np.int64)
    return (raw << (8 * np.arange(BSCALE_BYTES))).sum(axis=1)


def _acc(m: Machine, ins: Instr) -> np.ndarray:
    rows, n = gemm_vectors(ins), ins["n"]
    return m.acc[0, ins["acc_addr"]:ins["acc_addr"] + rows * n].reshape(rows, n).copy()


def verify_tiles(arch: ArchConfig, tiles: list[Tile], build_dir: str | Path) -> dict:
    """Run ``tiles`` on the Verilated core; return the results.json "rtl" record."""
    from qasic.rtl.cocotb_runner import run_tiles

    # mulzp's zero points are subtracted on the load path (already in t.w)
    results = run_tiles(arch, [(t.a, t.w, t.scale, t.mode) for t in tiles], build_dir)
    rows, mismatches, worst = [], 0, 0
    for t, r in zip(tiles, results):
        match = bool(np.array_equal(r.out, t.expected))
        mismatches += not match
        worst = max(worst, abs(r.cycles - t.sim_cycles))
        rows.append({"layer": t.layer, "instr": t.index, "rows": int(t.a.shape[0]),
                     "k": int(t.a.shape[1]), "n": int(t.w.shape[1]), "bscale": t.mode,
                     "afmt": t.afmt,
                     "cycles_rtl": r.cycles, "cycles_sim": t.sim_cycles, "match": match})
    return {
        "verified": mismatches == 0 and worst <= CYCLE_TOLERANCE and bool(tiles),
        "tiles_checked": len(tiles),
        "mismatches": mismatches,
        "cycle_error_max": worst,
        "cycle_tolerance": CYCLE_TOLERANCE,
        "method": (f"The simulator ran the compiled program on a test input and captured the "
                   f"operands and results of {len(tiles)} GEMM instructions across all layers; "
                   f"the generated Verilog of the {arch.array_rows}x{arch.array_cols} systolic "
                   f"core ran the same operands under Verilator via cocotb."
                   f"{_pe_text(arch, tiles)}{_scaled_text(tiles)} "
                   f"Outputs are compared as raw {arch.acc_bits}-bit two's-complement integers; "
                   f"cycles from start to done against the simulator's model "
                   f"2R + C + T - 2 (tolerance {CYCLE_TOLERANCE})."),
        "tiles": rows,
    }


def _scaled_text(tiles: list[Tile]) -> str:
    modes = sorted({t.mode for t in tiles} - {"none"})
    if not modes:
        return ""
    count = sum(t.mode != "none" for t in tiles)
    return (f" {count} of them are block-scaled ({', '.join(modes)}): the core got the column "
            f"scales stored before their weight rows and applied them to each column's sums on "
            f"the way into its output buffer, as the GEMM's bscale field says.")


def _pe_text(arch: ArchConfig, tiles: list[Tile]) -> str:
    """How inputs reached the PEs and what the PEs are, when not int8 codes into multipliers."""
    text = ""
    for enc in sorted({t.afmt for t in tiles} - {"int8"}):
        count = sum(t.afmt == enc for t in tiles)
        how = ("the array got the fixed-point levels of the codes" if enc in ACT_FORMATS[1:]
               else f"codes of {encoding_bits(enc)} bits, packed in the input scratchpad")
        text += f" {count} of them stream {enc} activations ({how})."
    sides = [f"{name} as a {bits}-bit significand shifted by 0..{(1 << sb) - 1}"
             for name, bits, sb in (("weight", arch.weight_bits, arch.weight_shift_bits),
                                    ("activation", arch.input_bits, arch.input_shift_bits)) if sb]
    if sides:
        text += (f" The PEs are shift-add MACs (qasic.arch.pe): each integer operand entered the "
                 f"array split into sig << sh, the {' and the '.join(sides)}, and each product "
                 f"(a_sig * w_sig) << (a_sh + w_sh) went into the wrapping accumulator adder.")
    return text
