"""Silicon area of a design point at 45 nm: a fast analytical model calibrated on Yosys.

    area = array + control     (logic: NAND2 equivalents x 0.798 µm², NanGate 45 nm)
         + scratchpads         (SRAM macros: qasic.rtl.sram_area, OpenRAM FreePDK45)

* **array**: the PE grid, as NAND2 equivalents of its structure (``features``): for plain
  integer PEs Yosys merges ``psum + a * w`` into one multiply-accumulate whose partial products
  are sign-extended to the accumulator, plus the accumulators, operand registers and the first
  row's multipliers; shift-add PEs (``qasic.arch.pe``) a barrel shifter into the accumulator.
* **control**: the core's logic around the grid, per output column: block scaling of the sums
  and the de-skew registers. (The fold sequencer, a few dozen gates, is below the fit's noise.)
* **scratchpads**: the five scratchpads of the arch (two halves each) and the core's three tile
  buffers (weights, inputs, outputs), all SRAM macros by bank size.

The coefficients (NAND2 equivalents per unit of each feature) are fitted by non-negative least
squares on relative error to Yosys syntheses of the systolic core (``python -m qasic.rtl.area
--fit`` writes ``area_fit.json`` next to this file, with every configuration's Yosys and model
gate counts). The units around the core (fetch, queues, DMA, post-processing and vector units,
rtl/top.py) are not in the model yet and add no area. docs/area.md has the sources and the fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from qasic.arch.config import ArchConfig, default_arch
from qasic.errors import ConfigError
from qasic.rtl.cells import NAND2_UM2
from qasic.rtl.sram_area import macro_um2, scratchpad_um2

FIT_PATH = Path(__file__).with_name("area_fit.json")
# Plain integer PEs and shift-add PEs have their own coefficients (Yosys builds them apart).
ARRAY_FEATURES = ("macc", "pe_add", "pe_operands", "row0_products", "sa_pe_add", "sa_shifter")
CONTROL_FEATURES = ("column", "sa_column")
FEATURES = ARRAY_FEATURES + CONTROL_FEATURES
UM2_PER_MM2 = 1e6
# The tile buffers' depth: at least 2 rows (qasic.rtl.sequencer.buffer_depth).
MIN_BUFFER_ROWS = 2

# Calibration syntheses: arch fields over the default with gemm_max_rows = 16 (the CI arrays).
CALIBRATION: tuple[Mapping[str, int], ...] = tuple(MappingProxyType(c) for c in (
    *({"array_rows": r, "array_cols": c, "input_bits": 8, "weight_bits": 8}
      for r, c in ((2, 2), (2, 4), (4, 4), (8, 4))),
    *({"array_rows": r, "array_cols": c, "input_bits": 4, "weight_bits": 4}
      for r, c in ((2, 2), (4, 4), (8, 4))),
    *({"array_rows": r, "array_cols": c, "input_bits": 8, "weight_bits": 4}
      for r, c in ((4, 4), (8, 4))),
    {"array_rows": 2, "array_cols": 2, "input_bits": 8, "weight_bits": 2},
    *({"array_rows": r, "array_cols": c, "input_bits": 5, "input_shift_bits": 4,
       "weight_bits": 5, "weight_shift_bits": 4, "acc_bits": 44}
      for r, c in ((2, 2), (2, 4), (4, 4))),
    *({"array_rows": r, "array_cols": c, "input_bits": 8, "weight_bits": 5,
       "weight_shift_bits": 3, "acc_bits": 40} for r, c in ((2, 2), (4, 4))),
))
CALIBRATION_MAX_ROWS = 16


def calibration_arch(overrides: Mapping[str, int]) -> ArchConfig:
    """The default arch with ``overrides`` and the CI tile-buffer depth."""
    return replace(default_arch(), gemm_max_rows=CALIBRATION_MAX_ROWS, **dict(overrides))


def features(arch: ArchConfig) -> dict[str, float]:
    """Structure counts of the systolic core ``arch`` builds (units of each coefficient).

    Plain PEs (no shift bits): ``macc``, the multiply-accumulate of the R-1 rows that add into
    a partial sum (Yosys sign-extends each partial-product row to the accumulator: acc_bits x
    the narrower operand per PE); ``pe_add``, their accumulator bits (adder and partial-sum
    register); ``pe_operands``, every PE's operand bits (registers, preload mux);
    ``row0_products``, the first row's multipliers, whose partial sum is 0 (a x w bits per
    column); ``column``, per output column: the block-scaling multiplier and shifter and the
    de-skew registers (acc_bits each). Shift-add PEs: ``sa_pe_add`` as ``pe_add``,
    ``sa_shifter`` the barrel shifter into the accumulator (acc_bits x its mux stages per PE),
    ``sa_column`` as ``column``.
    """
    r, c, acc = arch.array_rows, arch.array_cols, arch.acc_bits
    a, w, sa, sw = arch.input_bits, arch.weight_bits, arch.input_shift_bits, arch.weight_shift_bits
    stages = ((1 << sa) - 1 + (1 << sw) - 1).bit_length()  # barrel shifter's mux stages
    plain = {"macc": (r - 1) * c * acc * min(a, w), "pe_add": (r - 1) * c * acc,
             "pe_operands": r * c * (a + w), "row0_products": c * a * w, "column": c * acc}
    shift_add = {"sa_pe_add": (r - 1) * c * acc, "sa_shifter": r * c * acc * stages,
                 "sa_column": c * acc}
    kind, other = (shift_add, plain) if sa or sw else (plain, shift_add)
    return {**kind, **dict.fromkeys(other, 0)}


def tile_buffer_bits(arch: ArchConfig) -> dict[str, int]:
    """Bits of the core's tile buffers (its ``Memory`` instances), as ``SystolicCore`` builds
    them: R weight rows of C weights, M input rows of R activations, M output rows of C sums."""
    r, c, m = arch.array_rows, arch.array_cols, arch.gemm_max_rows
    a_bits = arch.input_bits + arch.input_shift_bits
    w_bits = arch.weight_bits + arch.weight_shift_bits
    w_rows, io_rows = max(r, MIN_BUFFER_ROWS), max(m, MIN_BUFFER_ROWS)
    return {"weight_buf": w_rows * c * w_bits, "input_buf": io_rows * r * a_bits,
            "output_buf": io_rows * c * arch.acc_bits}


@dataclass(frozen=True)
class AreaFit:
    """Coefficients in NAND2 equivalents per unit of each feature, and where they came from."""

    coefficients: Mapping[str, float]
    source: str

    def __post_init__(self) -> None:
        missing = [f for f in FEATURES if f not in self.coefficients]
        bad = [f for f, v in self.coefficients.items()
               if not isinstance(v, int | float) or v < 0]
        if missing or bad:
            what = f"lacks {missing[0]}" if missing else f"has {bad[0]} < 0 or not a number"
            raise ConfigError(f"area fit {self.source} {what}; rerun "
                              "`python -m qasic.rtl.area --fit` to write it")
        object.__setattr__(self, "coefficients", MappingProxyType(dict(self.coefficients)))

    def gates(self, arch: ArchConfig, names: tuple[str, ...] = FEATURES) -> float:
        f = features(arch)
        return sum(self.coefficients[n] * f[n] for n in names)


@lru_cache(maxsize=4)
def load_fit(path: Path = FIT_PATH) -> AreaFit:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"area fit {path} cannot be read ({e}); rerun "
                          "`python -m qasic.rtl.area --fit` to write it") from None
    return AreaFit(doc.get("coefficients", {}), str(path))


@dataclass(frozen=True)
class Area:
    """Area of one design point in mm², by part."""

    array_mm2: float
    control_mm2: float
    scratchpads_mm2: float

    def __post_init__(self) -> None:
        for name in ("array_mm2", "control_mm2", "scratchpads_mm2"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Area.{name} = {getattr(self, name)} must be >= 0 mm²")

    @property
    def logic_mm2(self) -> float:
        return self.array_mm2 + self.control_mm2

    @property
    def sram_mm2(self) -> float:
        return self.scratchpads_mm2

    @property
    def total_mm2(self) -> float:
        return self.array_mm2 + self.control_mm2 + self.scratchpads_mm2

    def to_dict(self) -> dict[str, float]:
        """The results.json record: the three parts and their total, in mm²."""
        return {"array": self.array_mm2, "scratchpads": self.scratchpads_mm2,
                "control": self.control_mm2, "total": self.total_mm2}


def area(arch: ArchConfig, fit: AreaFit | None = None) -> Area:
    """The analytical area of ``arch`` (no synthesis; microseconds)."""
    fit = fit or load_fit()
    sram_um2 = sum(scratchpad_um2(arch).values()) + sum(
        macro_um2(bits) for bits in tile_buffer_bits(arch).values())
    return Area(array_mm2=fit.gates(arch, ARRAY_FEATURES) * NAND2_UM2 / UM2_PER_MM2,
                control_mm2=fit.gates(arch, CONTROL_FEATURES) * NAND2_UM2 / UM2_PER_MM2,
                scratchpads_mm2=sram_um2 / UM2_PER_MM2)


def core_um2(arch: ArchConfig, fit: AreaFit | None = None) -> dict[str, float]:
    """The model's systolic core alone (what Yosys synthesizes): logic and tile-buffer µm²."""
    fit = fit or load_fit()
    return {"logic_um2": fit.gates(arch) * NAND2_UM2,
            "sram_um2": sum(macro_um2(b) for b in tile_buffer_bits(arch).values())}


