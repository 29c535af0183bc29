"""Bit-width study: formats and mixed-precision policies, priced on the simulated hardware.

    python -m benchmarks.quant_study --out out/quant_study [--models digits_cnn,mnist_deep]

Writes quant_study.json — records {model, point, weight_format, activation_format, policy,
avg_weight_bits, accuracy, energy_pj, cycles, bit_exact} from the integer simulator, every point
on an array sized to its weights (qasic.flow.arch_for) — and quant_study.png (accuracy vs energy,
one front per policy, random per-layer assignments at the same size budgets in grey) — and
quant_study_fronts.json (``front_tests``: each policy's front against the random assignments).

Every record also has ``budget`` (the avg-bits budget of a policy or random point, else None),
``test_loss`` (mean cross-entropy of the simulator's dequantized logits) and ``misclassified``
(indices of the test samples it gets wrong). Each policy record has ``dominance``: the policy's
point against every random assignment at the same budget (see ``dominance``), and the run ends
with a summary table of them on stdout.

Equal budget: a random assignment at budget B averages at most B bits and more than
B - BUDGET_WINDOW, drawn uniformly without replacement from the distinct assignments in that
window (all of them when there are at most RANDOM_PER_BUDGET, as on 3-layer models). A policy
point is the exact knapsack optimum of its sensitivities under B, so it averages at most B too.
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

UNIFORM_BITS = (8, 6, 4, 3, 2)
FORMATS = ("fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "nf4_pc", "nupes4",
           # block fixed point (MX shift, 8-bit group scales, zero points) and per-tensor asym
           "mxfp4", "mxfp6_e2m3", "int4_g32", "nf4", "int4_asym_g32", "int4_asym")
# (point label, weight format or None for INT8) with FP8 E4M3 activations; "fp6_e3m2" is the
# ZeroQuant(4+2)-style FP6 weight format (the paper keeps FP16 activations; FP8 is the closest
# activation format the array runs)
FP8_ACTIVATION_POINTS = (("W8/FP8", None), ("FP8/FP8", "fp8_e4m3"),
                         ("zeroquant-FP6/FP8", "fp6_e3m2"), ("MXFP4/FP8", "mxfp4"))
POLICIES = ("hawq", "lim", "zd", "measured")
ACTIVATION_AWARE = ("measured",)       # policies whose scores see the activation format
BUDGETS = (2.25, 2.5, 3.0, 3.5, 4.0)   # average weight bits (a model-size budget)
BUDGET_WINDOW = 0.25                   # a random point at budget B averages (B - 0.25, B] bits
RANDOM_PER_BUDGET = 10
RANDOM_DRAWS = 200_000                 # candidate draws per model; finds every in-window one
CANDIDATES = (2, 3, 4, 6, 8)
MODELS = ("digits_cnn", "mnist_cnn", "mnist_deep")
ACTIVATIONS = {"mnist_cnn": (8, 4), "mnist_deep": (8, 4)}  # others: A8 only
EPS = 1e-9                             # bits; avg-bits sums round
ALPHA = 0.05                           # family-wise error of a cell's sign tests (Holm)


def study(model: str, activation_bits: tuple[int, ...] = (8,), log=print) -> list[dict]:
    from qasic.arch.config import default_arch
    from qasic.flow import arch_for, quantize_model, run_point
    from qasic.models import get_model
    from qasic.quant import QuantConfig
    from qasic.quant.sensitivity import cross_entropy

    trained = get_model(model)
    base = default_arch()
    records = []

    def point(name, config, policy, fmt, budget=None):
        graph = quantize_model(trained, config)
        r = run_point(name, graph, arch_for(graph, base), trained.test_inputs,
                      trained.test_labels)
        logits = r.sim.logits().reshape(len(trained.test_labels), -1)
        rec = {"model": model, "point": name, "weight_format": fmt,
               "activation_format": (config.activation_format if config.activation_format != "int"
                                     else f"int{config.activation_bits}"), "policy": policy,
               "avg_weight_bits": _avg_bits(graph), "accuracy": r.accuracy,
               "energy_pj": r.sim.energy_pj["total"], "cycles": r.sim.cycles,
               "bit_exact": r.bit_exact, "weight_bits": {n.name: n.weight_bits
                                                         for n in graph.weighted_nodes()},
               "pe_weight_bits": r.arch.weight_bits,
               "pe_shift_bits": [r.arch.weight_shift_bits, r.arch.input_shift_bits],
               "dram_bytes": r.sim.dram_bytes, "budget": budget,
               "test_loss": cross_entropy(logits, trained.test_labels),
               "misclassified": np.flatnonzero(logits.argmax(axis=1)
                                               != trained.test_labels).tolist()}
        log(f"{model} {name}: {r.accuracy:.2%}, {rec['energy_pj'] / 1e3:.0f} nJ, "
            f"bit-exact {r.bit_exact}")
        records.append(rec)

    fixed = _allocations(trained, [p for p in POLICIES if p not in ACTIVATION_AWARE])
    randoms = _random_assignments(trained)
    for a in activation_bits:
        # 'measured' scores with the point's activations fake-quantized; the others ignore them
        allocations = {**fixed, **_allocations(trained, ACTIVATION_AWARE,
                                               QuantConfig(activation_bits=a))}
        for b in UNIFORM_BITS:
            point(f"W{b}A{a}", QuantConfig(weight_bits=b, activation_bits=a), "uniform", "int")
        for fmt in FORMATS:
            point(f"{fmt}/A{a}", QuantConfig(weight_format=fmt, activation_bits=a), "format", fmt)
        for bits, fmts in _searched_formats(trained).items():
            point(f"llm-fp{bits}-search/A{a}",
                  QuantConfig(weight_format=fmts, activation_bits=a, weight_clipping="mse"),
                  "format", f"search-fp{bits}")
        for policy, allocs in allocations.items():
            for budget, bits in allocs:
                point(f"{policy}@{budget}b/A{a}",
                      QuantConfig(weight_bits=bits, activation_bits=a), policy, "int", budget)
        for i, (budget, bits) in enumerate(randoms):
            point(f"random{i}@{budget}b/A{a}", QuantConfig(weight_bits=bits, activation_bits=a),
                  "random", "int", budget)
    for label, fmt in FP8_ACTIVATION_POINTS:
        point(label, QuantConfig(weight_format=fmt, activation_format="fp8_e4m3"), "format",
              fmt or "int")
    return records


def _layer_sizes(trained) -> dict[str, int]:
    from qasic.quant import capture

    graph = capture(trained.module, trained.example_input, trained.name)
    return {n.name: int(n.params["weight"].size) for n in graph.weighted_nodes()}


def _allocations(trained, policies: Sequence[str],
                 config=None) -> dict[str, list[tuple[float, dict]]]:
    """Each policy's plan at every budget, scored on the validation split as ``qasic quantize
    --policy`` does (``qasic.policies.plan_budgets``; ``config`` the activation settings)."""
    from qasic.policies import plan_budgets
    from qasic.quant import capture

    graph = capture(trained.module, trained.example_input, trained.name)
    out = {}
    for policy in policies:
        plans = plan_budgets(graph, trained.calibration, policy,
                             [f"avg_bits={b}" for b in BUDGETS], candidate_bits=CANDIDATES,
                             scoring=trained.scoring_data(), config=config)
        out[policy] = [(b, p.bits) for b, p in zip(BUDGETS, plans, strict=True)]
    return out


def _searched_formats(trained) -> dict[int, dict[str, str]]:
    """LLM-FP4's exponent/mantissa split and exponent-bias search, per layer."""
    from qasic.quant import capture
    from qasic.quant.fpsearch import search_model_formats

    graph = capture(trained.module, trained.example_input, trained.name)
    return {b: search_model_formats(graph, b) for b in (4, 6)}


