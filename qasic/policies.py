"""``choose_bits``: per-layer weight bits for a model under a budget, chosen by a policy.

Policies: ``uniform`` (the widest single width that fits the budget), and ``hawq``, ``lim``,
``zd``, ``measured`` (scores from ``qasic.quant.sensitivity``, allocated exactly by
``qasic.quant.allocate``; 'measured' then re-measures each layer around the allocation it picked
and moves to a new allocation when that is significantly better, ``refine_measured``). A
built-in model's sensitivities are scored on its validation split, held out of training and
test.

Budgets are ``KEY=VALUE``; the key names the metric and the unit:

    avg_bits=3       size: mean bits per weight (weight storage / weight parameters)
    size_bits=N      size: weight storage in bits (sum of parameters x bits)
    size_kib=4       size: the same in KiB (8192 bits)
    energy_pj=N      energy per inference, simulated; also energy_nj, energy_uj
    cycles=N         cycles per inference, simulated

Costs per layer and width. size: parameters x bits (biases are int32 at every width and are not
counted). energy, cycles: the model is quantized uniformly at each candidate width, compiled for
``arch`` (default: the built-in array, used as is, so that a layer's cost depends only on its own
bits) and simulated on one sample; each weighted layer's kernel gives its cost, and kernels
without weights (pools, adds) a constant that every assignment pays.

Activations: ``config`` (a QuantConfig; None: QuantConfig(), INT8 min-max) gives the activation
settings the model will run with (activation_bits, activation_format, activation_observer,
percentile) and the weight clipping; its weight_bits and weight_format are ignored (the policy
chooses them). Energy and cycles are simulated with those activations (packed A4 moves fewer
bytes); 'measured' scores with its activations fake-quantized (``config=None``: float
activations, as before), calibrated on the calibration batch; every method's Q_b uses its
clipping. HAWQ, LIM and ZD are defined on float activations and do not see them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.allocate import allocate, frontier, make_choices
from qasic.quant.config import QuantConfig
from qasic.quant.fgraph import FGraph
from qasic.quant.sensitivity import CANDIDATE_BITS, METHODS, check_bits, measured_losses

POLICIES = ("uniform", *METHODS)
METRICS = ("size", "energy", "cycles")
# key -> (metric, base units per key unit: bits, pJ or cycles); avg_bits scales with parameters
BUDGET_KEYS: dict[str, tuple[str, float | None]] = {
    "avg_bits": ("size", None),
    "size_bits": ("size", 1.0),
    "size_kib": ("size", 8192.0),
    "energy_pj": ("energy", 1.0),
    "energy_nj": ("energy", 1e3),
    "energy_uj": ("energy", 1e6),
    "cycles": ("cycles", 1.0),
}
MEASURED_ROUNDS = 4  # re-measurements of the 'measured' policy (it usually settles in 2)
MOVE_SIGMAS = 2.0    # standard errors a re-allocation must gain to replace the current one
EXAMPLE = "e.g. avg_bits=3, size_kib=4, energy_nj=2300 or cycles=7200"


@dataclass(frozen=True)
class Budget:
    key: str      # a key of BUDGET_KEYS
    value: float  # in the key's unit

    @property
    def metric(self) -> str:
        return BUDGET_KEYS[self.key][0]

    def __str__(self) -> str:
        return f"{self.key}={self.value:g}"

    def base(self, params: int) -> float:
        """The budget in the metric's base unit (bits, pJ, cycles)."""
        return self.value * (BUDGET_KEYS[self.key][1] or params)

    def in_key_units(self, base: float, params: int) -> float:
        return base / (BUDGET_KEYS[self.key][1] or params)


@dataclass(frozen=True)
class Plan:
    policy: str
    budget: Budget
    bits: dict[str, int]   # layer -> weight bits
    cost: float            # predicted total, in the metric's base unit (constant part included)
    avg_weight_bits: float
    sensitivity: float | None = None  # predicted total, on a Pareto set (``pareto_plans``)


def parse_budget(text: str) -> Budget:
    """'avg_bits=3' -> Budget('avg_bits', 3.0); ConfigError (one line) on anything else."""
    key, sep, value = str(text).partition("=")
    key = key.strip()
    if not sep or key not in BUDGET_KEYS:
        raise ConfigError(f"budget {text!r}: expected KEY=VALUE with KEY one of "
                          f"{', '.join(BUDGET_KEYS)} ({EXAMPLE})")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ConfigError(f"budget {text!r}: {value.strip()!r} is not a positive number "
                          f"({EXAMPLE})")
    return Budget(key, number)