def synthesized_core(arch: ArchConfig) -> dict[str, float]:
    """Yosys's systolic core for ``arch``: NAND2 equivalents, logic and tile-buffer µm²."""
    from qasic.rtl.synth import synthesize
    from qasic.rtl.systolic import SystolicCore

    s = synthesize(SystolicCore(arch), "core")
    return {"gates": s.gates, "logic_um2": s.logic_um2, "sram_um2": s.sram_um2,
            "memory_bits": s.memory_bits, "seconds": s.seconds}


def fit(configs=CALIBRATION, progress=print) -> dict:
    """Synthesize ``configs``, fit the coefficients; the area_fit.json document."""
    import numpy as np
    from scipy.optimize import nnls

    rows = []
    for overrides in configs:
        arch = calibration_arch(overrides)
        got = synthesized_core(arch)
        rows.append((dict(overrides), features(arch), got))
        progress(f"{_label(overrides)}: {got['gates']:.0f} NAND2 eq. ({got['seconds']:.1f} s)")
    x = np.array([[f[n] for n in FEATURES] for _, f, _ in rows], dtype=float)
    y = np.array([got["gates"] for _, _, got in rows])
    coef, _ = nnls(x / y[:, None], np.ones(len(y)))  # least squares on the relative error
    coefficients = {n: round(float(v), 4) for n, v in zip(FEATURES, coef, strict=True)}
    table = [{"config": c, "yosys_gates": round(got["gates"], 1),
              "model_gates": round(float(sum(coefficients[n] * f[n] for n in FEATURES)), 1)}
             for c, f, got in rows]
    for row in table:
        row["error"] = round(row["model_gates"] / row["yosys_gates"] - 1, 4)
    return {"coefficients": coefficients,
            "unit": "NAND2 equivalents (NanGate 45 nm NAND2_X1 = 0.798 um2) per feature unit",
            "method": "non-negative least squares of relative error over Yosys syntheses of "
                      "SystolicCore (qasic.rtl.synth), gemm_max_rows = 16, default arch "
                      "otherwise; written by `python -m qasic.rtl.area --fit`",
            "max_abs_error": max(abs(r["error"]) for r in table), "configs": table}


