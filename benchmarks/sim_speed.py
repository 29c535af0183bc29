"""Simulator speed against the golden reference and float32 BLAS, in one run (ratios measured
side by side on the same machine; never wall-time asserts).

    python -m benchmarks.sim_speed --out out/bench [--quick]

Writes sim_speed.json:
  models   every built-in model at the batches of BATCHES: simulator seconds (fast path; the
           per-instruction machine where it finishes in reasonable time), golden-reference
           seconds, numpy float32 BLAS seconds for the same GEMMs (m, k, n of each kernel's
           metadata, batched over groups), MACs and the ratios
  resnet50 ResNet-50 at 224x224, batch 1: the same, plus peak memory (resource.getrusage)
  scaling  resnet18 at 4 input sizes, batch 1: seconds per MAC of the simulator and of BLAS,
           and the exponent of time in MACs (the log-log slope: 1 is linear)
  summary  the slowest simulator/reference ratio, the targets met
  load_average  the machine's 1-minute load before and after (it is shared: noisy numbers)
Seconds are the best of ``repeats`` blocks of warm runs (BLOCK each), simulator, reference and
BLAS alternating (the program verified, its field table, timing and costs computed, the Numba
kernels compiled, a machine of that batch kept; one repeat past LONG_RUN, which then also runs
one of each per block); the one-time per-program work is reported apart (``verify_seconds``,
``first_run_seconds``). Each model runs in its own process;
ResNet-50's simulator-only peak memory and cold time come from a process that loads just its
program.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

SMALL = ("digits_cnn", "digits_mlp", "mnist_cnn", "mnist_deep")
IMAGENET = ("resnet18@64", "mobilenet_v2@96", "resnet50@64")
TEXT = ("tiny_gpt", "minilm")
SCALING = ("resnet18@64", "resnet18@96", "resnet18@128", "resnet18@160")
# batches each model runs at: 1, a small batch and (where a run takes seconds) a large one
BATCHES = {**{name: (1, 16, 256) for name in SMALL}, "tiny_gpt": (1, 16, 256),
           **{name: (1, 16) for name in IMAGENET + ("minilm",)}}
CALIBRATION = 16       # calibration samples: enough for a speed benchmark, light on memory
EXACT_MAX_INSTRS = 2e5  # instructions x batch past which the per-instruction machine is skipped
LONG_RUN = 1e6         # instructions x batch past which one repeat is timed (tiny_gpt at 256)
BLAS_REPEATS = 3        # BLAS runs per repeat (the best counts: it is short and noisy)
# Simulator and reference runs per repeat, each kind in a block of its own: after a multi-
# threaded BLAS call OpenBLAS's worker threads spin for a while, and on a 2-core machine with
# other jobs they took the core of the next run (the simulator's is single-threaded: strictly
# interleaved, it measured 25 % slower than alone); the best of a block is the steady state.
BLOCK = 3


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


def measure(name: str, batches: tuple[int, ...], repeats: int = 3, exact: bool = True,
            save: str | None = None) -> list[dict]:
    """One record per batch size (the model built and its program verified once)."""
    from qasic.isa.verify import verify

    t0 = time.perf_counter()
    g, program, arch, trained = build(name)
    build_s = time.perf_counter() - t0
    verify_s = _time(lambda: verify(program))
    return [measure_batch(name, g, program, arch, trained, batch, repeats, exact, save)
            | {"build_seconds": build_s, "verify_seconds": verify_s} for batch in batches]


def measure_batch(name: str, g, program, arch, trained, batch: int, repeats: int, exact: bool,
                  save: str | None) -> dict:
    from qasic.quant import reference
    from qasic.sim import simulate
    from qasic.sim.run import input_codes

    codes = input_codes(program, trained.test_inputs[:batch])
    if save:
        save_inputs(save, program, arch, codes)
    got: dict = {}
    block = BLOCK
    if len(program.instrs) * len(codes) > LONG_RUN:
        repeats = block = 1
    first_s = _time(lambda: got.setdefault("fast", simulate(program, arch, codes=codes)))
    blas = blas_runner(program, len(codes))
    times: dict[str, list[float]] = {"sim": [], "ref": [], "blas": []}
    for _ in range(repeats):  # alternating blocks: a change in the machine's load hits all three
        times["sim"] += [_time(lambda: simulate(program, arch, codes=codes))
                         for _ in range(block)]
        times["ref"] += [_time(lambda: got.setdefault("ref", reference.run(g, codes)))
                         for _ in range(block)]
        times["blas"].append(min(_time(blas) for _ in range(BLAS_REPEATS)))
    tracemalloc.start()  # apart from the timed runs: tracing slows every allocation
    simulate(program, arch, codes=codes)
    sim_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    sim_s, ref_s, blas_s = (min(times[k]) for k in ("sim", "ref", "blas"))
    blas_macs = blas.macs
    macs = sum(layer["macs"] for layer in program.layers) * len(codes)
    record = {"model": name, "batch": len(codes), "instructions": len(program.instrs),
              "macs": int(macs), "first_run_seconds": first_s, "sim_seconds": sim_s,
              "reference_seconds": ref_s, "blas_f32_seconds": blas_s,
              "blas_macs": int(blas_macs), "sim_macs_per_s": macs / sim_s,
              "sim_over_blas": sim_s / blas_s, "reference_over_sim": ref_s / sim_s,
              "sim_numpy_peak_bytes": sim_peak, "load_average": os.getloadavg()[0],
              "bit_exact_reference": bool(np.array_equal(got["fast"].outputs, got["ref"]))}
    if exact and len(program.instrs) * len(codes) <= EXACT_MAX_INSTRS:
        exact_s = _time(lambda: got.setdefault(
            "exact", simulate(program, arch, codes=codes, mode="exact")))
        record |= {"exact_seconds": exact_s, "fast_speedup_over_exact": exact_s / sim_s,
                   "bit_exact_exact_mode": bool(np.array_equal(got["fast"].outputs,
                                                               got["exact"].outputs))}
    return record


def blas_runner(program, batch: int):
    """A function running numpy float32 matmul on every GEMM kernel's (m * batch, k, n),
    grouped convolutions as one batched matmul over their groups; ``.macs``: the MACs it
    does."""
    rng = np.random.default_rng(0)
    shapes = [(layer.get("groups", 1), layer["m"] * batch, layer["k"], layer["n"])
              for layer in program.layers if layer.get("m") and layer.get("k")]
    ops = [(rng.standard_normal((g, m, k), dtype=np.float32),
            rng.standard_normal((g, k, max(n // g, 1)), dtype=np.float32))
           for g, m, k, n in shapes]

    def run():
        for a, b in ops:
            np.matmul(a, b)
    run()
    run.macs = sum(a.size * b.shape[-1] for a, b in ops)
    return run


def scaling(names=SCALING, repeats: int = 2) -> dict:
    rows = [child(n, 1, repeats, exact=False) for n in names]
    if any("error" in r for r in rows):
        return {"rows": rows}
    per_mac = [r["sim_seconds"] / r["macs"] for r in rows]
    macs = np.array([r["macs"] for r in rows], dtype=float)
    secs = np.array([r["sim_seconds"] for r in rows])
    slope, intercept = np.polyfit(macs, secs, 1)
    fit = slope * macs + intercept
    r2 = 1 - float(((secs - fit) ** 2).sum() / ((secs - secs.mean()) ** 2).sum())
    return {"rows": rows, "sim_seconds_per_mac": per_mac,
            "per_mac_max_over_min": max(per_mac) / min(per_mac),
            "linear_fit": {"seconds_per_mac": slope, "seconds_at_zero": intercept, "r2": r2},
            "power_law": power_law(macs, secs),
            "reference_power_law": power_law(macs, [r["reference_seconds"] for r in rows])}


def power_law(macs, seconds) -> dict:
    """seconds = c * MACs^exponent fitted in log-log (least squares): exponent 1 is cost linear
    in MACs, below 1 a fixed cost still shows, above 1 something grows faster. Keeps the
    points it was fitted on."""
    x, y = np.log(np.asarray(macs, dtype=float)), np.log(np.asarray(seconds, dtype=float))
    exponent, log_c = np.polyfit(x, y, 1)
    points = [{"macs": int(m), "seconds": float(t)} for m, t in zip(macs, seconds, strict=True)]
    return {"exponent": float(exponent),
            "seconds_at_1_gmac": float(np.exp(log_c) * 1e9 ** exponent), "points": points}


def _commit() -> str | None:
    """The git commit of the code measured (None outside a checkout)."""
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                          check=False, capture_output=True, text=True)
    return done.stdout.strip() or None


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _peak_rss_bytes() -> int:
    """This process's peak resident memory: VmHWM (Linux; reset by exec, unlike ru_maxrss,
    which a child inherits from its parent), else ru_maxrss."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child(name: str, batch: int, repeats: int, exact: bool = True,
          save: str | None = None) -> dict:
    """``measure`` of one batch size in a fresh process (see ``children``)."""
    return children(name, (batch,), repeats, exact, save)[0]