def choose_bits(trained: Any, policy: str, budget: str | Budget, metric: str | None = None,
                candidate_bits: Iterable[int] = CANDIDATE_BITS, arch: Any = None, *,
                config: QuantConfig | None = None) -> dict[str, int]:
    """Per-layer weight bits for ``trained`` (a TrainedModel: module, example_input,
    calibration), scored on its validation split (``trained.scoring_data()``). ``metric``, if
    given, must be the one the budget's key names. ``config``: the activation settings and
    weight clipping the model will be quantized with (module docstring; its weight bits and
    formats are ignored); None: INT8 activations for the costs, float ones for 'measured'."""
    from qasic.quant import capture

    graph = capture(trained.module, trained.example_input, trained.name)
    return plan_bits(graph, trained.calibration, policy, budget, metric, candidate_bits,
                     arch, trained.scoring_data(), config=config).bits


def plan_bits(graph: FGraph, calibration: Any, policy: str, budget: str | Budget,
              metric: str | None = None, candidate_bits: Iterable[int] = CANDIDATE_BITS,
              arch: Any = None, scoring: tuple[Any, Any] | None = None, *,
              config: QuantConfig | None = None) -> Plan:
    """``choose_bits`` on a captured graph, with the predicted cost."""
    return plan_budgets(graph, calibration, policy, [budget], metric, candidate_bits, arch,
                        scoring, config=config)[0]


def plan_budgets(graph: FGraph, calibration: Any, policy: str,
                 budgets: Sequence[str | Budget], metric: str | None = None,
                 candidate_bits: Iterable[int] = CANDIDATE_BITS, arch: Any = None,
                 scoring: tuple[Any, Any] | None = None, *,
                 config: QuantConfig | None = None) -> list[Plan]:
    """One Plan per budget (all of one metric), the sensitivities computed once.

    ``calibration`` quantizes the model for simulated costs and calibrates the activations
    'measured' fake-quantizes; ``scoring`` = (inputs, labels or None) is what the sensitivities
    are measured on (default: the calibration batch, the float model's predictions as labels).
    'measured' re-measures around each allocation it picks (``refine_measured``). ``config``:
    the activation settings and weight clipping (module docstring; weight bits and formats in
    it are ignored)."""
    s = _setup(graph, calibration, policy, budgets, metric, candidate_bits, arch, scoring,
               config)
    plans = []
    for b in s.budgets:
        limit = b.base(s.params) - s.fixed
        if policy == "uniform":
            chosen = _uniform(s.costs, s.bits, limit)
        else:
            chosen = allocate(s.choices, limit).bits
            if policy == "measured":
                chosen = refine_measured(graph, s.x, s.bits, s.costs, limit, chosen,
                                         config=config, calibration=calibration)
        plans.append(_plan(graph, policy, b, chosen, s))
    return plans


def pareto_plans(graph: FGraph, calibration: Any, policy: str, budget: str | Budget,
                 metric: str | None = None, candidate_bits: Iterable[int] = CANDIDATE_BITS,
                 arch: Any = None, scoring: tuple[Any, Any] | None = None, *,
                 config: QuantConfig | None = None) -> list[Plan]:
    """The Pareto set the allocator chooses from: every allocation whose cost fits ``budget``
    and that no cheaper one matches in total sensitivity, by increasing cost (HAWQ-V3's
    trade-off curve; ``budget`` bounds it). 'uniform': each single width that fits. 'measured':
    the set of its first scores, measured around the float model (``plan_bits`` refines
    around one budget's choice). ``Plan.sensitivity`` is the predicted total. ``config`` as in
    ``plan_budgets``."""
    s = _setup(graph, calibration, policy, [budget], metric, candidate_bits, arch, scoring,
               config)
    limit = s.budgets[0].base(s.params) - s.fixed
    if policy == "uniform":
        fits = [b for b in s.bits if sum(c[b] for c in s.costs.values()) <= limit]
        return [_plan(graph, policy, s.budgets[0], dict.fromkeys(s.costs, b), s) for b in fits]
    return [_plan(graph, policy, s.budgets[0], a.bits, s, a.sensitivity)
            for a in frontier(s.choices, limit)]