def _random_assignments(trained, seed: int = 0) -> list[tuple[float, dict]]:
    sizes = _layer_sizes(trained)
    out = []
    for budget in BUDGETS:
        rows = random_at_budget(list(sizes.values()), budget, RANDOM_PER_BUDGET, seed)
        out += [(budget, dict(zip(sizes, map(int, row)))) for row in rows]
    return out


def random_at_budget(sizes: Sequence[int], budget: float, n: int, seed: int = 0,
                     window: float = BUDGET_WINDOW,
                     candidates: Sequence[int] = CANDIDATES) -> np.ndarray:
    """Up to ``n`` distinct per-layer widths (rows, one column per layer) averaging, weighted by
    ``sizes``, more than ``budget - window`` and at most ``budget`` bits: a uniform sample
    without replacement of the distinct in-window rows among RANDOM_DRAWS uniform draws."""
    rng = np.random.default_rng(seed)
    s = np.asarray(sizes, dtype=np.float64)
    draws = np.asarray(candidates)[rng.integers(0, len(candidates), (RANDOM_DRAWS, len(s)))]
    avg = draws @ s / s.sum()
    rows = np.unique(draws[(avg <= budget + EPS) & (avg > budget - window + EPS)], axis=0)
    return rows[np.sort(rng.permutation(len(rows))[:n])]


