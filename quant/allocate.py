"""Exact bit allocation: one choice of bits per layer, total cost <= budget, least sensitivity.

This is the multiple-choice knapsack problem (HAWQ-V3 states it as an integer program). We solve it
exactly by dynamic programming over Pareto frontiers (Nemhauser-Ullmann): after layers 1..k the
state set holds the partial assignments that no other partial assignment dominates (cost <= and
sensitivity <=, one of them strictly); layer k+1 extends every state by each of its choices, and
dominated states are dropped.

Why this is optimal: costs and sensitivities add over layers, so if partial assignment A' dominates
A, then A' + C dominates A + C for every completion C; dropping A never loses an optimum. A state
whose cost plus the cheapest completion exceeds the limit can never become feasible and is dropped
too. The final frontier, sorted by cost, has strictly decreasing sensitivity, and the optimum for
a budget B is its last state with cost <= B: one run answers every budget (``pareto_set``).

Size: with integer costs there is at most one state per distinct cost, so at most limit + 1 states
per layer (the bound of the classic table DP over integer costs); real costs (energy in pJ) need no
rounding. Ties in sensitivity go to the cheaper state, then to the earlier-enumerated one (lower
bits on earlier layers first), so results are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from qasic.errors import ConfigError

# layer -> bits -> (sensitivity, cost)
Choices = Mapping[str, Mapping[int, tuple[float, float]]]


@dataclass(frozen=True)
class Allocation:
    bits: dict[str, int]   # layer -> chosen bits, in the order of the choices
    sensitivity: float     # sum over layers
    cost: float            # sum over layers


class InfeasibleBudget(ConfigError):
    """No assignment meets the budget; ``minimum`` is the cheapest total cost there is."""

    def __init__(self, budget: float, minimum: float) -> None:
        super().__init__(f"budget {budget:g} cannot be met: the minimum achievable cost is "
                         f"{minimum:g} (every layer at its cheapest choice)")
        self.budget, self.minimum = budget, minimum


def make_choices(sensitivity: Mapping[str, Mapping[int, float]],
                 cost: Mapping[str, Mapping[int, float]]) -> dict[str, dict[int, tuple]]:
    """Zip per-layer scores and costs; both must name the same layers and bits."""
    if set(sensitivity) != set(cost):
        raise ConfigError(f"sensitivity layers {sorted(sensitivity)} != cost layers "
                          f"{sorted(cost)}")
    out = {}
    for layer, scores in sensitivity.items():
        missing = set(scores) ^ set(cost[layer])
        if missing:
            raise ConfigError(f"layer {layer!r}: bits {sorted(missing)} have a sensitivity or a "
                              "cost but not both")
        out[layer] = {b: (float(scores[b]), float(cost[layer][b])) for b in sorted(scores)}
    return out


def allocate(choices: Choices, budget: float) -> Allocation:
    """The assignment of least total sensitivity whose total cost is <= ``budget``."""
    return pareto_set(choices, [budget])[0]


def pareto_set(choices: Choices, budgets: Iterable[float]) -> list[Allocation]:
    """The optimal assignment for each budget, in the order given; InfeasibleBudget names the
    first budget below the minimum cost."""
    budgets = [float(b) for b in budgets]
    if not budgets or not all(math.isfinite(b) for b in budgets):
        raise ConfigError(f"budgets {budgets} must be one or more finite numbers")
    front = frontier(choices, max(budgets))
    costs = np.array([a.cost for a in front])
    out = []
    for b in budgets:
        i = int(np.searchsorted(costs, b, side="right")) - 1
        if i < 0:
            raise InfeasibleBudget(b, minimum_cost(choices))
        out.append(front[i])
    return out


def minimum_cost(choices: Choices) -> float:
    return float(sum(min(c for _, c in layer.values()) for layer in _check(choices).values()))


def frontier(choices: Choices, limit: float = math.inf) -> list[Allocation]:
    """Every Pareto-optimal assignment with cost <= ``limit``, by increasing cost (and strictly
    decreasing sensitivity). Empty if even the cheapest assignment exceeds ``limit``."""
    choices = _check(choices)
    layers = list(choices)
    options = [sorted(choices[name].items()) for name in layers]  # [(bits, (sens, cost))]
    cheapest_rest = np.cumsum([min(c for _, (_, c) in o) for o in options][::-1])[::-1]
    cost, sens = np.zeros(1), np.zeros(1)
    steps = []  # per layer: (parent state, option index) of each kept state
    for k, opts in enumerate(options):
        s_opt = np.array([s for _, (s, _) in opts])
        c_opt = np.array([c for _, (_, c) in opts])
        c = (cost[:, None] + c_opt[None, :]).ravel()
        s = (sens[:, None] + s_opt[None, :]).ravel()
        parent, pick = np.divmod(np.arange(len(c)), len(opts))
        keep = _pareto(c, s)
        if k + 1 < len(layers):  # prune with slack: sums in another order may round apart
            keep &= c + cheapest_rest[k + 1] <= limit + 1e-9 * max(1.0, abs(limit))
        else:
            keep &= c <= limit
        cost, sens = c[keep], s[keep]
        steps.append((parent[keep], pick[keep]))
        if not len(cost):
            return []
    order = np.argsort(cost, kind="stable")
    return [_trace(layers, options, steps, int(i), float(cost[i]), float(sens[i]))
            for i in order]


def _pareto(c: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Mask of the states no other state dominates; among equal (cost, sensitivity), the first."""
    order = np.lexsort((np.arange(len(c)), s, c))  # by cost, then sensitivity, then index
    s_sorted = s[order]
    best_before = np.concatenate([[np.inf], np.minimum.accumulate(s_sorted)[:-1]])
    mask = np.zeros(len(c), dtype=bool)
    mask[order[s_sorted < best_before]] = True
    return mask


def _trace(layers: list[str], options: list, steps: list, state: int, cost: float,
           sens: float) -> Allocation:
    bits = {}
    for k in range(len(layers) - 1, -1, -1):
        parent, pick = steps[k]
        bits[layers[k]] = options[k][int(pick[state])][0]
        state = int(parent[state])
    return Allocation({name: bits[name] for name in layers}, sens, cost)


def _check(choices: Choices) -> Choices:
    if not choices:
        raise ConfigError("no layers to allocate bits to")
    for layer, opts in choices.items():
        if not opts:
            raise ConfigError(f"layer {layer!r} has no bit-width to choose from")
        for bits, pair in opts.items():
            if len(pair) != 2 or not all(math.isfinite(float(v)) for v in pair):
                raise ConfigError(f"layer {layer!r}, {bits} bits: (sensitivity, cost) = {pair!r} "
                                  "must be two finite numbers")
    return choices
