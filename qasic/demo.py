"""`qasic demo`: the default model through every layer of qasic, to a trade-off report.

Trains (or reuses) the digits CNN, quantizes it at several bit-widths, compiles and simulates each
point over the whole test split, checks the simulator against the golden reference, runs the
chosen point's whole program on its accelerator's RTL, and writes results.json, pareto.png,
report.html and verilog/ (the chosen point's Verilog).
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
    progress(f"[3/5] RTL: the Verilog of {chosen.name}'s accelerator ({chosen.arch.name}) and "
             "its whole program under Verilator (the first build takes minutes; cached)")
    rtl_record = _rtl(chosen, out, trained, rtl, progress)
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


RTL_SAMPLES = 16  # test samples the chosen point's whole program runs on the RTL


def _rtl(point: PointResult, out: Path, trained, run_rtl: bool, progress: Progress) -> dict:
    """verilog/ holds the chosen point's accelerator (its array and PE widths); the check runs
    that point's whole program on it, DRAM to DRAM, for RTL_SAMPLES test samples."""
    from qasic.rtl.run import default_build_dir, rtl_run
    from qasic.rtl.top import generate_accelerator
    from qasic.sim.run import input_codes

    progress(f"      writing the Verilog of {point.arch.name} (the whole accelerator)")
    files = generate_accelerator(point.arch, out / "verilog")
    record = {"verilog": [str(f.relative_to(out)) for f in files], "point": point.name,
              "arch": point.arch.name}
    if not run_rtl:
        return dict(record, verified=False, samples=0, outputs_equal=False, cycles_rtl=0,
                    cycles_sim=0, cycle_error=0.0, queues=[], method="skipped (--no-rtl)",
                    summary="RTL check skipped (--no-rtl)")
    from qasic.quant import reference

    codes = input_codes(point.program, trained.test_inputs[:RTL_SAMPLES])
    result = rtl_run(point.program, point.arch, codes, default_build_dir(),
                     reference=reference.run(point.graph, codes),
                     progress=lambda m: progress("      " + m))
    run = result.to_json()
    verified = result.outputs_equal and result.cycle_error <= 0.01
    record.update(
        verified=verified, samples=result.samples, outputs_equal=result.outputs_equal,
        cycles_rtl=result.cycles_rtl, cycles_sim=result.cycles_sim,
        cycle_error=result.cycle_error, rtl_cycles_per_s=result.cycles_per_s,
        queues=[{"queue": q, "busy_rtl": v["rtl"], "busy_sim": v["sim"]}
                for q, v in run["queue_busy_cycles"].items()],
        method=(f"The whole program of {point.name} on the accelerator's Verilog (Verilator via "
                f"cocotb), DRAM to DRAM: {result.samples} test samples, the DRAM model on both "
                "AXI ports at the arch's latency and bandwidth; outputs compared bit for bit "
                "with the simulator and the golden reference, cycles from the first issue to "
                "the drain with the timing model's total."),
        summary=(f"RTL {'verified' if verified else 'MISMATCH'}: {result.samples} samples, "
                 f"outputs {'equal' if result.outputs_equal else 'DIFFERENT'}, "
                 f"{result.cycles_rtl:,} cycles (simulator {result.cycles_sim:,}, error "
                 f"{result.cycle_error:.2%})"))
    return record