@dataclass(frozen=True)
class _Setup:
    budgets: list[Budget]
    bits: tuple[int, ...]
    costs: dict[str, dict[int, float]]
    fixed: float
    params: int
    x: Any
    choices: dict | None  # None for 'uniform'


def _setup(graph: FGraph, calibration: Any, policy: str, budgets: Sequence[str | Budget],
           metric: str | None, candidate_bits: Iterable[int], arch: Any,
           scoring: tuple[Any, Any] | None, config: QuantConfig | None = None) -> _Setup:
    """Budgets checked (one metric, each reachable), costs per layer and width, and the
    policy's (sensitivity, cost) choices."""
    budgets = [b if isinstance(b, Budget) else parse_budget(b) for b in budgets]
    if len({b.metric for b in budgets}) > 1:
        raise ConfigError(f"budgets {', '.join(map(str, budgets))} mix metrics; give one kind")
    for b in budgets:
        _check_policy(policy, b, metric)
    _check_config(config)
    bits = check_bits(candidate_bits)
    costs, fixed = layer_costs(graph, calibration, budgets[0].metric, bits, arch, config=config)
    params = weight_params(graph)
    least = _least_cost(costs, bits, policy)
    for b in budgets:
        if least > b.base(params) - fixed:  # before the (slow) sensitivities
            raise ConfigError(f"budget {b} cannot be met: the minimum with policy {policy} and "
                              f"bits {','.join(map(str, bits))} is "
                              f"{b.key}={b.in_key_units(least + fixed, params):.4g}")
    x, labels = scoring if scoring is not None else (calibration, None)
    choices = (None if policy == "uniform" else make_choices(
        _scores(graph, policy, x, labels, bits, config, calibration), costs))
    return _Setup(budgets, bits, costs, fixed, params, x, choices)


def _scores(graph: FGraph, policy: str, x: Any, labels: Any, bits: tuple[int, ...],
            config: QuantConfig | None, calibration: Any,
            context: Mapping[str, int] | None = None) -> dict[str, dict[int, float]]:
    """The policy's sensitivities with ``config``'s clipping; 'measured' alone also sees its
    activations (calibrated on ``calibration``)."""
    kw: dict[str, Any] = {"clipping": _clipping(config)}
    if policy == "measured":
        kw.update(context=context, activations=config, act_calibration=calibration)
    return METHODS[policy](graph, x, labels, bits=bits, **kw)


def _clipping(config: QuantConfig | None) -> str:
    return "auto" if config is None else config.weight_clipping


def _check_config(config: QuantConfig | None) -> None:
    if config is not None and not isinstance(config, QuantConfig):
        raise ConfigError(f"config = {config!r} must be a QuantConfig (the activation settings) "
                          "or None (INT8 activations)")


def _plan(graph: FGraph, policy: str, budget: Budget, chosen: dict[str, int], s: _Setup,
          sensitivity: float | None = None) -> Plan:
    cost = s.fixed + sum(s.costs[name][w] for name, w in chosen.items())
    return Plan(policy, budget, chosen, cost, avg_weight_bits(graph, chosen), sensitivity)


def refine_measured(graph: FGraph, x: Any, bits: tuple[int, ...],
                    costs: Mapping[str, Mapping[int, float]], limit: float,
                    first: Mapping[str, int], rounds: int = MEASURED_ROUNDS, *,
                    config: QuantConfig | None = None, calibration: Any = None) -> dict[str, int]:
    """Per-layer losses do not add: re-measure each layer's loss with the others at the current
    allocation and allocate again (within the same limit). The new allocation replaces the
    current one only when its measured loss is lower by more than MOVE_SIGMAS standard errors
    of the per-sample differences (the same samples, paired): validation noise must not pick
    a cheaper allocation that is no better. Stops at the first move refused or after
    ``rounds``. ``config``: activations fake-quantized as it says, calibrated on
    ``calibration`` (default ``x``), and its weight clipping; None: float activations."""
    _check_config(config)
    calibration = x if calibration is None else calibration

    def losses_at(widths: Mapping[str, int]) -> np.ndarray:
        return measured_losses(graph, x, widths, _clipping(config), activations=config,
                               act_calibration=calibration)

    current = dict(first)
    losses = losses_at(current)
    for _ in range(rounds):
        scores = _scores(graph, "measured", x, None, bits, config, calibration, current)
        candidate = allocate(make_choices(scores, costs), limit).bits
        if candidate == current:
            break
        new = losses_at(candidate)
        diff = new - losses
        if diff.mean() + MOVE_SIGMAS * diff.std(ddof=1) / math.sqrt(len(diff)) >= 0:
            break
        current, losses = candidate, new
    return current