def _avg_bits(graph) -> float:
    nodes = graph.weighted_nodes()
    sizes = np.array([n.params["weight"].size for n in nodes], dtype=np.float64)
    return float(sizes @ [n.weight_bits for n in nodes] / sizes.sum())


# --- domination at equal budget ------------------------------------------------------------

def dominance(records: Iterable[Mapping[str, Any]]) -> list[dict]:
    """Each sensitivity-policy point against every random point of the same model, activation
    format and budget.

    ``dominated`` counts the random points the policy's is at least as accurate as; ``dominates``
    is True when that is all of them (None when there are none). ``beaten_by`` lists the others
    with ``images`` (how many more test samples they get right) and ``p_value``: the exact
    one-sided sign test on the samples the two classify differently — the chance of a lead at
    least this large if both were equally accurate (None without ``misclassified``).
    ``loss_dominated`` counts the random points whose test loss is >= the policy's.

    The statistical reading (``dominates_statistically``): the policy is at least as accurate as
    the median random point (``at_least_median``) and no random point is significantly more
    accurate (``significant_losses`` == 0: the sign tests of the cell, Holm-corrected for the
    number of random points compared, at ALPHA). A lead of one or two images out of 1,000 is
    what a lucky draw among ten gives; the strict count treats it as a loss, this one does not.
    Raises ValueError if a point averages more bits than its budget.
    """
    records = list(records)
    for r in records:
        if r.get("budget") is not None and r["avg_weight_bits"] > r["budget"] + EPS:
            raise ValueError(f"{r['model']} {r['point']}: {r['avg_weight_bits']:.4f} average "
                             f"bits exceed its budget {r['budget']:g}")
    out = []
    for p in records:
        if p["policy"] in ("random", "uniform", "format") or p.get("budget") is None:
            continue
        rivals = [r for r in records if r["policy"] == "random" and _same_budget(p, r)]
        out.append(_compare(p, rivals))
    return out


