"""Bit-width study: formats and mixed-precision policies, priced on the simulated hardware.

    python -m benchmarks.quant_study --out out/quant_study [--models digits_cnn,mnist_cnn]

Writes quant_study.json — records {model, point, weight_format, activation_format, policy,
avg_weight_bits, accuracy, energy_pj, cycles, bit_exact} from the integer simulator, every point
on an array sized to its weights (qasic.flow.arch_for) — and quant_study.png (accuracy vs energy,
one front per policy, random per-layer assignments at the same size budgets in grey).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

UNIFORM_BITS = (8, 6, 4, 3, 2)
FORMATS = ("fp8_e4m3", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "nf4_pc", "nupes4")
POLICIES = ("hawq", "lim", "zd", "measured")
BUDGETS = (2.5, 3.0, 3.5, 4.0)     # average weight bits (a model-size budget)
RANDOM_PER_BUDGET = 10
CANDIDATES = (2, 3, 4, 6, 8)


def study(model: str, activation_bits: tuple[int, ...] = (8,), log=print) -> list[dict]:
    from qasic.arch.config import default_arch
    from qasic.flow import arch_for, quantize_model, run_point
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    trained = get_model(model)
    base = default_arch()
    records = []

    def point(name, config, policy, fmt):
        graph = quantize_model(trained, config)
        r = run_point(name, graph, arch_for(graph, base), trained.test_inputs,
                      trained.test_labels)
        rec = {"model": model, "point": name, "weight_format": fmt,
               "activation_format": f"int{config.activation_bits}", "policy": policy,
               "avg_weight_bits": _avg_bits(graph), "accuracy": r.accuracy,
               "energy_pj": r.sim.energy_pj["total"], "cycles": r.sim.cycles,
               "bit_exact": r.bit_exact, "weight_bits": {n.name: n.weight_bits
                                                         for n in graph.weighted_nodes()},
               "pe_weight_bits": r.arch.weight_bits}
        log(f"{model} {name}: {r.accuracy:.2%}, {rec['energy_pj'] / 1e3:.0f} nJ, "
            f"bit-exact {r.bit_exact}")
        records.append(rec)

    for a in activation_bits:
        for b in UNIFORM_BITS:
            point(f"W{b}A{a}", QuantConfig(weight_bits=b, activation_bits=a), "uniform", "int")
        for fmt in FORMATS:
            point(f"{fmt}/A{a}", QuantConfig(weight_format=fmt, activation_bits=a), "format", fmt)
        for bits, fmts in _searched_formats(trained).items():
            point(f"llm-fp{bits}-search/A{a}",
                  QuantConfig(weight_format=fmts, activation_bits=a, weight_clipping="mse"),
                  "format", f"search-fp{bits}")
        for policy, allocs in _allocations(trained).items():
            for budget, bits in allocs:
                point(f"{policy}@{budget}b/A{a}",
                      QuantConfig(weight_bits=bits, activation_bits=a), policy, "int")
        for budget, bits in _random_assignments(trained):
            point(f"random@{budget}b/A{a}", QuantConfig(weight_bits=bits, activation_bits=a),
                  "random", "int")
    return records


def _allocations(trained) -> dict[str, list[tuple[float, dict]]]:
    from qasic.quant import capture
    from qasic.quant.allocate import make_choices, pareto_set
    from qasic.quant.sensitivity import METHODS

    graph = capture(trained.module, trained.example_input, trained.name)
    sizes = {n.name: n.params["weight"].size for n in graph.weighted_nodes()}
    cost = {k: {b: float(s * b) for b in CANDIDATES} for k, s in sizes.items()}
    total = sum(sizes.values())
    out = {}
    for policy in POLICIES:
        scores = METHODS[policy](graph, trained.calibration, bits=CANDIDATES)
        allocs = pareto_set(make_choices(scores, cost), [b * total for b in BUDGETS])
        out[policy] = [(b, a.bits) for b, a in zip(BUDGETS, allocs, strict=True)]
    return out


def _searched_formats(trained) -> dict[int, dict[str, str]]:
    """LLM-FP4's exponent/mantissa split and exponent-bias search, per layer."""
    from qasic.quant import capture
    from qasic.quant.fpsearch import search_model_formats

    graph = capture(trained.module, trained.example_input, trained.name)
    return {b: search_model_formats(graph, b) for b in (4, 6)}


def _random_assignments(trained, seed: int = 0) -> list[tuple[float, dict]]:
    """Uniformly random per-layer bits whose average is within the budget and within 0.5 bit
    of it (equal-budget comparisons, not starved ones)."""
    from qasic.quant import capture

    graph = capture(trained.module, trained.example_input, trained.name)
    sizes = {n.name: n.params["weight"].size for n in graph.weighted_nodes()}
    total, rng, out = sum(sizes.values()), np.random.default_rng(seed), []
    for budget in BUDGETS:
        found = 0
        for _ in range(20_000):
            bits = {k: int(rng.choice(CANDIDATES)) for k in sizes}
            avg = sum(sizes[k] * b for k, b in bits.items()) / total
            if budget - 0.5 < avg <= budget:
                out.append((budget, bits))
                found += 1
                if found == RANDOM_PER_BUDGET:
                    break
    return out


def _avg_bits(graph) -> float:
    nodes = graph.weighted_nodes()
    sizes = np.array([n.params["weight"].size for n in nodes], dtype=np.float64)
    return float(sizes @ [n.weight_bits for n in nodes] / sizes.sum())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", default="out/quant_study")
    p.add_argument("--models", default="digits_cnn,mnist_cnn")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, records = time.time(), []
    for model in args.models.split(","):
        acts = (8, 4) if model == "mnist_cnn" else (8,)
        records += study(model, acts, log=lambda m: print(m, file=sys.stderr, flush=True))
    (out / "quant_study.json").write_text(json.dumps(records, indent=2))
    from qasic.reports.plots import save_png
    from qasic.reports.study import study_figure

    save_png(study_figure(records), out / "quant_study.png")
    print(f"{len(records)} records in {time.time() - t0:.0f} s: {out / 'quant_study.json'}")
    return 0 if all(r["bit_exact"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
