"""Silicon area of a design point at 45 nm: a fast analytical model calibrated on Yosys.

The whole accelerator ``rtl.top.Accelerator(arch)`` builds:

    area = array + control     (logic: NAND2 equivalents x 0.798 µm², NanGate 45 nm)
         + scratchpads         (memories: qasic.rtl.sram_area, OpenRAM FreePDK45 + CACTI ports)

* **array**: the PE grid, as NAND2 equivalents of its structure (``features``): for plain
  integer PEs Yosys merges ``psum + a * w`` into one multiply-accumulate whose partial products
  are sign-extended to the accumulator, plus the accumulators, operand registers and the first
  row's multipliers; shift-add PEs (``qasic.arch.pe``) a barrel shifter into the accumulator.
* **control**: all logic outside the PE grid: the GEMM unit's (operand unpacking, skew, block
  scaling, decode table control, sequencing), both DMA units, POST, the vector, softmax and
  norm units, the instruction queues and token FIFOs, the scratchpads' port crossbars
  (``qasic.rtl.accel_area``).
* **scratchpads**: every memory: the five banked scratchpads (each bank with the ports that can
  be busy together), the queues' program memories, the GEMM decode table, the DMA FIFOs.

The coefficients (NAND2 equivalents per unit of each feature) are fitted by non-negative least
squares on relative error to Yosys syntheses: the array's to the systolic core's, the rest to
each unit's alone (``qasic.rtl.unit_fit``). ``python -m qasic.rtl.area --fit`` writes
``area_fit.json`` next to this file with every synthesis's Yosys and model gate counts.
docs/area.md has the sources and the fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType

from qasic.arch.config import ArchConfig, default_arch
from qasic.errors import ConfigError
from qasic.rtl.accel_area import memories, scratchpad_features, unit_features
from qasic.rtl.cells import NAND2_UM2
from qasic.rtl.sram_area import memory_um2

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


def tile_buffers(arch: ArchConfig) -> dict[str, tuple[int, int]]:
    """(width, depth) of the systolic core's tile buffers (1R1W ``Memory`` instances), as
    ``SystolicCore`` builds them: R weight rows of C weights, M input rows of R activations, M
    output rows of C sums. (The accelerator's GEMM unit reads the scratchpads instead.)"""
    r, c, m = arch.array_rows, arch.array_cols, arch.gemm_max_rows
    a_bits = arch.input_bits + arch.input_shift_bits
    w_bits = arch.weight_bits + arch.weight_shift_bits
    w_rows, io_rows = max(r, MIN_BUFFER_ROWS), max(m, MIN_BUFFER_ROWS)
    return {"weight_buf": (c * w_bits, w_rows), "input_buf": (r * a_bits, io_rows),
            "output_buf": (c * arch.acc_bits, io_rows)}


def tile_buffer_bits(arch: ArchConfig) -> dict[str, int]:
    return {k: w * d for k, (w, d) in tile_buffers(arch).items()}


@dataclass(frozen=True)
class AreaFit:
    """Coefficients in NAND2 equivalents per unit of each feature, and where they came from."""

    coefficients: Mapping[str, float]
    source: str
    units: Mapping[str, float] = field(default_factory=dict)  # qasic.rtl.accel_area features

    def __post_init__(self) -> None:
        from qasic.rtl.accel_area import unit_feature_names
        from qasic.rtl.unit_fit import PAD_FEATURES

        names = (*unit_feature_names(), *PAD_FEATURES)
        missing = [f for f in FEATURES if f not in self.coefficients] + [
            f for f in names if f not in self.units]
        bad = [f for f, v in (*self.coefficients.items(), *self.units.items())
               if not isinstance(v, int | float) or v < 0]
        if missing or bad:
            what = f"lacks {missing[0]}" if missing else f"has {bad[0]} < 0 or not a number"
            raise ConfigError(f"area fit {self.source} {what}; rerun "
                              "`python -m qasic.rtl.area --fit` to write it")
        object.__setattr__(self, "coefficients", MappingProxyType(dict(self.coefficients)))
        object.__setattr__(self, "units", MappingProxyType(dict(self.units)))

    def gates(self, arch: ArchConfig, names: tuple[str, ...] = FEATURES) -> float:
        f = features(arch)
        return sum(self.coefficients[n] * f[n] for n in names)

    def unit_gates(self, arch: ArchConfig) -> dict[str, float]:
        """NAND2 equivalents of each unit's logic outside the PE grid, and the scratchpads'."""
        out = {unit: sum(self.units[n] * v for n, v in f.items())
               for unit, f in unit_features(arch).items()}
        out["scratchpads"] = sum(self.units[n] * v for n, v in scratchpad_features(arch).items())
        return out


@lru_cache(maxsize=4)
def load_fit(path: Path = FIT_PATH) -> AreaFit:
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"area fit {path} cannot be read ({e}); rerun "
                          "`python -m qasic.rtl.area --fit` to write it") from None
    return AreaFit(doc.get("coefficients", {}), str(path),
                   doc.get("units", {}).get("coefficients", {}))


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
    """The analytical area of the accelerator ``arch`` builds (no synthesis: its units are
    constructed, not elaborated, to read their scratchpad ports; ~25 ms per new arch, a second
    for the first, which imports the RTL)."""
    fit = fit or load_fit()
    return Area(array_mm2=fit.gates(arch, ARRAY_FEATURES) * NAND2_UM2 / UM2_PER_MM2,
                control_mm2=sum(fit.unit_gates(arch).values()) * NAND2_UM2 / UM2_PER_MM2,
                scratchpads_mm2=sum(m.um2 for m in memories(arch)) / UM2_PER_MM2)


