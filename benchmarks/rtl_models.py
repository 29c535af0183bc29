"""Every built-in model on the accelerator's RTL (a 4x4 array): whole programs where Verilator can
afford their cycles, a traced prefix of the rest, in one run.

    python -m benchmarks.rtl_models --out benchmarks/results [--only digits_mlp,resnet18]
        [--array 16x16 --depth 16384]

Whole runs (a program that fits the program memories and takes at most WHOLE_CYCLES; on 4x4:
digits_mlp, mnist_cnn, mnist_deep; ``qasic.rtl.run.rtl_run``, traced): RTL outputs == the
simulator's == the golden reference's on every sample, cycle_error, and the largest issue-cycle
difference of any instruction. Prefix runs (``rtl_prefix``) of the rest: at most PREFIX_CYCLES
of one sample, every instruction the RTL issued, or the timing model says it should have,
compared by issue cycle; the record says how much of the program that covers. Models are
quantized W8A8 at their smallest input: ImageNet nets at 32x32, minilm over TEXT_TOKENS tokens,
tiny_gpt's prefill of a TEXT_TOKENS prompt and its decode step (KV caches of zero codes).

Every case shares one Verilator build (``models_arch``): benchmarks.rtl_run's 4x4 array and
scratchpads with a larger accumulator scratchpad, CI's PEs, and program memories of ``--depth``
(DEPTH) instructions per queue (mnist_deep whole fits). Writes rtl_models.json (another
``--array``: rtl_models_<array>.json, the default arch's scratchpads), updated after every case
(``--only`` reruns some): per case its record, seconds and load average.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from benchmarks.rtl_run import PE_KEYS, point_arch, small_arch
from qasic.arch.config import ArchConfig, default_arch

DEPTH = 8192  # program memory per queue: mnist_deep's 6,395 compute instructions fit
TEXT_TOKENS = 8
PREFIX_CYCLES = 300_000  # per prefix run: ~1-3 minutes of traced Verilator on this machine
WHOLE_CYCLES = 1_000_000  # a program that fits the program memories runs whole up to this


@dataclass(frozen=True)
class Case:
    model: str                        # a built-in model name (name@size for ImageNet nets)
    samples: int = 1                  # of a whole run (a prefix runs one)
    program: str = "full"             # tiny_gpt: "prefill" (of TEXT_TOKENS) or "decode"


CASES = {
    "digits_mlp": Case("digits_mlp", samples=16),
    "mnist_cnn": Case("mnist_cnn", samples=2),
    "mnist_deep": Case("mnist_deep", samples=2),
    "tiny_gpt_decode": Case("tiny_gpt", program="decode"),
    "tiny_gpt_prefill": Case("tiny_gpt", program="prefill"),
    "minilm": Case("minilm"),
    "resnet18": Case("resnet18@32"),
    "resnet50": Case("resnet50@32"),
    "mobilenet_v2": Case("mobilenet_v2@32"),
}


@cache
def trained(model: str):
    """The built-in model; minilm cut to TEXT_TOKENS tokens (its graph's sequence length is the
    example input's)."""
    from qasic.models import get_model

    m = get_model(model)
    if model == "minilm":
        m = dataclasses.replace(m, example_input=m.example_input[:, :TEXT_TOKENS],
                                calibration=m.calibration[:, :TEXT_TOKENS],
                                test_inputs=m.test_inputs[:, :TEXT_TOKENS])
    return m


@cache
def quantized(model: str):
    """The model quantized W8A8 (the QuantConfig defaults) with 8-bit norm inputs and 8-bit
    embedding rows, as results/rtl_models.json was measured (the defaults were 8 then, 16
    since)."""
    from qasic.flow import quantize_model
    from qasic.quant import QuantConfig

    return quantize_model(trained(model), QuantConfig(norm_input_bits=8, embedding_bits=8))


@cache
def graph(name: str):
    """The QGraph a case compiles; tiny_gpt's cut into its prefill or decode step."""
    from qasic.quant.decode import decode_graph, prefill_graph

    case = CASES[name]
    full = quantized(case.model)
    if case.program == "prefill":
        return prefill_graph(full, TEXT_TOKENS)
    return decode_graph(full) if case.program == "decode" else full


def models_arch(rows: int = 4, cols: int = 4) -> ArchConfig:
    """The one build every case runs on: CI's 4x4 arch (its PEs cover digits_cnn's points) with
    a 2 KiB accumulator scratchpad (minilm's LayerNorm rows of 384 channels need 1,536 bytes);
    another array: the default arch's scratchpads with the PEs its digits_cnn points share."""
    if (rows, cols) == (4, 4):
        return dataclasses.replace(point_arch("w8a8", small_arch()), name="rtl-4x4-models",
                                   acc_sram_bytes=2048)
    base = dataclasses.replace(default_arch(), array_rows=rows, array_cols=cols)
    return dataclasses.replace(point_arch("w8a8", base), name=f"rtl-{rows}x{cols}-models")


def check_fits(name: str, arch: ArchConfig) -> None:
    """Refuse a case whose graph needs wider PEs than ``arch`` has."""
    from qasic.flow import arch_for

    need = arch_for(graph(name), arch)
    wider = [k for k in PE_KEYS if getattr(need, k) > getattr(arch, k)]
    if wider:
        need_s = ", ".join(f"{k} = {getattr(need, k)}" for k in wider)
        have_s = ", ".join(str(getattr(arch, k)) for k in wider)
        raise ValueError(f"case {name} needs {need_s}; the shared build has {have_s}")


def case_inputs(name: str, program) -> tuple[np.ndarray, np.ndarray]:
    """(input codes, golden reference outputs) of a case's samples."""
    from qasic.quant import reference
    from qasic.sim.run import input_codes

    case, g = CASES[name], graph(name)
    shape = tuple(program.meta["input"]["shape"])
    if case.program == "decode":  # steps (token id, position), KV caches as zero codes
        from qasic.quant.decode import positions as full_positions

        rng, positions = np.random.default_rng(0), full_positions(quantized(case.model))
        steps = np.stack([rng.integers(0, 256, case.samples),
                          rng.integers(0, positions, case.samples)], axis=1)
        codes = steps.reshape(case.samples, *shape)
        return codes, reference.run(g, steps, state={})
    x = trained(case.model).test_inputs[:case.samples]
    if case.program == "prefill":
        x = x[:, :TEXT_TOKENS]
    if g.input_layout == "tokens":
        codes = np.asarray(x).reshape(len(x), *shape)
        return codes, reference.run(g, np.asarray(x), state={})
    codes = input_codes(program, x)
    return codes, reference.run(g, codes)


def run_case(name: str, arch: ArchConfig, build_dir, depth: int = DEPTH,
             progress=None) -> dict:
    """A case's record: a traced whole run's when the program fits program memories of
    ``depth`` and takes at most WHOLE_CYCLES, else a prefix's of PREFIX_CYCLES (qasic.rtl.run)."""
    from qasic.compiler import compile_graph
    from qasic.rtl.run import rtl_prefix, rtl_run
    from qasic.sim.timing import schedule

    case = CASES[name]
    check_fits(name, arch)
    program = compile_graph(graph(name), arch)
    codes, ref = case_inputs(name, program)
    record = {"model": case.model, "program": case.program, "arch": arch.name,
              "instructions": len(program.instrs)}
    timing = schedule(program, arch)
    starts = timing.start
    whole = max(Counter(ins.queue for ins in program.instrs).values()) <= depth and \
        int(timing.total) <= WHOLE_CYCLES
    if not whole:
        result = rtl_prefix(program, arch, codes, build_dir, PREFIX_CYCLES, depth, progress)
        ops = Counter(program.instrs[i].op for i in np.flatnonzero(result.compared))
        return {**record, "prefix": True, **result.to_json(), "ops_covered": dict(ops)}
    result = rtl_run(program, arch, codes, build_dir, reference=ref, progress=progress,
                     trace=True, depth=depth)
    return {**record, "prefix": False, **result.to_json(),
            "max_start_difference": int(np.abs(result.starts - starts).max()),
            "rtl_s": result.seconds, "rtl_cycles_per_s": result.cycles_per_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="out/bench")
    p.add_argument("--only", help="comma-separated case names (default: all): "
                                  + ", ".join(CASES))
    p.add_argument("--build-dir", help="Verilator builds (default: the qasic cache)")
    p.add_argument("--array", default="4x4", help="rows x cols (default 4x4; others write "
                                                  "rtl_models_<array>.json)")
    p.add_argument("--depth", type=int, default=DEPTH, help="program memory words per queue")
    args = p.parse_args(argv)
    from qasic.rtl.run import build_accelerator, default_build_dir
    from qasic.rtl.top import accelerator_key

    names = args.only.split(",") if args.only else list(CASES)
    build_dir = Path(args.build_dir) if args.build_dir else default_build_dir()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, cols = (int(v) for v in args.array.lower().split("x"))
    arch, depth = models_arch(rows, cols), args.depth
    load_before = os.getloadavg()[0]
    fresh = not (build_dir / accelerator_key(arch, depth) / "sim_build").exists()
    t0 = time.perf_counter()
    build_accelerator(arch, build_dir, print, depth)
    path = out / ("rtl_models.json" if (rows, cols) == (4, 4) else
                  f"rtl_models_{rows}x{cols}.json")
    doc = json.loads(path.read_text()) if path.exists() else {}
    cases = doc.get("cases", {})
    # the Verilator build's seconds are kept from the run that built it (later runs elaborate
    # only, to check the cached build's Verilog hash)
    build = {"seconds": time.perf_counter() - t0, "verilated": True} if fresh else \
        doc.get("build", {"seconds": time.perf_counter() - t0, "verilated": False})
    for name in names:
        t0 = time.perf_counter()
        cases[name] = {**run_case(name, arch, build_dir, depth, print),
                       "seconds": time.perf_counter() - t0, "load_average": os.getloadavg()[0]}
        print(f"{name}: {summary(cases[name])}")
        doc = {"array": f"{rows}x{cols}", "arch": arch.name,
               **{k: getattr(arch, k) for k in PE_KEYS}, "program_depth": depth, "build": build,
               "load_average_before": load_before, "cases": cases}
        path.write_text(json.dumps(doc, indent=2) + "\n")  # after every case: runs are long
    print(path)
    return 0


def summary(r: dict) -> str:
    if r["prefix"]:
        return (f"prefix of {r['horizon_cycles']:,} cycles: {r['instructions_covered']:,} of "
                f"{r['instructions']:,} instructions ({r['covered_fraction']:.2%}), max issue "
                f"difference {r['max_start_difference']}, {r['rtl_cycles_per_s']:,.0f} cycles/s")
    same = "equal" if r["outputs_equal"] else "DIFFERENT"
    return (f"outputs {same}, {r['cycles_rtl']:,} cycles (model {r['cycles_sim']:,}), max issue "
            f"difference {r['max_start_difference']}, {r['rtl_cycles_per_s']:,.0f} cycles/s")


if __name__ == "__main__":
    raise SystemExit(main())
