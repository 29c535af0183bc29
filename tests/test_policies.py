"""Bit-allocation policies on the default digits CNN, scored on the golden reference."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from qasic.cli import main
from qasic.errors import ConfigError
from qasic.policies import (
    avg_weight_bits,
    choose_bits,
    layer_costs,
    pareto_plans,
    parse_budget,
    plan_bits,
    plan_budgets,
    weight_params,
)
from qasic.quant import QuantConfig, quantize, run_dequantized
from qasic.quant.allocate import make_choices
from qasic.quant.sensitivity import CANDIDATE_BITS, METHODS, cross_entropy

AVG_BITS = (2.5, 3.0, 3.5, 4.0)  # size budgets of the random-baseline comparison


@pytest.fixture(scope="module")
def cnn():
    from qasic.models import get_model
    from qasic.quant import capture

    trained = get_model("digits_cnn")
    return trained, capture(trained.module, trained.example_input, "digits_cnn")


@pytest.fixture(scope="module")
def score(cnn):
    """bits (dict or int), clipping -> (test accuracy, test cross-entropy), golden reference."""
    trained, graph = cnn
    cache = {}

    def get(bits, clipping="auto"):
        key = (json.dumps(bits, sort_keys=True), clipping)
        if key not in cache:
            g = quantize(graph, None, trained.calibration, QuantConfig(bits,
                                                                       weight_clipping=clipping))
            logits = run_dequantized(g, trained.test_inputs)
            cache[key] = (float(np.mean(logits.argmax(axis=1) == trained.test_labels)),
                          cross_entropy(logits, trained.test_labels))
        return cache[key]

    return get


def random_assignments(graph, avg_bits, n=10, seed=0):
    """n uniformly random per-layer widths whose size fits avg_bits (rejection sampling)."""
    rng = np.random.default_rng(seed)
    names = [node.name for node in graph.weighted_nodes()]
    out = []
    while len(out) < n:
        bits = {name: int(b) for name, b in zip(names, rng.choice(CANDIDATE_BITS, len(names)))}
        if avg_weight_bits(graph, bits) <= avg_bits:
            out.append(bits)
    return out


def test_hawq_at_three_bits_keeps_accuracy(cnn, score):
    trained, graph = cnn
    bits = choose_bits(trained, "hawq", "avg_bits=3", "size")
    assert avg_weight_bits(graph, bits) <= 3.0
    acc, _ = score(bits)
    naive_w2, _ = score(2, "minmax")
    assert acc >= 0.95
    assert naive_w2 <= acc - 0.15  # round-to-nearest W2 without clipping breaks the model
    median = np.median([score(b)[0] for b in random_assignments(graph, 3.0)])
    assert acc >= median


@pytest.mark.parametrize("method", list(METHODS))
def test_each_method_beats_the_median_random_assignment(cnn, score, method):
    """Cross-entropy of the golden reference on the test split (with 360 test samples, accuracy
    moves in steps of 0.28% and several assignments tie or differ by one sample), the policy
    scored on the validation split as ``choose_bits`` does, against every assignment in the
    study's window below each budget."""
    from benchmarks.quant_study import random_at_budget

    trained, graph = cnn
    plans = plan_budgets(graph, trained.calibration, method,
                         [f"avg_bits={b}" for b in AVG_BITS], scoring=trained.scoring_data())
    sizes = [n.params["weight"].size for n in graph.weighted_nodes()]
    for avg, plan in zip(AVG_BITS, plans):
        assert avg_weight_bits(graph, plan.bits) <= avg
        randoms = [score(dict(zip(plan.bits, map(int, row))))[1]
                   for row in random_at_budget(sizes, avg, n=100)]
        assert score(plan.bits)[1] <= np.median(randoms), (avg, plan.bits)


