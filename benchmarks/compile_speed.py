"""Compiler speed with Python's cyclic garbage collector on and held off, in one run (ratios
measured side by side on the same machine; never wall-time asserts).

    python -m benchmarks.compile_speed --out out/bench [--layers 2] [--only vit_b16,bert_base]

The transformers of benchmarks.full_size (their default widths and inputs: ViT-B/16 on two
224 x 224 images, BERT-base on two sequences of 128 tokens) cut to ``--layers`` encoder layers,
quantized W8A8 once; then compiled for the default arch ``--repeats`` times in each mode,
alternating: ``held`` is compile_graph as shipped (compiler.collector holds the collector off),
``on`` is compile_graph.__wrapped__ with the collector on (the compiler before). Writes
compile_speed.json:
  records  per case: layers, instructions, CPU and wall seconds of each mode (the best of the
           repeats: CPU time is what the shared machine's load disturbs least), CPU
           microseconds per instruction, the speedup (on / held, CPU), the full collections the
           'on' compile ran, and whether both modes emitted the same program bytes
  summary  each case's speedup, and ViT's compile CPU time and instruction count over BERT's
           in each mode (one ratio as the other: the compiler is linear in instructions)
  load_average  the machine's 1-minute load before and after (it is shared: noisy numbers)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

SCHEMA = "compile_speed/1"
CASES = ("vit_b16", "bert_base")
MODES = ("on", "held")


def _graph(case: str, layers: int):
    from benchmarks.full_size import BUILDERS
    from qasic.evaluation import resolve_model
    from qasic.flow import quantize_model
    from qasic.quant import QuantConfig

    module, calibration, _ = BUILDERS[case]({"num_hidden_layers": layers})
    return quantize_model(resolve_model(module, calibration=calibration), QuantConfig())


def _compile(graph, arch, mode: str) -> tuple[bytes, int, float, float, int]:
    """(program bytes, instructions, CPU s, wall s, full collections) of one compile."""
    from qasic.compiler import compile_graph
    from qasic.isa.program import to_bytes

    run = compile_graph if mode == "held" else compile_graph.__wrapped__
    gc.collect()
    full0 = gc.get_stats()[2]["collections"]
    c0, t0 = time.process_time(), time.perf_counter()
    program = run(graph, arch)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    return (to_bytes(program), len(program.instrs), cpu, wall,
            gc.get_stats()[2]["collections"] - full0)


def measure(case: str, layers: int, repeats: int) -> dict:
    from qasic.arch.config import default_arch

    t0 = time.perf_counter()
    graph, arch = _graph(case, layers), default_arch()
    quantize_s = time.perf_counter() - t0
    best: dict[str, dict] = {}
    blobs = {}
    for _ in range(repeats):
        for mode in MODES:
            blob, n, cpu, wall, full = _compile(graph, arch, mode)
            blobs[mode] = blob
            if mode not in best or cpu < best[mode]["cpu_s"]:
                best[mode] = {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                              "cpu_us_per_instruction": round(cpu / n * 1e6, 2),
                              "full_collections": full}
    return {"case": case, "layers": layers, "instructions": n,
            "quantize_s": round(quantize_s, 1), **{m: best[m] for m in MODES},
            "speedup_cpu": round(best["on"]["cpu_s"] / best["held"]["cpu_s"], 2),
            "same_program": blobs["on"] == blobs["held"]}


def summary(records: list[dict]) -> dict:
    out: dict = {"speedup_cpu": {r["case"]: r["speedup_cpu"] for r in records},
                 "same_program": all(r["same_program"] for r in records)}
    by = {r["case"]: r for r in records}
    if set(CASES) <= set(by):
        vit, bert = by["vit_b16"], by["bert_base"]
        out["vit_over_bert"] = {
            "instructions": round(vit["instructions"] / bert["instructions"], 2),
            **{f"cpu_{m}": round(vit[m]["cpu_s"] / bert[m]["cpu_s"], 2) for m in MODES}}
    return out


def _commit() -> str | None:
    from benchmarks.full_size import _commit as commit

    return commit()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compile_speed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="directory for compile_speed.json")
    ap.add_argument("--only", help=f"comma-separated cases of {', '.join(CASES)}")
    ap.add_argument("--layers", type=int, default=2, help="encoder layers (12: full size)")
    ap.add_argument("--repeats", type=int, default=2, help="compiles per mode (best counts)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(CASES)
    bad = [n for n in names if n not in CASES]
    if bad:
        ap.error(f"unknown case {bad[0]!r}; cases: {', '.join(CASES)}")
    if args.layers < 1 or args.repeats < 1:
        ap.error("--layers and --repeats must be at least 1")
    load0 = os.getloadavg()[0]
    records = []
    for name in names:
        records.append(measure(name, args.layers, args.repeats))
        print(json.dumps(records[-1]), file=sys.stderr, flush=True)
    out = {"schema": SCHEMA, "commit": _commit(), "records": records,
           "summary": summary(records),
           "load_average": {"before": load0, "after": os.getloadavg()[0]}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "compile_speed.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if out["summary"]["same_program"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
