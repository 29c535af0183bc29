"""Hand-written networks (benchmarks.handwritten) on the accelerator's RTL, run as a user runs
them: ``qasic compile --model FILE.py:FACTORY --data inputs.npz --arch rtl-4x4.toml -o
prog.qasic`` (a subprocess), then the program file on the Verilated accelerator against the
simulator (bit for bit, cycles equal) and the golden reference the file carries.

    python -m benchmarks.rtl_handwritten --out /tmp/s17/records/rtlnets [--only dlrm,hyena]
        [--build-dir DIR] [--depth 8192]

Every case runs on rtl_models' one build (``models_arch``: a 4x4 array, 2 KiB accumulator
scratchpad, program memories of ``--depth`` instructions per queue). A program whose longest
queue fits the program memories and that takes at most WHOLE_CYCLES runs whole on SAMPLES
inputs (traced: every instruction's issue cycle is compared with the timing model's too); the
others run a traced prefix of PREFIX_CYCLES (``qasic.rtl.run.rtl_prefix``), which compares issue
cycles of every instruction it covers (no outputs: it stops early). A decoder row (``decode``)
runs its generation decode step (``quant.decode.decode_graph`` of the graph the program file
carries): the golden reference's prefill of the row's prompt length leaves the states, then
one step runs on the RTL from them (outputs and the states it writes compared).

Writes ``rtl_handwritten.json`` (updated after every case): per network its instructions,
cycles on the RTL and the simulator (or the prefix's coverage), bit_exact (RTL == simulator ==
golden reference), the instruction kinds and kernel ops it covered, and its wall time; and the
union of kinds covered against the ISA's instruction kinds (``uncovered``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.handwritten import networks
from benchmarks.rtl_models import models_arch

DEPTH = 8192
SAMPLES = 2
WHOLE_CYCLES = 250_000  # a whole run of SAMPLES inputs: 1-4 minutes of Verilator here
PREFIX_CYCLES = 300_000  # as rtl_models: ~40 s of Verilator on a quiet machine
COMPILE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Case:
    network: str  # a benchmarks.handwritten row
    why: str  # the op kinds / views it is here for
    decode: bool = False  # run the generation decode step, not the whole network


# Chosen to cover the kernel kinds and the views the last sessions added (upsample_bilinear's
# 'bilinear' kernel and 'channels' views are in no row's whole run or prefix: tests/rtl/test_top
# runs channel views).
CASES = {c.network if not c.decode else f"{c.network}_decode": c for c in (
    Case("fasttext", "embedding bag (mean), linear"),
    Case("dlrm", "embedding bags, multi-index, pairwise dot interaction, concat"),
    Case("neumf", "embeddings, elementwise product, concat, MLP"),
    Case("fm", "embedding bag sum, square of sum minus sum of squares"),
    Case("gcn", "adjacency matmul (dense), relu"),
    Case("siren", "sin table, linear"),
    Case("stylegan2", "modulated conv, PixelNorm, demodulation, upsampling, noise add"),
    Case("espcn", "pixel shuffle, conv, tanh"),
    Case("unet_bilinear", "bilinear upsampling, max pool, channel concat"),
    Case("shufflenet", "channel shuffle (reshape + transpose as permutes), split, concat"),
    Case("cbam", "channel/spatial attention: mean and max over channels, sigmoid gates"),
    Case("densenet", "dense concat, average pooling (transition), batch norm"),
    Case("fpn", "nearest upsampling to a feature's size, lateral adds"),
    Case("deeplab", "ASPP: dilated convs, image pooling, bilinear resize to the input size"),
    Case("m5", "1-D conv, batch norm, max pool, global average pool"),
    Case("pointnet", "shared MLP, max over points"),
    Case("mobilenetv3", "hardswish, squeeze-excite, depthwise conv"),
    Case("convnext", "depthwise 7x7, LayerNorm over channels, GELU"),
    Case("ghostnet", "ghost modules (cheap ops + concat), SE"),
    Case("hyena", "fftconv (long conv as a Toeplitz GEMM), gating"),
    Case("gmlp", "spatial gating unit (GLU-style split), LayerNorm"),
    Case("mixtral_moe", "MoE router top-2, experts, RoPE, RMSNorm, SwiGLU"),
    Case("gptj", "rotary (interleaved), parallel attention+MLP"),
    Case("rwkv4", "time-mix recurrence (WKV scan), token shift"),
    Case("mamba_minimal", "selective scan (recurrence), depthwise causal conv, SiLU"),
    Case("tutorial_lm", "decode step: KV cache read/write, causal softmax", decode=True),
    Case("llama3", "decode step: GQA, RoPE, RMSNorm, SwiGLU", decode=True),
    Case("bart", "decode step: cross-attention over the encoder's cached keys/values",
         decode=True),
    Case("mixtral_moe", "decode step: MoE router top-2 mask, experts", decode=True),
    Case("mamba_minimal", "decode step: the selective scan's state, the conv window",
         decode=True),
    Case("swin", "window attention, shifted windows (rolls), relative position bias"),
    Case("efficientnet", "MBConv, SiLU, SE, stochastic-depth-free residuals"),
    Case("yolov8", "SiLU convs, C2f (its 'channels' views lie past a 300k-cycle prefix)"),
)}


def arch_toml(arch) -> str:
    """``arch`` as a complete arch TOML file (every key), for ``qasic compile --arch``."""
    from qasic.arch.config import toml_key

    sections: dict[str, dict] = {}
    for field, value in arch.to_dict().items():
        key = toml_key(field)
        sec, _, name = key.rpartition(".")
        sections.setdefault(sec, {})[name] = value

    def lit(v):
        return json.dumps(v) if isinstance(v, str) else repr(v)

    lines = [f"{k} = {lit(v)}" for k, v in sections.pop("", {}).items()]
    for sec, keys in sections.items():
        lines += [f"[{sec}]", *(f"{k} = {lit(v)}" for k, v in keys.items())]
    return "\n".join(lines) + "\n"


def compile_network(name: str, arch_path: Path, tmp: Path, reuse: bool = False
                    ) -> tuple[Path, np.ndarray, float | None]:
    """``qasic compile`` the row as a user does: (program file, calibration inputs, seconds);
    ``reuse``: the program file ``tmp`` already holds, if any (seconds None)."""
    net = networks()[name]
    x = net.inputs()
    data, prog = tmp / f"{name}.npz", tmp / f"{name}.qasic"
    if reuse and prog.exists():
        return prog, x, None
    np.savez(data, calibration=x)
    pick = ["--output", net.output] if net.output else []
    cmd = [sys.executable, "-m", "qasic", "compile", "--model", net.model_arg, "--data",
           str(data), *pick, "--arch", str(arch_path), "--out", str(prog)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True,
                          timeout=COMPILE_TIMEOUT_S)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise RuntimeError(f"qasic compile of {name} failed ({proc.returncode}): {last}")
    return prog, x, time.perf_counter() - t0


def decode_case(program, arch, ids: np.ndarray, prompt: int):
    """(decode program, codes (token id, position), states, golden reference outputs) of the
    graph ``program`` carries: the golden reference's prefill of ``ids[:, :prompt]`` leaves the
    states (KV caches, recurrent states), then one step of token ``ids[:, prompt]`` at position
    ``prompt`` (tests/rtl/test_top's decode steps, at a hand-written network's size); an
    encoder-decoder's prefill is its source ids and one target id, then the step at target
    position 1."""
    from qasic.compiler import compile_graph
    from qasic.quant import reference
    from qasic.quant.decode import decode_graph, prefill_graph, seq2seq
    from qasic.quant.graphio import embedded

    full = embedded(program)
    split = seq2seq(full)  # an encoder-decoder: the ids are S source ids, then the target's
    source = 0 if split is None else split[0]
    prompt = prompt if split is None else 1  # the target's start token
    step, state = decode_graph(full), {}
    reference.run(prefill_graph(full, prompt), ids[:, :source + prompt], state=state)
    x = np.stack([ids[:, source + prompt], np.full(len(ids), prompt)], axis=1)
    before = {k: v.copy() for k, v in state.items()}
    want = reference.run(step, x, state=state)
    dec = compile_graph(step, arch)
    return dec, step, x.reshape(len(ids), *dec.meta["input"]["shape"]), before, want


def run_case(name: str, arch, arch_path: Path, build_dir: Path, depth: int, tmp: Path,
             progress=print, reuse: bool = False) -> dict:
    from qasic.isa.program import load
    from qasic.quant import reference
    from qasic.quant.graphio import embedded
    from qasic.rtl.run import rtl_prefix, rtl_run
    from qasic.sim.run import input_codes
    from qasic.sim.timing import schedule

    case = CASES[name]
    path, x, compile_s = compile_network(case.network, arch_path, tmp, reuse)
    program = load(path)
    states = None
    if case.decode:
        prompt = len(networks()[case.network].prompt) or 2
        program, graph, codes, states, ref = decode_case(program, arch, x[:SAMPLES], prompt)
    else:
        x, graph = x[:SAMPLES], embedded(program)
        codes = input_codes(program, x)
        ref = reference.run(graph, codes)
    op_of = {n.name: n.op for n in graph.nodes}
    kernels = [program.layers[k] for k in program.layer_ids]
    record = {"network": case.network, "why": case.why, "decode": case.decode,
              "arch": arch.name, "instructions": len(program.instrs), "compile_s": compile_s}
    timing = schedule(program, arch)
    whole = max(Counter(ins.queue for ins in program.instrs).values()) <= depth and \
        int(timing.total) <= WHOLE_CYCLES
    if not whole:
        result = rtl_prefix(program, arch, codes, build_dir, PREFIX_CYCLES, depth, progress)
        seen = np.flatnonzero(result.compared)
        return {**record, "prefix": True, **result.to_json(),
                "bit_exact": None, "cycles_equal": result.max_start_difference == 0,
                "instr_kinds": dict(Counter(program.instrs[i].op for i in seen)),
                # the graph ops of the kernels whose instructions it compared
                "graph_ops": sorted({op_of[n] for i in seen for n in kernels[i]["nodes"]
                                     if n in op_of}),
                "kernel_kinds": sorted({kernels[i]["kind"] for i in seen})}
    result = rtl_run(program, arch, codes, build_dir, reference=ref, progress=progress,
                     trace=True, depth=depth, states=states)
    starts = timing.start
    return {**record, "prefix": False, **result.to_json(),
            "bit_exact": result.outputs_equal and result.reference_equal is True,
            "cycles_equal": result.cycles_rtl == result.cycles_sim,
            "max_start_difference": int(np.abs(result.starts - starts).max()),
            "rtl_s": result.seconds, "rtl_cycles_per_s": result.cycles_per_s,
            "instr_kinds": dict(Counter(ins.op for ins in program.instrs)),
            # every node ran, those without instructions too (views, concats, aliases)
            "graph_ops": sorted(set(op_of.values())),
            "kernel_kinds": sorted({k["kind"] for k in program.layers})}


def uncovered(cases: dict) -> dict:
    """ISA instruction kinds, graph ops (quant.graph.OPS) and kernel kinds the cases ran on the
    RTL, and the instruction kinds and graph ops none did."""
    from qasic.isa.table import OPCODES
    from qasic.quant.graph import OPS

    def union(key):
        return {k for r in cases.values() for k in r.get(key, ())}

    kinds, ops = union("instr_kinds"), union("graph_ops")
    return {"instr_kinds_uncovered": [op.name for op in OPCODES if op.name not in kinds],
            "graph_ops_covered": sorted(ops),
            "graph_ops_uncovered": sorted(set(OPS) - ops),
            "kernel_kinds_covered": sorted(union("kernel_kinds"))}


def summary(r: dict) -> str:
    if "error" in r:
        return f"ERROR {r['error']}"
    if r["prefix"]:
        return (f"prefix {r['horizon_cycles']:,} of {r['cycles_sim']:,} cycles: "
                f"{r['instructions_covered']:,}/{r['instructions']:,} instructions, max issue "
                f"difference {r['max_start_difference']}")
    return (f"bit_exact {r['bit_exact']}, RTL {r['cycles_rtl']:,} cycles, sim "
            f"{r['cycles_sim']:,}, max issue difference {r['max_start_difference']}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="/tmp/s17/records/rtlnets")
    p.add_argument("--only", help="comma-separated case names (default: all): " + ", ".join(CASES))
    p.add_argument("--build-dir", help="Verilator builds (default: the qasic cache)")
    p.add_argument("--depth", type=int, default=DEPTH)
    p.add_argument("--programs", help="keep the compiled program files in this directory and "
                   "reuse those it holds (default: compile every case afresh)")
    args = p.parse_args(argv)
    from qasic.rtl.run import build_accelerator, default_build_dir

    names = args.only.split(",") if args.only else list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s) {', '.join(unknown)}")
    build_dir = Path(args.build_dir) if args.build_dir else default_build_dir()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    arch = models_arch()
    build_accelerator(arch, build_dir, print, args.depth)
    path = out / "rtl_handwritten.json"
    doc = json.loads(path.read_text()) if path.exists() else {}
    cases = doc.get("cases", {})
    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.programs or scratch)
        tmp.mkdir(parents=True, exist_ok=True)
        arch_path = tmp / "arch.toml"
        arch_path.write_text(arch_toml(arch))
        for name in names:
            t0 = time.perf_counter()
            try:
                rec = run_case(name, arch, arch_path, build_dir, args.depth, tmp,
                               reuse=bool(args.programs))
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                rec = {"network": CASES[name].network, "error": f"{type(e).__name__}: {e}"}
            cases[name] = {**rec, "wall_s": round(time.perf_counter() - t0, 1),
                           "load_average": os.getloadavg()[0], "commit": commit}
            print(f"{name}: {summary(cases[name])} ({cases[name]['wall_s']} s)", flush=True)
            doc = {"arch": arch.name, "program_depth": args.depth, "samples": SAMPLES,
                   **uncovered(cases), "cases": cases}
            path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