def test_measured_refines_around_its_allocation(cnn):
    """Each round re-measures around the current allocation; a move must lower the measured
    loss by more than MOVE_SIGMAS standard errors, and stays within the budget."""
    from qasic.policies import MOVE_SIGMAS, refine_measured
    from qasic.quant.allocate import allocate
    from qasic.quant.sensitivity import measured_loss, measured_losses

    trained, graph = cnn
    x, labels = trained.scoring_data()
    assert len(x) == 256 and labels is not None  # digits' validation split, true labels
    costs, _ = layer_costs(graph, trained.calibration, "size", CANDIDATE_BITS)
    limit = 3.0 * weight_params(graph)
    first = allocate(make_choices(METHODS["measured"](graph, x, labels), costs), limit).bits
    best = refine_measured(graph, x, CANDIDATE_BITS, costs, limit, first)
    assert sum(costs[k][b] for k, b in best.items()) <= limit
    assert measured_loss(graph, x, best) <= measured_loss(graph, x, first)
    if best != first:
        d = measured_losses(graph, x, best) - measured_losses(graph, x, first)
        assert d.mean() + MOVE_SIGMAS * d.std(ddof=1) / np.sqrt(len(d)) < 0
    assert refine_measured(graph, x, CANDIDATE_BITS, costs, limit, first,
                           rounds=0) == first
    plan = plan_bits(graph, trained.calibration, "measured", "avg_bits=3",
                     scoring=(x, labels))
    assert plan.bits == best



