"""Bit-allocation policies on the default digits CNN, scored on the golden reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qasic.cli import main
from qasic.errors import ConfigError
from qasic.policies import (
    avg_weight_bits,
    choose_bits,
    layer_costs,
    parse_budget,
    plan_bits,
    weight_params,
)
from qasic.quant import QuantConfig, quantize, run_dequantized
from qasic.quant.allocate import make_choices, pareto_set
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
    """Cross-entropy of the golden reference on the test split: with 360 test samples, accuracy
    moves in steps of 0.28% and several assignments tie or differ by one sample."""
    trained, graph = cnn
    scores = METHODS[method](graph, trained.calibration)
    costs, _ = layer_costs(graph, trained.calibration, "size", CANDIDATE_BITS)
    params = weight_params(graph)
    plans = pareto_set(make_choices(scores, costs), [b * params for b in AVG_BITS])
    for avg, plan in zip(AVG_BITS, plans):
        assert avg_weight_bits(graph, plan.bits) <= avg
        randoms = [score(b)[1] for b in random_assignments(graph, avg)]
        assert score(plan.bits)[1] <= np.median(randoms), (avg, plan.bits)


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


def test_policy_and_metric_errors(cnn):
    trained, graph = cnn
    with pytest.raises(ConfigError, match="policy 'greedy' is unknown: allowed uniform, hawq"):
        plan_bits(graph, trained.calibration, "greedy", "avg_bits=3")
    with pytest.raises(ConfigError, match="avg_bits=3 is a size budget, not energy"):
        plan_bits(graph, trained.calibration, "hawq", "avg_bits=3", metric="energy")
    with pytest.raises(ConfigError, match="candidate bits"):
        plan_bits(graph, trained.calibration, "hawq", "avg_bits=3", candidate_bits=(1, 4))


def test_cli_policy_end_to_end(tmp_path, capsys):
    assert main(["quantize", "--policy", "zd", "--budget", "avg_bits=3", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["policy"] == "zd" and record["budget"] == "avg_bits=3"
    assert set(record["weight_bits"]) == {"conv1", "conv2", "fc"}
    assert record["avg_weight_bits"] <= 3 and record["accuracy"] > 0.9
    out = tmp_path / "p.qasic"
    assert main(["compile", "--policy", "uniform", "--budget", "energy_nj=2300",
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digits_cnn uniform energy_nj=2300: conv1=2 conv2=2 fc=2 ")
    assert "accuracy" in lines[0] and out.exists()


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