def children(name: str, batches: tuple[int, ...], repeats: int, exact: bool = True,
             save: str | None = None) -> list[dict]:
    """``measure`` in a fresh process (its own peak memory; a failure is a reported error, one
    per batch). With ``save``, the child also writes its program and input codes to that
    folder."""
    cmd = [sys.executable, "-m", "benchmarks.sim_speed", "--model", name, "--batch",
           ",".join(map(str, batches)), "--repeats", str(repeats)] \
        + ([] if exact else ["--no-exact"]) + (["--save", save] if save else [])
    done = subprocess.run(cmd, check=False, capture_output=True, text=True)
    if done.returncode:
        tail = (done.stderr.strip().splitlines() or ["killed"])[-1]
        return [{"model": name, "batch": b, "error": f"exit {done.returncode}: {tail}"}
                for b in batches]
    return json.loads(done.stdout)


def save_inputs(folder: str, program, arch, codes: np.ndarray) -> None:
    from qasic.isa.program import save

    save(program, Path(folder) / "p.qasic")
    with (Path(folder) / "in.pkl").open("wb") as f:
        pickle.dump((arch, codes), f)


def simulate_saved(folder: str) -> dict:
    """Load a saved program and its codes, verify and simulate them once: the simulator's own
    cold time and peak memory (a process holding nothing else)."""
    from qasic.isa.program import load
    from qasic.sim import simulate

    t = time.perf_counter()
    program = load(Path(folder) / "p.qasic")
    with (Path(folder) / "in.pkl").open("rb") as f:
        arch, codes = pickle.load(f)
    simulate(program, arch, codes=codes)
    return {"cold_seconds_load_verify_simulate": time.perf_counter() - t,
            "peak_rss_bytes": _peak_rss_bytes()}


