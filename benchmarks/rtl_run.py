"""The whole accelerator's RTL on digits_cnn's design points: bit-exact, cycle-matched, and how
fast Verilator runs it (cycles per second), in one run.

    python -m benchmarks.rtl_run --out out/bench [--array 16x16] [--samples 16]

Each point is quantized, compiled for its array, and run DRAM to DRAM on the RTL for ``samples``
test inputs (``qasic.rtl.run.rtl_run``). The points (issue "The whole accelerator in RTL"):
W8A8, W4A8 on an array fitted to its 4-bit weights, mixed 8/4/2, MXFP4 weights and FP8 E4M3
activations. Every point but the fitted one shares one build: an array whose PEs are as wide as
the widest any of them needs. ``--array 4x4`` is the size CI runs (tests/rtl/test_top.py);
16x16 runs belong here. Writes rtl_run.json: per point outputs_equal, reference_equal,
cycles_rtl, cycles_sim, cycle_error, Verilator's cycles/s and seconds, the build seconds, and
the machine's load average (it is shared: wall times are noisy, the cycle counts are not).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from functools import cache
from pathlib import Path

from qasic.arch.config import ArchConfig, default_arch
from qasic.quant import QuantConfig

MODEL = "digits_cnn"
POINTS = {
    "w8a8": QuantConfig(),
    "mixed_8_4_2": QuantConfig(weight_bits={"conv1": 8, "conv2": 4, "fc": 2}),
    "mxfp4": QuantConfig(weight_format="mxfp4"),
    "fp8_acts": QuantConfig(activation_format="fp8_e4m3"),
}
FITTED = {"w4a8_fit": QuantConfig(weight_bits=4)}  # each on an array fitted to it alone
PE_KEYS = ("weight_bits", "weight_shift_bits", "input_bits", "input_shift_bits", "acc_bits")


def small_arch(rows: int = 4, cols: int = 4) -> ArchConfig:
    """CI's array: small, with scratchpads just big enough for digits_cnn's tiles."""
    return dataclasses.replace(
        default_arch(), name=f"rtl-{rows}x{cols}", array_rows=rows, array_cols=cols,
        gemm_max_rows=16, input_sram_bytes=2048, weight_sram_bytes=2048, acc_sram_bytes=1024,
        output_sram_bytes=2048, param_sram_bytes=1024)


@cache
def trained():
    from qasic.models import get_model
    return get_model(MODEL)


@cache
def graph(point: str):
    from qasic.flow import quantize_model
    return quantize_model(trained(), {**POINTS, **FITTED}[point])


def point_arch(point: str, base: ArchConfig) -> ArchConfig:
    """A fitted point's own array; every other point's the shared one (the widest PEs)."""
    from qasic.flow import arch_for
    if point in FITTED:
        return arch_for(graph(point), base)
    fits = [arch_for(graph(p), base) for p in POINTS]
    return dataclasses.replace(base, **{k: max(getattr(a, k) for a in fits) for k in PE_KEYS})


def run_point(point: str, base: ArchConfig, samples: int, build_dir, progress=None):
    """(RtlRun, arch) of one point: compiled for its array, ``samples`` test inputs."""
    from qasic.compiler import compile_graph
    from qasic.quant import reference
    from qasic.rtl.run import rtl_run
    from qasic.sim.run import input_codes

    arch = point_arch(point, base)
    program = compile_graph(graph(point), arch)
    codes = input_codes(program, trained().test_inputs[:samples])
    return rtl_run(program, arch, codes, build_dir, reference=reference.run(graph(point), codes),
                   progress=progress), arch


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/bench")
    p.add_argument("--array", default="4x4", help="rows x cols of the array (default 4x4)")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--build-dir", help="Verilator builds (default: the qasic cache)")
    args = p.parse_args(argv)
    from qasic.rtl.run import default_build_dir

    rows, cols = (int(v) for v in args.array.lower().split("x"))
    base = small_arch(rows, cols) if (rows, cols) == (4, 4) else dataclasses.replace(
        default_arch(), name=f"default-{rows}x{cols}", array_rows=rows, array_cols=cols)
    build_dir = Path(args.build_dir) if args.build_dir else default_build_dir()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    rows_out = {}
    for point in [*POINTS, *FITTED]:
        t0 = time.perf_counter()
        result, arch = run_point(point, base, args.samples, build_dir, progress=print)
        total = time.perf_counter() - t0
        rows_out[point] = {
            "arch": arch.name, **{k: getattr(arch, k) for k in PE_KEYS},
            **result.to_json(), "rtl_seconds": result.seconds,
            "rtl_cycles_per_s": result.cycles_per_s,
            "build_and_prepare_seconds": total - result.seconds,
        }
        print(f"{point}: outputs {'equal' if result.outputs_equal else 'DIFFERENT'}, "
              f"{result.cycles_rtl} cycles (model {result.cycles_sim}), "
              f"{result.cycles_per_s:,.0f} cycles/s")
    doc = {"model": MODEL, "array": args.array, "samples": args.samples, "points": rows_out,
           "load_average": {"before": load_before, "after": os.getloadavg()[0]},
           "all_bit_exact": all(r["outputs_equal"] and r["reference_equal"]
                                for r in rows_out.values()),
           "max_cycle_error": max(r["cycle_error"] for r in rows_out.values())}
    path = out / "rtl_run.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