def _label(overrides: Mapping[str, int]) -> str:
    o = overrides
    a = f"{o.get('input_bits', 8)}" + (f"s{o['input_shift_bits']}" if o.get("input_shift_bits")
                                       else "")
    w = f"{o.get('weight_bits', 8)}" + (f"s{o['weight_shift_bits']}"
                                        if o.get("weight_shift_bits") else "")
    return f"{o['array_rows']}x{o['array_cols']} a{a} w{w} acc{o.get('acc_bits', 32)}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qasic.rtl.area", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--arch", default=None,
                        help="a built-in arch name or a TOML path (default: the default arch)")
    parser.add_argument("--synth", action="store_true",
                        help="also synthesize the arch's systolic core with Yosys and print "
                             "model and Yosys side by side (a 16x16 array takes minutes)")
    parser.add_argument("--fit", action="store_true",
                        help=f"synthesize the calibration cores and write {FIT_PATH.name}")
    parser.add_argument("--out", type=Path, default=FIT_PATH, help="where --fit writes")
    args = parser.parse_args(argv)
    if args.fit:
        doc = fit(progress=lambda m: print(m, file=sys.stderr))
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}: max |error| {doc['max_abs_error']:.1%}")
        return 0
    from qasic.arch.config import load_arch

    try:
        arch = load_arch(args.arch)
    except ConfigError as e:
        parser.exit(2, f"error: {e}\n")
    record = {"arch": arch.name, "area_mm2": area(arch).to_dict()}
    if args.synth:
        model, got = core_um2(arch), synthesized_core(arch)
        record["core_um2"] = {"model": model, "yosys": {k: got[k] for k in model}}
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