def run(quick: bool = False) -> dict:
    repeats = 1 if quick else 3
    with tempfile.TemporaryDirectory() as tmp:
        r50 = child("resnet50", 1, 1 if quick else 2, exact=False, save=tmp)
        if "error" not in r50:
            done = subprocess.run([sys.executable, "-m", "benchmarks.sim_speed", "--saved", tmp],
                                  check=False, capture_output=True, text=True)
            if done.returncode:  # reported, like a child's failure; the rest still runs
                tail = (done.stderr.strip().splitlines() or ["killed"])[-1]
                r50["simulator_only"] = {"error": f"exit {done.returncode}: {tail}"}
            else:
                r50["simulator_only"] = json.loads(done.stdout)
            peak = r50["simulator_only"].get("peak_rss_bytes")
            r50["targets"] = {
                "sim_within_10x_blas": r50["sim_over_blas"] <= 10,
                "sim_faster_than_reference": r50["reference_over_sim"] >= 1,
                "peak_memory_within_4_GiB": None if peak is None else peak <= 4 << 30}
    out: dict = {"commit": _commit(), "load_average": {"before": os.getloadavg()[0]},
                 "resnet50": r50, "models": []}
    for name in SMALL[:1] if quick else SMALL + IMAGENET + TEXT:
        out["models"] += children(name, BATCHES[name], repeats)
    out["scaling"] = scaling(SCALING[:2] if quick else SCALING, 1 if quick else 2)
    out["load_average"]["after"] = os.getloadavg()[0]
    out["summary"] = summary(out)
    return out


def summary(out: dict) -> dict:
    """The slowest simulator against the reference over every model and batch, and the
    targets of the issue measured here."""
    rows = [r for r in out["models"] if "error" not in r]
    slowest = min(rows, key=lambda r: r["reference_over_sim"])
    law = out["scaling"].get("power_law", {})
    return {"slowest_reference_over_sim": {k: slowest[k] for k in
                                           ("model", "batch", "reference_over_sim")},
            "every_model_at_least_reference_speed":
                all(r["reference_over_sim"] >= 1 for r in rows) and len(rows) == len(
                    out["models"]),
            "scaling_exponent": law.get("exponent"),
            "errors": [r for r in out["models"] if "error" in r]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out/bench")
    p.add_argument("--quick", action="store_true", help="fewer models and repeats")
    p.add_argument("--model", help="measure one model and print its record (a child run)")
    p.add_argument("--batch", default="1", help="batch sizes, comma-separated")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--no-exact", action="store_true")
    p.add_argument("--save", help=argparse.SUPPRESS)   # with --model: keep program and codes
    p.add_argument("--saved", help=argparse.SUPPRESS)  # simulate_saved's folder
    args = p.parse_args()
    if args.saved:
        print(json.dumps(simulate_saved(args.saved)))
        return
    if args.model:
        batches = tuple(int(b) for b in args.batch.split(","))
        records = measure(args.model, batches, args.repeats, not args.no_exact, args.save)
        print(json.dumps([r | {"peak_rss_bytes": _peak_rss_bytes()} for r in records]))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = run(args.quick)
    (out / "sim_speed.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