def _same_budget(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(a[k] == b[k] for k in ("model", "activation_format", "budget"))


def _compare(p: Mapping[str, Any], rivals: Sequence[Mapping[str, Any]]) -> dict:
    wins, ties = (sum(op(p["accuracy"], r["accuracy"]) for r in rivals)
                  for op in (operator.gt, operator.eq))
    best = max((r["accuracy"] for r in rivals), default=None)
    entry = {"model": p["model"], "point": p["point"], "policy": p["policy"],
             "activation_format": p["activation_format"], "budget": p["budget"],
             "avg_weight_bits": p["avg_weight_bits"], "accuracy": p["accuracy"],
             "randoms": len(rivals), "dominated": wins + ties,
             "wins": wins, "ties": ties, "losses": len(rivals) - wins - ties,
             "fraction": (wins + ties) / len(rivals) if rivals else None,
             "dominates": wins + ties == len(rivals) if rivals else None,
             "margin": None if best is None else p["accuracy"] - best,
             "random_avg_bits": [min(r["avg_weight_bits"] for r in rivals),
                                 max(r["avg_weight_bits"] for r in rivals)] if rivals else None,
             "loss_dominated": None, "beaten_by": [],
             "at_least_median": (p["accuracy"] >= float(np.median([r["accuracy"] for r in rivals]))
                                 if rivals else None),
             "significant_losses": None, "dominates_statistically": None}
    if rivals and all("test_loss" in r for r in (p, *rivals)):
        entry["loss_dominated"] = sum(p["test_loss"] <= r["test_loss"] for r in rivals)
    for r in rivals:
        if r["accuracy"] > p["accuracy"]:
            entry["beaten_by"].append({"point": r["point"], "accuracy": r["accuracy"],
                                       **_lead(p, r)})
    ps = [b["p_value"] for b in entry["beaten_by"]]
    if rivals and None not in ps:
        entry["significant_losses"] = holm_rejections(ps, len(rivals))
        entry["dominates_statistically"] = (entry["at_least_median"]
                                            and entry["significant_losses"] == 0)
    return entry


def front_tests(entries: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Each policy's front (one model, activation format and policy, every budget) against the
    random assignments at the same budgets, as a population: LayerwiseQuant's own comparison,
    its ordering against "no specific ordering".

    Every (budget, random point) pair is a win (the policy more accurate), a tie or a loss. The
    random points are independent draws, so given the policy's points the wins are Binomial; the
    front dominates the random assignments when wins outnumber losses significantly (exact
    one-sided sign test, p < ALPHA) and no cell has the policy below its median random point.
    Unlike the best of N draws, which with enough draws finds the optimum that no heuristic can
    beat on a noisy test split, this reading does not depend on how many points are drawn.
    ``entries`` are ``dominance`` entries, which must carry ``wins``/``ties``/``losses``."""
    rows: dict[tuple, list] = {}
    for e in entries:
        if e["randoms"]:
            rows.setdefault((e["model"], e["activation_format"], e["policy"]), []).append(e)
    out = []
    for (model, act, policy), es in rows.items():
        wins, ties, losses = (sum(e[k] for e in es) for k in ("wins", "ties", "losses"))
        p = sign_test(wins, wins + losses)
        below = sorted(e["budget"] for e in es if e["at_least_median"] is False)
        out.append({"model": model, "activation_format": act, "policy": policy,
                    "wins": wins, "ties": ties, "losses": losses, "p_value": p,
                    "budgets_below_median": below,
                    "dominates": bool(p < ALPHA and not below)})
    return out


def holm_rejections(p_values: Sequence[float], m: int, alpha: float = ALPHA) -> int:
    """How many of ``p_values`` Holm's step-down procedure rejects among ``m`` tests (the
    others, not listed, are not candidates: their p-values are >= 0.5)."""
    rejected = 0
    for i, p in enumerate(sorted(p_values)):
        if p > alpha / (m - i):
            break
        rejected += 1
    return rejected


def _lead(p: Mapping[str, Any], r: Mapping[str, Any]) -> dict:
    """How many more samples ``r`` gets right than ``p``, and the sign test's p-value."""
    if "misclassified" not in p or "misclassified" not in r:
        return {"images": None, "p_value": None}
    only_p_wrong = len(set(p["misclassified"]) - set(r["misclassified"]))
    only_r_wrong = len(set(r["misclassified"]) - set(p["misclassified"]))
    return {"images": only_p_wrong - only_r_wrong,
            "p_value": sign_test(only_p_wrong, only_p_wrong + only_r_wrong)}


def sign_test(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2): exact, one-sided."""
    return sum(math.comb(n, i) for i in range(k, n + 1)) / 2 ** n


def summary(entries: Sequence[Mapping[str, Any]]) -> str:
    """One line per (model, activation format, policy): dominated/randoms at each budget."""
    lines, rows = [], {}
    for e in entries:
        rows.setdefault((e["model"], e["activation_format"], e["policy"]), []).append(e)
    budgets = sorted({e["budget"] for e in entries})
    lines.append(f"{'model':12s} {'act':5s} {'policy':9s} " +
                 " ".join(f"{f'{b:g} bits':>18s}" for b in budgets))
    for (model, act, policy), es in rows.items():
        cells = {e["budget"]: _cell(e) for e in es}
        lines.append(f"{model:12s} {act:5s} {policy:9s} " +
                     " ".join(f"{cells.get(b, '-'):>18s}" for b in budgets))
    held = [e for e in entries if e["dominates"] is not None]
    lines.append(f"dominates every random point at its budget: "
                 f"{sum(e['dominates'] for e in held)} of {len(held)} (policy, budget) pairs")
    stat = [e for e in held if e["dominates_statistically"] is not None]
    lines.append(f"at least the median random point, none significantly better (Holm, "
                 f"alpha {ALPHA:g}): {sum(e['dominates_statistically'] for e in stat)} of "
                 f"{len(stat)}")
    fronts = front_tests(entries)
    lines.append("fronts against the random assignments (wins/ties/losses over every budget's "
                 "random points, sign test; '<' lists budgets below the median random point):")
    for f in fronts:
        below = ",".join(f"{b:g}" for b in f["budgets_below_median"])
        lines.append(f"  {f['model']:12s} {f['activation_format']:5s} {f['policy']:9s} "
                     f"{f['wins']:3d}/{f['ties']:2d}/{f['losses']:2d}  p={f['p_value']:.1e}"
                     + (f"  < {below}" if below else "")
                     + ("  dominates" if f["dominates"] else "  does not dominate"))
    lines.append(f"fronts that dominate the random assignments (p < {ALPHA:g}, no budget below "
                 f"the median): {sum(f['dominates'] for f in fronts)} of {len(fronts)}")
    return "\n".join(lines)


def _cell(e: Mapping[str, Any]) -> str:
    """'10/10' when dominating, else '8/10 -0.3 p=.21' (margin in points, least p-value),
    marked '!' when a random point is significantly better and '<' when below the median."""
    if not e["randoms"]:
        return "no randoms"
    text = f"{e['dominated']}/{e['randoms']}"
    if e["dominates"]:
        return text
    ps = [b["p_value"] for b in e["beaten_by"] if b["p_value"] is not None]
    marks = ("!" if e.get("significant_losses") else "") + \
        ("<" if e.get("at_least_median") is False else "")
    return text + f" {100 * e['margin']:+.1f}" + (f" p={min(ps):.2f}" if ps else "") + marks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/quant_study")
    p.add_argument("--models", default=",".join(MODELS))
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, records = time.time(), []
    for model in args.models.split(","):
        records += study(model, ACTIVATIONS.get(model, (8,)),
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    entries = dominance(records)
    by_point = {(e["model"], e["point"]): e for e in entries}
    for r in records:
        if (r["model"], r["point"]) in by_point:
            r["dominance"] = by_point[r["model"], r["point"]]
    (out / "quant_study.json").write_text(json.dumps(records, indent=2))
    (out / "quant_study_fronts.json").write_text(json.dumps(front_tests(entries), indent=2))
    from qasic.reports.plots import save_png
    from qasic.reports.study import study_figure

    save_png(study_figure(records), out / "quant_study.png")
    print(summary(entries))
    print(f"{len(records)} records in {time.time() - t0:.0f} s: {out / 'quant_study.json'}")
    return 0 if all(r["bit_exact"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