def _check_policy(policy: str, budget: Budget, metric: str | None) -> None:
    if policy not in POLICIES:
        raise ConfigError(f"policy {policy!r} is unknown: allowed {', '.join(POLICIES)}")
    if metric is not None and metric not in METRICS:
        raise ConfigError(f"metric {metric!r} is unknown: allowed {', '.join(METRICS)}")
    if metric is not None and metric != budget.metric:
        raise ConfigError(f"budget {budget} is a {budget.metric} budget, not {metric}; "
                          f"use a {metric} key ({EXAMPLE})")


def _least_cost(costs: Mapping[str, Mapping[int, float]], bits: tuple[int, ...],
                policy: str) -> float:
    """The cheapest total the policy can reach: one width for all layers under 'uniform'."""
    if policy == "uniform":
        return min(sum(c[b] for c in costs.values()) for b in bits)
    return sum(min(c.values()) for c in costs.values())


def _uniform(costs: Mapping[str, Mapping[int, float]], bits: tuple[int, ...],
             limit: float) -> dict[str, int]:
    """The widest single width whose total cost fits (the caller checked that one does)."""
    fits = [b for b in bits if sum(c[b] for c in costs.values()) <= limit]
    return dict.fromkeys(costs, max(fits))


def weight_params(graph: FGraph) -> int:
    return sum(int(n.params["weight"].size) for n in graph.weighted_nodes())


def avg_weight_bits(graph: Any, bits: Mapping[str, int]) -> float:
    """Mean bits per weight parameter of ``bits`` on an FGraph or QGraph; 0.0 for a graph with
    no weights (a model of tables and pools only: no NaN in the JSON record)."""
    nodes = graph.weighted_nodes()
    sizes = np.array([n.params["weight"].size for n in nodes], dtype=np.float64)
    if not sizes.sum():
        return 0.0
    return float(sizes @ np.array([bits[n.name] for n in nodes]) / sizes.sum())


def layer_costs(graph: FGraph, calibration: Any, metric: str, bits: tuple[int, ...],
                arch: Any = None, *, config: QuantConfig | None = None,
                ) -> tuple[dict[str, dict[int, float]], float]:
    """({layer: {bits: cost}}, constant cost of the rest), in bits, pJ or cycles; ``config``
    (activation settings) matters to the simulated metrics only."""
    if metric == "size":
        return {n.name: {b: float(n.params["weight"].size * b) for b in bits}
                for n in graph.weighted_nodes()}, 0.0
    return simulated_costs(graph, calibration, metric, bits, arch, config=config)


def simulated_costs(graph: FGraph, calibration: Any, metric: str, bits: tuple[int, ...],
                    arch: Any = None, *, config: QuantConfig | None = None,
                    ) -> tuple[dict[str, dict[int, float]], float]:
    """Per layer and width, the energy (pJ) or cycles of its kernel with the model quantized
    uniformly at that width and ``config``'s activations and clipping (its weight bits and
    formats are ignored; None: QuantConfig(), INT8 activations), compiled for ``arch`` and
    simulated on the first calibration sample; and the constant of the weightless kernels."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.quant import quantize_graph
    from qasic.sim import simulate

    arch = arch or default_arch()
    base = QuantConfig() if config is None else config
    weighted = {n.name for n in graph.weighted_nodes()}
    costs: dict[str, dict[int, float]] = {name: {} for name in weighted}
    fixed = 0.0
    for b in bits:
        at_b = dataclasses.replace(base, weight_bits=b, weight_format=None)
        program = compile_graph(quantize_graph(graph, calibration, at_b), arch)
        sim = simulate(program, arch, np.asarray(calibration)[:1])
        rest = 0.0
        for info, layer in zip(program.layers, sim.layers):
            value = float(layer["cycles"] if metric == "cycles" else layer["energy_pj"]["total"])
            owners = [n for n in info["nodes"] if n in weighted]
            if len(owners) > 1:
                raise ConfigError(f"kernel {info['name']} holds layers {', '.join(owners)}; "
                                  "per-layer costs need one weighted layer per kernel")
            if owners:
                costs[owners[0]][b] = value
            else:
                rest += value
        fixed = max(fixed, rest)  # width-independent in principle; never under-count
    return {n.name: costs[n.name] for n in graph.weighted_nodes()}, fixed