def test_hawq_trace_of_a_small_layer_next_to_a_large_one():
    """Probes over all layers at once bury the 6-weight layer's trace under cross-layer terms
    with the 3,600 others (30 probes: 0.05 to 0.64 for an exact 0.106); per-layer probes don't."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    from qasic.quant import capture
    from qasic.quant.sensitivity import hessian_traces

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 300), nn.ReLU(),
                          nn.Linear(300, 10)).eval()
    x, y = torch.randn(64, 3), torch.randint(0, 10, (64,))
    rest = [(m.weight.double(), m.bias.double()) for m in (model[2], model[4])]

    def loss(w):
        h = F.relu(F.linear(x.double(), w, model[0].bias.double()))
        return F.cross_entropy(F.linear(F.relu(F.linear(h, *rest[0])), *rest[1]), y)

    exact = float(torch.autograd.functional.hessian(loss, model[0].weight.double())
                  .reshape(6, 6).diagonal().sum())
    graph = capture(model, x[:1])
    first = graph.weighted_nodes()[0].name
    estimates = [hessian_traces(graph, x, y.numpy(), n_iter=30, seed=s)[first] for s in range(5)]
    np.testing.assert_allclose(estimates, exact, rtol=0.1)

def test_uniform_policy_and_simulated_metrics(cnn):
    trained, graph = cnn
    calib = trained.calibration
    assert plan_bits(graph, calib, "uniform", "avg_bits=3.9").bits == dict.fromkeys(
        ["conv1", "conv2", "fc"], 3)
    energy, fixed = layer_costs(graph, calib, "energy", (2, 8))
    assert all(c[2] < c[8] for c in energy.values()) and fixed == 0.0  # pool fused into conv2
    total8 = sum(c[8] for c in energy.values())
    plan = plan_bits(graph, calib, "lim", f"energy_pj={total8 * 0.9}", candidate_bits=(2, 8))
    assert plan.cost <= total8 * 0.9 and set(plan.bits.values()) == {2, 8}
    with pytest.raises(ConfigError, match=r"^budget cycles=10 cannot be met: the minimum with "
                                          r"policy zd and bits 2,8 is cycles=\d+$"):
        plan_bits(graph, calib, "zd", "cycles=10", candidate_bits=(2, 8))


def test_budget_syntax():
    assert parse_budget("avg_bits=3").base(100) == 300
    assert parse_budget(" size_kib=4").base(1) == 4 * 8192
    assert parse_budget("energy_nj=2.5").base(1) == 2500
    assert str(parse_budget("cycles=7e3")) == "cycles=7000"
    for bad, why in [("avg_bits", "expected KEY=VALUE"), ("bits=3", "expected KEY=VALUE"),
                     ("avg_bits=-1", "not a positive number"), ("size_kib=nan", "not a positive"),
                     ("energy_nj=", "not a positive number")]:
        with pytest.raises(ConfigError, match=why) as e:
            parse_budget(bad)
        assert "\n" not in str(e.value) and repr(bad) in str(e.value)


@pytest.mark.parametrize("policy", ["hawq", "measured", "uniform"])
def test_pareto_set_runs_up_to_the_budget_and_holds_the_plan(cnn, policy):
    """By increasing cost, strictly decreasing predicted sensitivity; the allocator's choice for
    the budget is its last point (for 'measured', before the refinement around it)."""
    trained, graph = cnn
    scoring = trained.scoring_data()
    plans = pareto_plans(graph, trained.calibration, policy, "avg_bits=3.5", scoring=scoring)
    costs = [p.cost for p in plans]
    assert costs == sorted(costs) and len(set(costs)) == len(costs)
    assert all(p.avg_weight_bits <= 3.5 for p in plans)
    if policy == "uniform":
        assert [set(p.bits.values()) for p in plans] == [{2}, {3}]
        return
    sens = [p.sensitivity for p in plans]
    assert all(a > b for a, b in itertools.pairwise(sens))
    assert plans[0].bits == dict.fromkeys(["conv1", "conv2", "fc"], 2)  # the cheapest
    if policy == "hawq":
        assert plans[-1].bits == plan_bits(graph, trained.calibration, policy, "avg_bits=3.5",
                                           scoring=scoring).bits


def test_policy_and_metric_errors(cnn):
    trained, graph = cnn
    with pytest.raises(ConfigError, match="policy 'greedy' is unknown: allowed uniform, hawq"):
        plan_bits(graph, trained.calibration, "greedy", "avg_bits=3")
    with pytest.raises(ConfigError, match="avg_bits=3 is a size budget, not energy"):
        plan_bits(graph, trained.calibration, "hawq", "avg_bits=3", metric="energy")
    with pytest.raises(ConfigError, match="candidate bits"):
        plan_bits(graph, trained.calibration, "hawq", "avg_bits=3", candidate_bits=(1, 4))
    with pytest.raises(ConfigError, match=r"^budgets avg_bits=3, cycles=7000 mix metrics; give "
                                          r"one kind$"):
        plan_budgets(graph, trained.calibration, "hawq", ["avg_bits=3", "cycles=7000"])


def test_cli_policy_end_to_end(tmp_path, capsys):
    assert main(["quantize", "--policy", "zd", "--budget", "avg_bits=3", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["policy"] == "zd" and record["budget"] == "avg_bits=3"
    assert set(record["weight_bits"]) == {"conv1", "conv2", "fc"}
    assert record["avg_weight_bits"] <= 3 and record["accuracy"] > 0.9
    out = tmp_path / "p.qasic"
    # all-2-bit weights cost 2,145 nJ (leakage of the whole accelerator included, docs/area.md),
    # 3-bit ones more than the budget (2,200-2,250 nJ)
    assert main(["compile", "--policy", "uniform", "--budget", "energy_nj=2170",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digits_cnn uniform energy_nj=2170: conv1=2 conv2=2 fc=2 ")
    assert "accuracy" in lines[0] and out.exists()


def test_cli_pareto_set(capsys):
    assert main(["quantize", "--policy", "zd", "--budget", "avg_bits=3", "--pareto",
                 "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "qasic.quantize.pareto/1" and doc["policy"] == "zd"
    records = doc["points"]
    assert len(records) > 3 and all(r["avg_weight_bits"] <= 3 for r in records)
    assert records[0]["weight_bits"] == {"conv1": 2, "conv2": 2, "fc": 2}
    assert all(0.5 < r["accuracy"] <= 1 and r["predicted_sensitivity"] >= 0 for r in records)
    assert main(["quantize", "--pareto"]) == 1
    assert "--pareto needs --policy and --budget" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--policy", "hawq", "--budget", "avg_bits=three"], "'three' is not a positive number"),
    (["--policy", "hawq", "--budget", "watts=3"], "expected KEY=VALUE with KEY one of avg_bits"),
    (["--policy", "hawq"], "--policy hawq needs --budget"),
    (["--policy", "best", "--budget", "avg_bits=3"], "--policy 'best' is unknown"),
    (["--budget", "avg_bits=3"], "--budget needs --policy"),
    (["--policy", "hawq", "--budget", "avg_bits=3", "--bits", "4"], "not both"),
])
@pytest.mark.parametrize("command", ["quantize", "compile"])
def test_cli_bad_policy_arguments(capsys, command, argv, message):
    extra = ["--out", "unused.qasic"] if command == "compile" else []
    assert main([command, *argv, *extra]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qasic: error: ") and message in err[0]


# --- the activation settings the model runs with (config=) --------------------------------

def test_simulated_costs_are_priced_with_the_activations(cnn):
    """Packed A4 activations move half the bytes and multiply on narrower operands: every layer
    at every width costs less energy than at A8 (measured 4% less for fc at W8, whose weights
    dominate, to 34% for conv2 at W2); the config's weight settings are ignored, None is A8."""
    from qasic.policies import simulated_costs

    trained, graph = cnn
    calib, bits = trained.calibration, (2, 8)
    e8 = simulated_costs(graph, calib, "energy", bits)
    assert simulated_costs(graph, calib, "energy", bits, config=QuantConfig()) == e8
    a4 = QuantConfig(weight_bits={"conv1": 2}, weight_format="fp4_e2m1", activation_bits=4)
    e4 = simulated_costs(graph, calib, "energy", bits, config=a4)
    assert e4 == layer_costs(graph, calib, "energy", bits, config=QuantConfig(activation_bits=4))
    for name in e8[0]:
        assert e4[0][name][2] < e4[0][name][8]  # weight bits still set the price
        for b in bits:
            assert e4[0][name][b] < 0.98 * e8[0][name][b], (name, b)
    # a budget below the cheapest A8 plan is met with A4 activations (5 % below: leakage, which
    # activation bits barely change, is about half of this small model's energy)
    budget = f"energy_pj={0.95 * sum(c[2] for c in e8[0].values()):.0f}"
    with pytest.raises(ConfigError, match="cannot be met"):
        plan_bits(graph, calib, "uniform", budget, candidate_bits=bits)
    plan = plan_bits(graph, calib, "uniform", budget, candidate_bits=bits,
                     config=QuantConfig(activation_bits=4))
    assert plan.bits == dict.fromkeys(e8[0], 2)


