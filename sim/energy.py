"""Energy per event, priced from the cited table named by the arch config (arch/energy_*.toml).

    MAC(a, w)   = mult * a * w + add * (a + w + 8) + reg * (a + w) / 2      [pJ; Bit Fusion fit]
    SRAM bit    = sram_8kib * (bank bytes / 8 KiB) ** exponent               [pJ; CACTI-7]
    DRAM bit    = dram_pj_per_bit                                           [pJ; LPDDR4]
    post-processing: int32 multiply + adds per output element             [pJ; Horowitz]
Logic energy (MACs, post-processing) is scaled to the technology node; SRAM and DRAM are not
(their energy shrinks much less than logic: Jouppi et al., ISCA 2021).
Bit-width sets the price twice, each the way the hardware pays it:
- a MAC is priced at the width of the PEs the array is built with (array.input_bits x
  array.weight_bits, plus array.weight_shift_bits for shift-add PEs), the same PEs the RTL
  generator builds. Narrower weights on a wider array cost the wide PE's energy; a design point
  with narrow weights is an array built narrow (``qasic.flow.arch_for``), and a design point with
  wide-exponent minifloat weights gets shift-add PEs (a native FP-weight MAC: significand
  multiplier + exponent shift) when they are cheaper than a multiplier of the decoded width.
  FP8 E4M3 then costs 1.45x an INT8 MAC (cited range 1.0-1.6x, shared/reference/energy.md);
  decoded to 19-bit integers it would cost 2.0x. FP4 E2M1 stays on 5-bit integer PEs (1.15x
  INT4): with block fixed-point accumulation FP4 ~ INT4;
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
from qasic.isa.table import (
    BSCALE_BYTES,
    LUT_ENTRY_BYTES,
    POST_PARAM_BYTES_PER_CHANNEL,
    encoding_bits,
    encoding_is_fp,
)
from qasic.quant.blockscale import MAX_SHIFT, SCALE_BYTE_BITS

CATEGORIES = ("mac", "sram", "dram", "other")


@dataclass(frozen=True)
class EnergyTable:
    rows: dict  # name -> {"value", "unit", "source"}

    def __getitem__(self, name: str) -> float:
        return float(self.rows[name]["value"])

    def cited(self) -> list[dict]:
        return [{"name": k, **v} for k, v in self.rows.items()]


REQUIRED = ("mac_mult_pj_per_bit2", "mac_add_pj_per_bit", "mac_reg_pj_per_bit",
            "sram_pj_per_bit_8kib", "sram_size_exponent", "dram_pj_per_bit", "int32_mult_pj",
            "int32_add_pj", "logic_scale_from_45nm")


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
        a = self.arch
        if ins.op in ("LOAD", "STORE"):
            bits = 8 * ins["rows"] * ins["row_bytes"]
            e["dram"] = bits * self.table["dram_pj_per_bit"]
            e["sram"] = bits * self.sram_bit[ins["mem"]]
        elif ins.op == "GEMM":
            t, k, n, wb = ins["rows"], ins["k"], ins["n"], ins["wbits"]
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
        elif ins.op == "POST":
            elems = ins["rows"] * ins["n"]
            obits = encoding_bits(ins["ofmt"])
            e["sram"] = (elems * (a.acc_bits * self.sram_bit["acc"]
                                  + obits * self.sram_bit["output"])
                         + ins["n"] * 8 * POST_PARAM_BYTES_PER_CHANNEL * self.sram_bit["param"])
            adds = 3 + encoding_is_fp(ins["ofmt"])  # FP8 output: one more step to round
            e["other"] = elems * (self.table["int32_mult_pj"] + adds * self.table["int32_add_pj"]) \
                * self.logic
        elif ins.op == "POOL":
            oh = (ins["h"] - ins["kernel"]) // ins["stride"] + 1
            ow = (ins["w"] - ins["kernel"]) // ins["stride"] + 1
            reads = ins["h"] * ins["w"] * ins["c"]
            e["sram"] = encoding_bits(ins["fmt"]) * (reads + oh * ow * ins["c"]) \
                * self.sram_bit["output"]
            compares = oh * ow * ins["c"] * ins["kernel"] ** 2
            e["other"] = compares * 8 * self.table["mac_add_pj_per_bit"] * self.logic
        elif ins.op == "ADD":
            n = ins["count"]
            e["sram"] = 3 * encoding_bits(ins["fmt"]) * n * self.sram_bit["output"]
            e["other"] = n * 3 * (self.table["int32_mult_pj"] + self.table["int32_add_pj"]) \
                * self.logic
        return e


def _sram_sizes(arch: ArchConfig) -> dict[str, int]:
    return {"input": arch.input_sram_bytes, "weight": arch.weight_sram_bytes,
            "acc": arch.acc_sram_bytes, "output": arch.output_sram_bytes,
            "param": arch.param_sram_bytes}
