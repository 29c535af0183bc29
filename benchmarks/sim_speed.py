"""Simulator speed against the golden reference and float32 BLAS, in one run (ratios measured
side by side on the same machine; never wall-time asserts).

    python -m benchmarks.sim_speed --out out/bench [--quick]

Writes sim_speed.json:
  models   every built-in model: simulator seconds (fast path; the per-instruction machine
           where it finishes in reasonable time), golden-reference seconds, numpy float32 BLAS
           seconds for the same GEMMs (m, k, n of each kernel's metadata, batched over groups),
           MACs and the ratios
  resnet50 ResNet-50 at 224x224, batch 1: the same, plus peak memory (resource.getrusage)
  scaling  resnet18 at 4 input sizes, batch 1: seconds per MAC of the simulator and of BLAS
Seconds are the best of ``repeats`` warm runs (the program verified, its field table, timing and
costs computed, the Numba kernels compiled); the one-time per-program work is reported apart
(``verify_seconds``, ``first_run_seconds``).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import tracemalloc
from pathlib import Path

import numpy as np

SMALL = ("digits_cnn", "digits_mlp", "mnist_cnn", "mnist_deep")
IMAGENET = ("resnet18@64", "mobilenet_v2@96", "resnet50@64")
TEXT = ("tiny_gpt", "minilm")
SCALING = ("resnet18@64", "resnet18@96", "resnet18@128", "resnet18@160")
CALIBRATION = 16       # calibration samples: enough for a speed benchmark, light on memory
EXACT_MAX_INSTRS = 2e5  # instructions x batch past which the per-instruction machine is skipped


def build(name: str):
    """(graph, program, arch, trained model) of a built-in model at INT8, default arch."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.models import get_model
    from qasic.quant import QuantConfig, quantize

    t = get_model(name)
    g = quantize(t.module, (t.example_input,), t.calibration[:CALIBRATION], QuantConfig(),
                 name=t.name)
    arch = default_arch()
    return g, compile_graph(g, arch), arch, t


def measure(name: str, batch: int, repeats: int = 3, exact: bool = True) -> dict:
    from qasic.isa.verify import verify
    from qasic.quant import reference
    from qasic.sim import simulate
    from qasic.sim.run import input_codes

    t0 = time.perf_counter()
    g, program, arch, trained = build(name)
    build_s = time.perf_counter() - t0
    codes = input_codes(program, trained.test_inputs[:batch])
    verify_s = _time(lambda: verify(program))
    first_s = _time(lambda: simulate(program, arch, codes=codes))
    tracemalloc.start()
    sim_s = min(_time(lambda: simulate(program, arch, codes=codes)) for _ in range(repeats))
    sim_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    ref_s = min(_time(lambda: reference.run(g, codes)) for _ in range(repeats))
    blas_s, blas_macs = blas_seconds(program, len(codes), repeats)
    macs = sum(layer["macs"] for layer in program.layers) * len(codes)
    record = {"model": name, "batch": len(codes), "instructions": len(program.instrs),
              "macs": int(macs), "build_seconds": build_s, "verify_seconds": verify_s,
              "first_run_seconds": first_s, "sim_seconds": sim_s,
              "reference_seconds": ref_s, "blas_f32_seconds": blas_s,
              "blas_macs": int(blas_macs), "sim_macs_per_s": macs / sim_s,
              "sim_over_blas": sim_s / blas_s, "reference_over_sim": ref_s / sim_s,
              "sim_numpy_peak_bytes": sim_peak}
    if exact and len(program.instrs) * len(codes) <= EXACT_MAX_INSTRS:
        exact_s = _time(lambda: simulate(program, arch, codes=codes, mode="exact"))
        record |= {"exact_seconds": exact_s, "fast_speedup_over_exact": exact_s / sim_s}
    return record


def blas_seconds(program, batch: int, repeats: int) -> tuple[float, int]:
    """Seconds numpy float32 matmul takes for every GEMM kernel's (m * batch, k, n), grouped
    convolutions as one batched matmul over their groups; and the MACs it did."""
    rng = np.random.default_rng(0)
    shapes = [(layer.get("groups", 1), layer["m"] * batch, layer["k"], layer["n"])
              for layer in program.layers if layer.get("m") and layer.get("k")]
    ops = [(rng.standard_normal((g, m, k), dtype=np.float32),
            rng.standard_normal((g, k, max(n // g, 1)), dtype=np.float32))
           for g, m, k, n in shapes]
    macs = sum(a.size * b.shape[-1] for a, b in ops)

    def run():
        for a, b in ops:
            np.matmul(a, b)
    run()
    return min(_time(run) for _ in range(repeats)), macs


def scaling(names=SCALING, repeats: int = 2) -> dict:
    rows = [measure(n, 1, repeats, exact=False) for n in names]
    per_mac = [r["sim_seconds"] / r["macs"] for r in rows]
    macs = np.array([r["macs"] for r in rows], dtype=float)
    secs = np.array([r["sim_seconds"] for r in rows])
    slope, intercept = np.polyfit(macs, secs, 1)
    fit = slope * macs + intercept
    r2 = 1 - float(((secs - fit) ** 2).sum() / ((secs - secs.mean()) ** 2).sum())
    return {"rows": rows, "sim_seconds_per_mac": per_mac,
            "per_mac_max_over_min": max(per_mac) / min(per_mac),
            "linear_fit": {"seconds_per_mac": slope, "seconds_at_zero": intercept, "r2": r2}}


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def run(quick: bool = False) -> dict:
    out: dict = {}
    r50 = measure("resnet50", 1, repeats=1 if quick else 2, exact=False)
    r50["peak_rss_bytes"] = _peak_rss_bytes()  # the whole process so far: build included
    r50["targets"] = {"sim_within_10x_blas": r50["sim_over_blas"] <= 10,
                      "peak_memory_within_4_GiB": r50["peak_rss_bytes"] <= 4 << 30}
    out["resnet50"] = r50
    models = SMALL[:1] if quick else SMALL + IMAGENET + TEXT
    out["models"] = []
    for name in models:
        batch = 256 if name in SMALL else 2
        try:
            out["models"].append(measure(name, batch, repeats=1 if quick else 3))
        except Exception as e:  # noqa: BLE001 - a model that cannot compile is reported
            out["models"].append({"model": name, "error": f"{type(e).__name__}: {e}"})
    out["scaling"] = scaling(SCALING[:2] if quick else SCALING)
    out["peak_rss_bytes"] = _peak_rss_bytes()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out/bench")
    p.add_argument("--quick", action="store_true", help="fewer models and repeats")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = run(args.quick)
    (out / "sim_speed.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