def breakdown(arch: ArchConfig, fit: AreaFit | None = None) -> dict[str, dict[str, float]]:
    """The area's parts in µm²: ``logic`` per unit (``array`` the PE grid, ``scratchpads``
    their crossbars), ``memories`` per memory (all banks or copies of it)."""
    fit = fit or load_fit()
    logic = {"array": fit.gates(arch, ARRAY_FEATURES), **fit.unit_gates(arch)}
    return {"logic_um2": {k: round(v * NAND2_UM2, 1) for k, v in logic.items()},
            "memories_um2": {m.name: round(m.um2, 1) for m in memories(arch)}}


def core_um2(arch: ArchConfig, fit: AreaFit | None = None) -> dict[str, float]:
    """The model's systolic core alone (what Yosys synthesizes): logic and tile-buffer µm²."""
    fit = fit or load_fit()
    return {"logic_um2": fit.gates(arch) * NAND2_UM2,
            "sram_um2": sum(memory_um2(w, d, 1, 1) for w, d in tile_buffers(arch).values())}


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


def fit_all(progress=print) -> dict:
    """The core's fit (``fit``), then every unit's and the scratchpads' (qasic.rtl.unit_fit):
    the whole area_fit.json document (tens of minutes of Yosys on a shared machine)."""
    from qasic.rtl import unit_fit as uf

    doc = fit(progress=progress)
    rows, pads = [], []
    for unit, overrides in uf.UNIT_CALIBRATION:
        got = uf.synthesize_unit(unit, uf.calibration_arch(overrides))
        rows.append({"unit": unit, "config": dict(overrides), **got})
        progress(f"{unit} {dict(overrides)}: {got['gates']:.0f} NAND2 eq. ({got['seconds']:.0f} s)")
    for overrides in uf.TEST_CONFIGS[::2]:  # the scratchpads do not depend on the PE width
        size = {k: overrides[k] for k in ("array_rows", "array_cols")}
        for got in uf.synthesize_pads(uf.calibration_arch(overrides)):
            pads.append({"config": size, **got})
            progress(f"scratchpad {got['pad']} {size}: {got['gates']:.0f} NAND2 eq.")
    return with_units(doc, rows, pads)


def with_units(doc: dict, rows: list[dict], pads: list[dict]) -> dict:
    """``doc`` (the core's fit) with the ``units`` fit and the ``accelerator`` sums."""
    from qasic.rtl import unit_fit as uf
    from qasic.rtl.accel_area import unit_feature_names

    zero = dict.fromkeys((*unit_feature_names(), *uf.PAD_FEATURES), 0.0)
    core = AreaFit(doc["coefficients"], "core fit", zero)

    def array_gates(arch: ArchConfig) -> float:
        return core.gates(arch, ARRAY_FEATURES)

    units = uf.fit_units(rows, pads, array_gates)
    full = AreaFit(doc["coefficients"], "fit", units["coefficients"])

    def logic(arch: ArchConfig) -> float:
        return array_gates(arch) + sum(full.unit_gates(arch).values())

    units["method"] = ("non-negative least squares of relative error per unit over Yosys "
                       "syntheses of each unit alone (qasic.rtl.unit_fit, Booth multipliers), "
                       "GEMM's less the PE grid's model gates; the scratchpads' crossbars over "
                       "syntheses of rtl.scratchpad.Scratchpad as rtl.top builds them")
    accel = uf.accelerator_table(units["syntheses"], logic)
    return {**doc, "units": units, "accelerator": accel,
            "accelerator_max_abs_error": max(abs(r["error"]) for r in accel)}


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
                        help=f"synthesize the calibration cores and units and write "
                             f"{FIT_PATH.name} (tens of minutes)")
    parser.add_argument("--out", type=Path, default=FIT_PATH, help="where --fit writes")
    args = parser.parse_args(argv)
    if args.fit:
        doc = fit_all(progress=lambda m: print(m, file=sys.stderr))
        args.out.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out}: max |error| core {doc['max_abs_error']:.1%}, units "
              f"{doc['units']['max_abs_error']:.1%}, accelerator "
              f"{doc['accelerator_max_abs_error']:.1%}")
        return 0
    from qasic.arch.config import load_arch

    try:
        arch = load_arch(args.arch)
    except ConfigError as e:
        parser.exit(2, f"error: {e}\n")
    record = {"arch": arch.name, "area_mm2": area(arch).to_dict(), **breakdown(arch)}
    if args.synth:
        model, got = core_um2(arch), synthesized_core(arch)
        record["core_um2"] = {"model": model, "yosys": {k: got[k] for k in model}}
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
