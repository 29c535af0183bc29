"""Energy per event, priced from the cited table named by the arch config (arch/energy_*.toml).

    MAC(a, w)   = mult * a * w + add * (a + w + 8) + reg * (a + w) / 2      [pJ; Bit Fusion fit]
    SRAM bit    = sram_8kib * (bank bytes / 8 KiB) ** exponent               [pJ; CACTI-7]
    DRAM bit    = dram_pj_per_bit                                           [pJ; LPDDR4]
    post-processing: int32 multiply + adds per output element             [pJ; Horowitz]
    leakage     = (logic mm² * leak_logic + SRAM mm² * leak_sram) * runtime  [NanGate, OpenRAM]
                  the area from qasic.rtl.area (docs/area.md); pJ per cycle = µW / MHz
Per instruction (one inference; bits = bytes x 8, SRAM priced at the scratchpad it touches):
    LOAD / STORE  planes * rows * row_bytes bits read from one side and written to the other:
                  DRAM bits + SRAM bits; a fill LOAD writes the SRAM bits only (no DRAM)
    GEMM          T * k * n MACs (T = lines * rows), input / weight / accumulator bits
    POST          per element: acc read, output write, 1 int32 multiply + 3 adds (+1 for FP8);
                  per channel: 16 param bytes; lut = 1: one param byte read per element
    POOL          source and result bits; max: an 8-bit compare (8 adder bits) per window
                  element; avg: one int32 add per window element, one int32 multiply (the
                  requantize) per result, its 24 param bytes
    ADD           3 code accesses per element; add: 3 requantizes (int32 multiply + add) per
                  element; mul: 1 (the <= 9 x 9-bit code product, far below an int32 multiply,
                  is not priced apart)
    LUT           per element: source and result code bits, one param byte (the table entry)
    GATHER, SCATTER  count * (4 + row_bytes) DRAM bytes (indices and rows); count * row_bytes
                  bytes written to the scratchpad
    SOFTMAX       per row of n keys (B / Bo source / result code bits): 3 passes read the codes
                  (3 n B bits), n Bo bits written, 2 n exp-table words read (exp pass and scale
                  pass; masked: 3 n mask bytes, the row's own at mask_stride); logic: n B-bit
                  compares and n B-bit subtracts (adder bits), n sum adds, n x (multiply e R +
                  2 adds: x qmax as shift and subtract, rounding), one divide of
                  DIVIDE_STEPS["SOFTMAX"] add/subtracts; sunk: the sink as one more key of the
                  max and exp passes (a compare, a subtract, one exp-table word, one sum add)
    NORM          per row of n channels (c = center): (2 + c) passes read the codes, n acc words
                  written, the 8-byte epsilon once; logic: n (2c + 3) int32 multiplies and
                  n (4c + 6) + 2 + SQRT_STEPS + DIVIDE_STEPS["NORM"] int32 adds (docs/energy.md)
GEMM wtrans = 1 prices as wtrans = 0: the same bits are read, and the transposer's registers on
the weight load path are not priced apart (nor is the preload's shift through the PEs).
Logic energy (MACs, post-processing) is scaled to the technology node; SRAM and DRAM are not
(their energy shrinks much less than logic: Jouppi et al., ISCA 2021).
Bit-width sets the price twice, each the way the hardware pays it:
- a MAC is priced at the width of the PEs the array is built with (array.input_bits x
  array.weight_bits, plus array.weight_shift_bits for shift-add PEs), the same PEs the RTL
  generator builds. Narrower weights on a wider array cost the wide PE's energy; a design point
  with narrow weights is an array built narrow (``qasic.flow.arch_for``), and a design point with
  wide-exponent minifloat weights gets shift-add PEs (a native FP-weight MAC: significand
  multiplier + exponent shift) when they are cheaper than a multiplier of the decoded width.
  FP8 E4M3 then costs 1.45x an INT8 MAC (cited range 1.0-1.6x, docs/energy.md);
  decoded to 19-bit integers it would cost 2.0x. FP8 E3M4 activations (6-bit significands,
  shifts 0..6: one exponent bit fewer, one mantissa bit more) cost 1.34x on INT8 weights,
  1.37x decoded to 12-bit integers (the same cited range). FP4 E2M1 stays on 5-bit integer
  PEs (1.15x INT4): with block fixed-point accumulation FP4 ~ INT4;
- SRAM and DRAM are priced per bit actually moved, and weights are stored packed, so a 4-bit
  layer moves half the weight bits of an 8-bit one even on an 8-bit array.
Block-scaled formats (MX, per group) add their scale bytes to the weight traffic (MXFP4: 8 bits
per 32 weights in DRAM) and one shift or 8-bit multiply per partial sum per fold
(``EnergyModel.block_scale_pj``), amortized over the fold's k MACs.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from qasic.arch.config import ArchConfig
from qasic.errors import ConfigError
from qasic.isa.encoding import Instr
from qasic.isa.packing import (
    EXP_ENTRY_BYTES,
    NORM_EPS_BYTES,
    dma_bytes,
    gather_dram_bytes,
    gemm_vectors,
    pool_out,
)
from qasic.isa.table import (
    BSCALE_BYTES,
    LUT_ENTRY_BYTES,
    LUT_TABLE_ENTRY_BYTES,
    POOL_PARAM_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
    encoding_bits,
    encoding_is_fp,
)
from qasic.quant.blockscale import MAX_SHIFT, SCALE_BYTE_BITS

CATEGORIES = ("mac", "sram", "dram", "other")  # what an instruction's events cost
PARTS = (*CATEGORIES, "leakage")  # a run's breakdown: the events, and leakage over its cycles
# Restoring division and digit-by-digit square root, one result bit per iteration, each a trial
# subtract priced as int32 adds (docs/energy.md): SOFTMAX's R = 2^32 // S has 32 quotient bits;
# NORM's 2^61 // r up to 62 (r < 2^31: 32-bit subtracts); NORM's root of V < 2^62 has 31 bits,
# each a subtract of up to 64 bits (two int32 adds).
DIVIDE_STEPS = {"SOFTMAX": 32, "NORM": 62}
SQRT_STEPS = 2 * 31


@dataclass(frozen=True)
class EnergyTable:
    rows: dict  # name -> {"value", "unit", "source"}

    def __getitem__(self, name: str) -> float:
        return float(self.rows[name]["value"])

    def cited(self) -> list[dict]:
        return [{"name": k, **v} for k, v in self.rows.items()]


REQUIRED = ("mac_mult_pj_per_bit2", "mac_add_pj_per_bit", "mac_reg_pj_per_bit",
            "sram_pj_per_bit_8kib", "sram_size_exponent", "dram_pj_per_bit", "int32_mult_pj",
            "int32_add_pj", "logic_scale_from_45nm", "leakage_logic_uw_per_mm2",
            "leakage_sram_uw_per_mm2")


@lru_cache(maxsize=8)
def load_table(path: Path) -> EnergyTable:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except (FileNotFoundError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"energy table {path}: {e}; set tech.energy_table to a valid file")
    for name in REQUIRED:
        row = raw.get(name)
        if not isinstance(row, dict) or not {"value", "unit", "source"} <= set(row):
            raise ConfigError(f"energy table {path}: row {name} needs value, unit and source")
    return EnergyTable(raw)


class EnergyModel:
    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        self.table = load_table(arch.energy_table_path())
        t = self.table
        self.logic = t["logic_scale_from_45nm"]
        self.sram_bit = {m: t["sram_pj_per_bit_8kib"] * (size / 8192) ** t["sram_size_exponent"]
                         for m, size in _sram_sizes(arch).items()}
        from qasic.rtl.area import area  # the analytical model: no Amaranth, no Yosys

        self.area = area(arch)
        # Leakage power of the whole accelerator (µW), always on while a program runs.
        self.leakage_uw = (self.area.logic_mm2 * t["leakage_logic_uw_per_mm2"]
                           + self.area.sram_mm2 * t["leakage_sram_uw_per_mm2"])

    @property
    def leakage_pj_per_cycle(self) -> float:
        """Leakage energy of one clock cycle: µW / MHz = pJ."""
        return self.leakage_uw / self.arch.clock_mhz

    def mac_pj(self, a_bits: int, w_bits: int, shift_bits: int = 0,
               a_shift_bits: int = 0) -> float:
        """One MAC of an a_bits x w_bits PE. With shift bits > 0 (a shift-add PE,
        qasic.arch.pe; ``shift_bits`` on the weight, ``a_shift_bits`` on the activation) the
        product passes a barrel shifter over the summed shift (its mux stages priced as adder
        bits, an upper bound) and the accumulator adder widens by the largest shift."""
        t = self.table
        max_shift = (1 << shift_bits) - 1 + (1 << a_shift_bits) - 1
        stages = max_shift.bit_length()
        e = (t["mac_mult_pj_per_bit2"] * a_bits * w_bits
             + t["mac_add_pj_per_bit"] * (a_bits + w_bits + max_shift + 8)
             + t["mac_add_pj_per_bit"] * (a_bits + w_bits) * stages
             + t["mac_reg_pj_per_bit"] * (a_bits + w_bits + shift_bits + a_shift_bits) / 2)
        return e * self.logic

    def block_scale_pj(self, mode: str) -> float:
        """Scaling one partial sum on its way into the accumulator (block fixed point):
        shift = a barrel shifter of acc_bits x ceil(log2(MAX_SHIFT + 1)) 2:1 muxes, each priced
        as an adder bit (an upper bound: a mux is smaller than a full adder); mul = an
        8-bit x acc_bits multiply at the MAC's multiplier coefficient."""
        t, acc = self.table, self.arch.acc_bits
        if mode == "shift":
            stages = MAX_SHIFT.bit_length()
            return acc * stages * t["mac_add_pj_per_bit"] * self.logic
        return (t["mac_mult_pj_per_bit2"] * SCALE_BYTE_BITS * acc
                + t["mac_add_pj_per_bit"] * acc) * self.logic

    def instr(self, ins: Instr) -> dict[str, float]:
        """Energy (pJ) of one instruction on one inference, by category."""
        e = dict.fromkeys(CATEGORIES, 0.0)
        price = _PRICES.get(ins.op)
        if price is not None:
            price(self, ins, e)
        return e

    def _int32_pj(self, mults: float, adds: float) -> float:
        """Post-processing logic: int32 multiplies and adds (Horowitz), scaled to the node."""
        return (mults * self.table["int32_mult_pj"] + adds * self.table["int32_add_pj"]) \
            * self.logic

    def _dma(self, ins: Instr, e: dict) -> None:
        bits = 8 * dma_bytes(ins)
        e["sram"] = bits * self.sram_bit[ins["mem"]]
        if not ins["fill"]:  # a fill only writes the scratchpad
            e["dram"] = bits * self.table["dram_pj_per_bit"]

    def _gemm(self, ins: Instr, e: dict) -> None:
        a = self.arch
        t, k, n, wb = gemm_vectors(ins), ins["k"], ins["n"], ins["wbits"]
        e["mac"] = t * k * n * self.mac_pj(a.input_bits, a.weight_bits, a.weight_shift_bits,
                                           a.input_shift_bits)
        acc_bits = t * n * a.acc_bits * (2 if ins["accumulate"] else 1)
        e["sram"] = (t * k * encoding_bits(ins["afmt"]) * self.sram_bit["input"]
                     + k * n * wb * self.sram_bit["weight"] + acc_bits * self.sram_bit["acc"])
        if ins["lut"]:  # decode on the load path: one table read per weight into the array
            e["sram"] += k * n * 8 * LUT_ENTRY_BYTES * self.sram_bit["param"]
        if ins["bscale"] != "none":
            rows = 2 if ins["bscale"] == "mulzp" else 1  # scales (+ zero points)
            e["sram"] += rows * n * 8 * BSCALE_BYTES * self.sram_bit["weight"]
            e["other"] += t * n * self.block_scale_pj(ins["bscale"])
        if ins["bscale"] == "mulzp":  # code - zero point as each weight loads
            e["other"] += k * n * 8 * self.table["mac_add_pj_per_bit"] * self.logic

    def _post(self, ins: Instr, e: dict) -> None:
        a, elems = self.arch, ins["rows"] * ins["n"]
        obits = encoding_bits(ins["ofmt"])
        e["sram"] = (elems * (a.acc_bits * self.sram_bit["acc"] + obits * self.sram_bit["output"])
                     + ins["n"] * 8 * POST_PARAM_BYTES_PER_CHANNEL * self.sram_bit["param"])
        if ins["lut"]:  # one table byte per output code
            e["sram"] += elems * 8 * LUT_TABLE_ENTRY_BYTES * self.sram_bit["param"]
        adds = 3 + encoding_is_fp(ins["ofmt"])  # FP8 output: one more step to round
        e["other"] = elems * self._int32_pj(1, adds)

    def _pool(self, ins: Instr, e: dict) -> None:
        oh, ow = pool_out(ins)
        results, c = oh * ow * ins["c"], ins["c"]
        window = results * ins["kh"] * ins["kw"]
        e["sram"] = encoding_bits(ins["fmt"]) * (ins["h"] * ins["w"] * c + results) \
            * self.sram_bit["output"]
        if ins["mode"] == "max":  # an 8-bit comparator per window element
            e["other"] = window * 8 * self.table["mac_add_pj_per_bit"] * self.logic
            return
        e["sram"] += 8 * POOL_PARAM_BYTES * self.sram_bit["param"]
        e["other"] = self._int32_pj(results, window)  # sum the window, requantize the sum

    def _add(self, ins: Instr, e: dict) -> None:
        n = ins["count"]
        bits = sum(encoding_bits(ins[f]) for f in ("fmt", "bfmt", "ofmt"))
        e["sram"] = bits * n * self.sram_bit["output"]
        # add: three requantizes per element; mul: the product's one
        steps = 3 if ins["op"] == "add" else 1
        e["other"] = n * steps * self._int32_pj(1, 1)

    def _gather(self, ins: Instr, e: dict) -> None:
        e["sram"] = 8 * ins["count"] * ins["row_bytes"] * self.sram_bit[ins["mem"]]
        e["dram"] = 8 * gather_dram_bytes(ins) * self.table["dram_pj_per_bit"]

    def _softmax(self, ins: Instr, e: dict) -> None:
        n, rows = ins["len"], ins["rows"]
        bits, obits = encoding_bits(ins["fmt"]), encoding_bits(ins["ofmt"])
        out = n * (3 * bits + obits + 3 * 8 * ins["masked"])
        e["sram"] = rows * (out * self.sram_bit["output"]
                            + 2 * n * 8 * EXP_ENTRY_BYTES * self.sram_bit["param"])
        compare_subtract = 2 * bits * self.table["mac_add_pj_per_bit"] * self.logic
        # an attention sink (sunk) is one more key without a result: its compare into the max,
        # the subtract m - sink, one exp-table word and one add into the sum, per row
        keys = n + ins["sunk"]
        e["sram"] += rows * ins["sunk"] * 8 * EXP_ENTRY_BYTES * self.sram_bit["param"]
        e["other"] = rows * (keys * compare_subtract
                             + self._int32_pj(n, 2 * n + keys + DIVIDE_STEPS["SOFTMAX"]))

    def _norm(self, ins: Instr, e: dict) -> None:
        n, rows, c = ins["len"], ins["rows"], ins["center"]
        e["sram"] = (rows * n * ((2 + c) * encoding_bits(ins["fmt"]) * self.sram_bit["input"]
                                 + self.arch.acc_bits * self.sram_bit["acc"])
                     + 8 * NORM_EPS_BYTES * self.sram_bit["param"])
        adds = n * (4 * c + 6) + 2 + SQRT_STEPS + DIVIDE_STEPS["NORM"]
        e["other"] = rows * self._int32_pj(n * (2 * c + 3), adds)

    def _lut(self, ins: Instr, e: dict) -> None:
        n = ins["count"]
        e["sram"] = n * ((encoding_bits(ins["fmt"]) + encoding_bits(ins["ofmt"]))
                         * self.sram_bit["output"]
                         + 8 * LUT_TABLE_ENTRY_BYTES * self.sram_bit["param"])


_PRICES = {"LOAD": EnergyModel._dma, "STORE": EnergyModel._dma, "GEMM": EnergyModel._gemm,
           "POST": EnergyModel._post, "POOL": EnergyModel._pool, "ADD": EnergyModel._add,
           "LUT": EnergyModel._lut, "GATHER": EnergyModel._gather,
           "SCATTER": EnergyModel._gather,
           "SOFTMAX": EnergyModel._softmax, "NORM": EnergyModel._norm}


def _sram_sizes(arch: ArchConfig) -> dict[str, int]:
    return {"input": arch.input_sram_bytes, "weight": arch.weight_sram_bytes,
            "acc": arch.acc_sram_bytes, "output": arch.output_sram_bytes,
            "param": arch.param_sram_bytes}
