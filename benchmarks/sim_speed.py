"""Simulator speed against the golden reference, in one run (ratios, not wall-time asserts).

    python -m benchmarks.sim_speed --out out/bench

Writes sim_speed.json: simulated MAC/s of the Numba simulator and of the numpy golden reference
on the default model's test split, and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def measure(repeats: int = 3) -> dict:
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.flow import quantize_model
    from qasic.models import get_model
    from qasic.quant import QuantConfig, reference
    from qasic.sim import simulate
    from qasic.sim.run import input_codes

    trained = get_model("digits_cnn")
    arch = default_arch()
    graph = quantize_model(trained, QuantConfig(weight_bits=4))
    program = compile_graph(graph, arch)
    codes = input_codes(program, trained.test_inputs)
    simulate(program, arch, codes=codes[:2])  # compile the Numba kernels first
    sim_s = min(_time(lambda: simulate(program, arch, codes=codes)) for _ in range(repeats))
    ref_s = min(_time(lambda: reference.run(graph, codes)) for _ in range(repeats))
    macs = simulate(program, arch, codes=codes[:1]).macs * len(codes)
    return {"samples": len(codes), "macs": int(macs), "sim_seconds": sim_s,
            "reference_seconds": ref_s, "sim_macs_per_s": macs / sim_s,
            "reference_macs_per_s": macs / ref_s, "sim_over_reference": ref_s / sim_s}


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out/bench")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    record = measure()
    (out / "sim_speed.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    np.seterr(all="raise")
    main()
