"""benchmarks/quant_study.py: reading the study's fronts against the random assignments."""

import pytest

from benchmarks.quant_study import dominance, front_tests, sign_test, summary


def record(policy, accuracy, budget, model="m", act="int8", name=None):
    return {"model": model, "point": name or f"{policy}{accuracy}@{budget}/{act}",
            "policy": policy, "activation_format": act, "budget": budget,
            "avg_weight_bits": budget - 0.1, "accuracy": accuracy, "test_loss": 0.1,
            "misclassified": []}


def randoms(budget, accuracies, **kw):
    return [record("random", a, budget, name=f"r{budget}-{i}", **kw)
            for i, a in enumerate(accuracies)]


def test_a_front_counts_wins_ties_and_losses_over_every_budget():
    records = [record("lim", 0.90, 3.0), *randoms(3.0, [0.80, 0.90, 0.95]),
               record("lim", 0.95, 4.0), *randoms(4.0, [0.90, 0.91, 0.92, 0.96]),
               record("hawq", 0.99, 4.0)]
    fronts = {f["policy"]: f for f in front_tests(dominance(records))}
    lim = fronts["lim"]
    assert (lim["wins"], lim["ties"], lim["losses"]) == (4, 1, 2)
    assert lim["p_value"] == pytest.approx(sign_test(4, 6)) and lim["p_value"] > 0.05
    assert lim["budgets_below_median"] == [] and lim["dominates"] is False  # too few draws
    hawq = fronts["hawq"]
    assert (hawq["wins"], hawq["ties"], hawq["losses"]) == (4, 0, 0)
    assert hawq["p_value"] == 1 / 16 and hawq["dominates"] is False  # 4 of 4 is p = 0.0625


def test_a_front_dominates_with_significant_wins_and_no_budget_below_the_median():
    good = [record("zd", 0.95, b) for b in (2.0, 3.0)]
    records = [*good, *randoms(2.0, [0.5, 0.6, 0.7, 0.96, 0.97]),
               *randoms(3.0, [0.6, 0.7, 0.8, 0.9, 0.94, 0.99])]
    [front] = front_tests(dominance(records))
    assert (front["wins"], front["losses"]) == (8, 3)
    assert front["p_value"] == pytest.approx(sign_test(8, 11))  # 0.11: not enough
    assert front["dominates"] is False
    many = [*good, *randoms(2.0, [0.5] * 9 + [0.97]), *randoms(3.0, [0.6] * 9 + [0.99])]
    [front] = front_tests(dominance(many))
    assert (front["wins"], front["losses"]) == (18, 2) and front["p_value"] < 0.001
    assert front["dominates"] is True
    # one budget where most random points beat the policy: not dominating, however many wins
    below = [*many, record("zd", 0.7, 4.0), *randoms(4.0, [0.6, 0.8, 0.9])]
    [front] = front_tests(dominance(below))
    assert front["budgets_below_median"] == [4.0] and front["p_value"] < 0.01
    assert front["dominates"] is False


def test_fronts_are_kept_apart_by_model_and_activation_format():
    records = [record("hawq", 0.9, 3.0), *randoms(3.0, [0.8] * 6),
               record("hawq", 0.5, 3.0, act="int4"), *randoms(3.0, [0.8] * 6, act="int4")]
    fronts = {f["activation_format"]: f for f in front_tests(dominance(records))}
    assert (fronts["int8"]["wins"], fronts["int8"]["losses"]) == (6, 0)
    assert (fronts["int4"]["wins"], fronts["int4"]["losses"]) == (0, 6)
    assert fronts["int8"]["dominates"] and not fronts["int4"]["dominates"]
    text = summary(dominance(records))
    assert "fronts that dominate the random assignments (p < 0.05, no budget below the " \
           "median): 1 of 2" in text