def test_the_activations_reach_measured_and_the_clipping_every_method(cnn, monkeypatch):
    import qasic.policies as P

    trained, graph = cnn
    calib, scoring = trained.calibration, trained.scoring_data()
    calls = []

    def spy(name, real):
        def wrapped(*args, **kw):
            calls.append((name, kw))
            return real(*args, **kw)
        return wrapped

    for name in ("measured", "zd"):
        monkeypatch.setitem(METHODS, name, spy(name, METHODS[name]))
    monkeypatch.setattr(P, "measured_losses", spy("losses", P.measured_losses))
    a4 = QuantConfig(activation_bits=4, activation_observer="percentile", weight_clipping="mse")
    plan_bits(graph, calib, "measured", "avg_bits=3", scoring=scoring, config=a4)
    assert [n for n, _ in calls[:3]] == ["measured", "losses", "measured"]  # 2nd: refinement
    assert calls[2][1]["context"] is not None
    for name, kw in calls:
        assert kw["activations"] is a4 and kw["act_calibration"] is calib, name
    assert all(kw["clipping"] == "mse" for name, kw in calls if name == "measured")
    calls.clear()
    pareto_plans(graph, calib, "measured", "avg_bits=3", scoring=scoring, config=a4)
    plan_budgets(graph, calib, "zd", ["avg_bits=3"], scoring=scoring, config=a4)
    assert calls[0][1]["activations"] is a4 and calls[0][1]["act_calibration"] is calib
    assert calls[1] == ("zd", {"bits": CANDIDATE_BITS, "clipping": "mse"})  # float activations
    calls.clear()
    plan_bits(graph, calib, "measured", "avg_bits=3", scoring=scoring)  # None: as before
    assert all(kw.get("activations") is None for _, kw in calls)
    with pytest.raises(ConfigError, match=r"^config = 8 must be a QuantConfig"):
        plan_bits(graph, calib, "zd", "avg_bits=3", config=8)


def test_a_graph_without_weights_averages_zero_bits_not_nan():
    """A model of tables only (relu, a scale): its record's
    avg_weight_bits is 0.0, not a NaN that json.dumps would write as an invalid token."""
    import torch

    from qasic.quant import capture

    class NoWeights(torch.nn.Module):
        def forward(self, x):
            return torch.relu(x) * 2

    graph = capture(NoWeights().eval(), torch.zeros(1, 4))
    assert graph.weighted_nodes() == []
    with np.errstate(all="raise"):
        assert avg_weight_bits(graph, {}) == 0.0
