"""The bit allocator is exact: it equals a brute-force search on random small instances."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from qasic.errors import ConfigError
from qasic.quant.allocate import (
    InfeasibleBudget,
    allocate,
    frontier,
    make_choices,
    minimum_cost,
    pareto_set,
)


def brute_force(choices, budget):
    """Least total sensitivity over every assignment with cost <= budget (None if none).
    Sums in layer order, as the allocator does, so float totals compare exactly."""
    layers = list(choices)
    best = None
    for combo in itertools.product(*(sorted(choices[name]) for name in layers)):
        s = c = 0.0
        for name, bits in zip(layers, combo):
            s += choices[name][bits][0]
            c += choices[name][bits][1]
        if c <= budget and (best is None or s < best):
            best = s
    return best


def random_instance(rng, integer_costs=True):
    n_layers = int(rng.integers(1, 6))
    choices = {}
    for i in range(n_layers):
        bits = sorted(rng.choice([2, 3, 4, 5, 6, 7, 8], size=int(rng.integers(1, 6)),
                                 replace=False).tolist())
        if integer_costs:  # small integers make ties in cost and in sensitivity common
            pairs = [(float(rng.integers(0, 6)), float(rng.integers(0, 15))) for _ in bits]
        else:
            pairs = [(float(rng.random()), float(rng.random() * 100)) for _ in bits]
        choices[f"layer{i}"] = dict(zip(bits, pairs))
    return choices


def check_allocation(choices, alloc, budget):
    assert list(alloc.bits) == list(choices)
    s = sum(choices[name][b][0] for name, b in alloc.bits.items())
    c = sum(choices[name][b][1] for name, b in alloc.bits.items())
    assert np.isclose(alloc.sensitivity, s) and np.isclose(alloc.cost, c)
    assert alloc.cost <= budget


@pytest.mark.parametrize("integer_costs", [True, False])
def test_allocator_equals_brute_force_on_random_instances(integer_costs):
    rng = np.random.default_rng(1 if integer_costs else 2)
    checked = 0
    for _ in range(300):
        choices = random_instance(rng, integer_costs)
        lo = minimum_cost(choices)
        hi = sum(max(c for _, c in layer.values()) for layer in choices.values())
        budgets = sorted({lo, hi, *rng.uniform(lo, hi, size=4).tolist()})
        for budget, alloc in zip(budgets, pareto_set(choices, budgets)):
            check_allocation(choices, alloc, budget)
            assert alloc.sensitivity == brute_force(choices, budget)
            assert allocate(choices, budget) == alloc
            checked += 1
    assert checked > 1000


def test_frontier_is_strictly_monotone_and_complete():
    rng = np.random.default_rng(3)
    for _ in range(50):
        choices = random_instance(rng)
        front = frontier(choices)
        costs = [a.cost for a in front]
        sens = [a.sensitivity for a in front]
        assert costs == sorted(set(costs))
        assert all(a > b for a, b in itertools.pairwise(sens))
        # every budget's optimum is on the frontier
        for budget in range(int(minimum_cost(choices)), int(costs[-1]) + 1):
            assert brute_force(choices, budget) in sens


def test_hand_instance():
    # conv1 is cheap, fc is big: the optimum spends the budget on conv1 and keeps fc low
    choices = make_choices({"conv1": {2: 9.0, 8: 0.0}, "fc": {2: 1.0, 4: 0.5, 8: 0.0}},
                           {"conv1": {2: 2, 8: 8}, "fc": {2: 20, 4: 40, 8: 80}})
    assert allocate(choices, 30).bits == {"conv1": 8, "fc": 2}
    assert allocate(choices, 48).bits == {"conv1": 8, "fc": 4}
    assert allocate(choices, 22).bits == {"conv1": 2, "fc": 2}
    assert [a.bits["fc"] for a in pareto_set(choices, [88, 22, 30])] == [8, 2, 2]


def test_infeasible_budget_names_budget_and_minimum():
    choices = {"a": {2: (1.0, 10.0), 4: (0.5, 20.0)}, "b": {2: (1.0, 5.0)}}
    with pytest.raises(InfeasibleBudget, match=r"budget 14 cannot be met: the minimum "
                                               r"achievable cost is 15 ") as e:
        allocate(choices, 14)
    assert isinstance(e.value, ConfigError) and e.value.minimum == 15
    with pytest.raises(ConfigError, match="budget 3 "):
        pareto_set(choices, [40, 3])
    assert allocate(choices, 15).bits == {"a": 2, "b": 2}


def test_malformed_choices():
    with pytest.raises(ConfigError, match="no layers"):
        allocate({}, 1)
    with pytest.raises(ConfigError, match="'a' has no bit-width"):
        allocate({"a": {}}, 1)
    with pytest.raises(ConfigError, match="two finite numbers"):
        allocate({"a": {2: (float("nan"), 1.0)}}, 1)
    with pytest.raises(ConfigError, match="bits \\[4\\]"):
        make_choices({"a": {2: 1.0, 4: 0.5}}, {"a": {2: 2.0}})
