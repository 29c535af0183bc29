"""`qasic demo`: the default model through every layer of qasic, to a trade-off report.

Trains (or reuses) the digits CNN, quantizes it at several bit-widths, compiles and simulates each
point over the whole test split, checks the simulator against the golden reference and the RTL
against the simulator, and writes results.json, pareto.png, report.html and verilog/.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from qasic.arch.config import ArchConfig, default_arch
from qasic.flow import PointResult, Progress, arch_for, quantize_model, run_point
from qasic.sim.energy import EnergyModel

MODEL = "digits_cnn"
# (name, weight bits: uniform or per layer). W<=4 uses MSE-clipped weights (QuantConfig "auto").
POINTS: tuple[tuple[str, int | dict[str, int]], ...] = (
    ("W8A8", 8),
    ("W4A8", 4),
    ("W3A8", 3),
    ("W2A8", 2),
    ("mixed W8/4/2", {"conv1": 8, "conv2": 4, "fc": 2}),
)


def run_demo(out: Path, seed: int = 0, rtl: bool = True, arch: ArchConfig | None = None,
             progress: Progress = print) -> Path:
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    t0 = time.time()
    arch = arch or default_arch()
    out.mkdir(parents=True, exist_ok=True)
    progress(f"[1/5] model {MODEL} (seed {seed}): training or loading the cache")
    trained = get_model(MODEL, seed=seed, progress=progress)
    progress(f"      fp32 test accuracy {trained.fp32_accuracy:.2%}")
    progress(f"[2/5] {len(POINTS)} design points: quantize, compile, simulate "
             f"{len(trained.test_labels)} test samples each")
    points = []
    for name, bits in POINTS:
        graph = quantize_model(trained, QuantConfig(weight_bits=bits))
        points.append(run_point(name, graph, arch_for(graph, arch), trained.test_inputs,
                                trained.test_labels,
                                progress=lambda m: progress("      " + m)))
    chosen = choose_point(points, trained.fp32_accuracy)
    progress(f"[3/5] RTL: Verilog of {chosen.arch.name} and a Verilator check of "
             f"{chosen.name}'s GEMM tiles")
    rtl_record = _rtl(chosen, arch, out, trained, rtl)
    progress(f"      {rtl_record['summary']}")
    results = {
        "model": MODEL,
        "fp32_accuracy": trained.fp32_accuracy,
        "arch": arch.to_dict(),
        "points": [p.record() for p in points],
        "chosen_point": chosen.name,
        "chosen_rule": CHOSEN_RULE,
        "rtl": rtl_record,
        "energy_sources": EnergyModel(arch).table.cited(),
        "seed": seed,
    }
    progress("[4/5] results.json")
    (out / "results.json").write_text(json.dumps(results, indent=2))
    progress("[5/5] pareto.png and report.html")
    from qasic.reports import write_report

    paths = write_report(out / "results.json", out)
    progress(f"done in {time.time() - t0:.0f} s. Report: {paths['report_html']}")
    return paths["report_html"]


CHOSEN_RULE = ("the lowest energy per inference among the points within one accuracy point "
               "(0.01) of fp32, else the most accurate point")


def choose_point(points: list[PointResult], fp32: float) -> PointResult:
    """CHOSEN_RULE: cheapest point within one accuracy point of fp32 (else the most accurate)."""
    good = [p for p in points if p.accuracy >= fp32 - 0.01]
    if good:
        return min(good, key=lambda p: p.sim.energy_pj["total"])
    return max(points, key=lambda p: p.accuracy)


def _rtl(point: PointResult, arch: ArchConfig, out: Path, trained, run_rtl: bool) -> dict:
    """verilog/ holds the default core (as `qasic verilog` writes it); the check runs the chosen
    point's own array (its PE width) on that point's tiles."""
    from qasic.rtl.verify import capture_tiles, verify_tiles
    from qasic.rtl.verilog import generate_verilog
    from qasic.sim.run import input_codes

    files = generate_verilog(arch, out / "verilog")
    record = {"verilog": [str(f.relative_to(out)) for f in files]}
    if not run_rtl:
        return dict(record, verified=False, tiles_checked=0, cycle_error_max=0,
                    mismatches=0, method="skipped (--no-rtl)", tiles=[],
                    summary="RTL check skipped (--no-rtl)")
    codes = input_codes(point.program, trained.test_inputs[:1])
    tiles = capture_tiles(point.program, point.arch, codes)
    record.update(verify_tiles(point.arch, tiles, out / "rtl_build"))
    record["point"] = point.name
    record["arch"] = point.arch.name
    record["summary"] = (f"RTL {'verified' if record['verified'] else 'MISMATCH'}: "
                         f"{record['tiles_checked']} tiles, {record['mismatches']} mismatches, "
                         f"max cycle error {record['cycle_error_max']}")
    return record
