"""benchmarks/quant_study.py: the random assignments at equal budget, and reading each policy's
points and fronts against them."""

import numpy as np
import pytest

from benchmarks.quant_study import (
    BUDGET_WINDOW,
    dominance,
    front_tests,
    holm_rejections,
    random_at_budget,
    sign_test,
    summary,
)


def study_record(policy, accuracy, budget=3.0, avg=None, act="int8", model="m", wrong=(),
                 loss=0.1, name=None):
    return {"model": model, "point": name or f"{policy}{accuracy}@{budget}/{act}",
            "policy": policy, "activation_format": act, "budget": budget,
            "avg_weight_bits": budget - 0.1 if avg is None else avg, "accuracy": accuracy,
            "test_loss": loss, "misclassified": list(wrong)}


def randoms(budget, accuracies, **kw):
    return [study_record("random", a, budget, name=f"r{budget}-{i}", **kw)
            for i, a in enumerate(accuracies)]


def test_a_front_counts_wins_ties_and_losses_over_every_budget():
    records = [study_record("lim", 0.90, 3.0), *randoms(3.0, [0.80, 0.90, 0.95]),
               study_record("lim", 0.95, 4.0), *randoms(4.0, [0.90, 0.91, 0.92, 0.96]),
               study_record("hawq", 0.99, 4.0)]
    fronts = {f["policy"]: f for f in front_tests(dominance(records))}
    lim = fronts["lim"]
    assert (lim["wins"], lim["ties"], lim["losses"]) == (4, 1, 2)
    assert lim["p_value"] == pytest.approx(sign_test(4, 6)) and lim["p_value"] > 0.05
    assert lim["budgets_below_median"] == [] and lim["dominates"] is False  # too few draws
    hawq = fronts["hawq"]
    assert (hawq["wins"], hawq["ties"], hawq["losses"]) == (4, 0, 0)
    assert hawq["p_value"] == 1 / 16 and hawq["dominates"] is False  # 4 of 4 is p = 0.0625


def test_a_front_dominates_with_significant_wins_and_no_budget_below_the_median():
    good = [study_record("zd", 0.95, b) for b in (2.0, 3.0)]
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
    below = [*many, study_record("zd", 0.7, 4.0), *randoms(4.0, [0.6, 0.8, 0.9])]
    [front] = front_tests(dominance(below))
    assert front["budgets_below_median"] == [4.0] and front["p_value"] < 0.01
    assert front["dominates"] is False


def test_fronts_are_kept_apart_by_model_and_activation_format():
    records = [study_record("hawq", 0.9, 3.0), *randoms(3.0, [0.8] * 6),
               study_record("hawq", 0.5, 3.0, act="int4"), *randoms(3.0, [0.8] * 6, act="int4")]
    fronts = {f["activation_format"]: f for f in front_tests(dominance(records))}
    assert (fronts["int8"]["wins"], fronts["int8"]["losses"]) == (6, 0)
    assert (fronts["int4"]["wins"], fronts["int4"]["losses"]) == (0, 6)
    assert fronts["int8"]["dominates"] and not fronts["int4"]["dominates"]
    text = summary(dominance(records))
    assert "fronts that dominate the random assignments (p < 0.05, no budget below the " \
           "median): 1 of 2" in text


# --- each policy point against the random points of its cell -------------------------------

def test_dominance_counts_only_randoms_of_the_same_model_format_and_budget():
    records = [
        study_record("hawq", 0.95, loss=0.2),
        study_record("random", 0.94, loss=0.3), study_record("random", 0.95, loss=0.1),
        study_record("random", 0.99, budget=4.0),             # another budget
        study_record("random", 0.99, act="int4"),             # another activation format
        study_record("random", 0.99, model="other"),          # another model
        study_record("uniform", 0.99, budget=None, avg=3.0),  # not a random assignment
    ]
    [entry] = dominance(records)
    assert (entry["randoms"], entry["dominated"], entry["fraction"]) == (2, 2, 1.0)
    assert entry["dominates"] is True and entry["margin"] == 0.0 and entry["beaten_by"] == []
    assert entry["loss_dominated"] == 1  # ties on accuracy, not on loss


def test_dominance_reports_a_loss_with_its_sign_test():
    policy = study_record("lim", 0.90, wrong=range(10))
    beats = study_record("random", 0.94, wrong=range(4, 8), name="r0")  # 6 vs 0 discordant
    loses = study_record("random", 0.80, wrong=range(20), name="r1")
    [entry] = dominance([policy, beats, loses])
    assert entry["dominates"] is False and entry["dominated"] == 1 and entry["fraction"] == 0.5
    assert entry["margin"] == pytest.approx(-0.04)
    assert entry["beaten_by"] == [{"point": "r0", "accuracy": 0.94, "images": 6,
                                   "p_value": 1 / 64}]
    assert sign_test(0, 5) == 1.0 and sign_test(2, 3) == 0.5 and sign_test(3, 3) == 1 / 8
    assert dominance([policy])[0]["dominates"] is None  # no random point at that budget


def test_statistical_dominance_needs_the_median_and_no_significant_loss():
    # Holm over m = 3: 0.01 <= 0.05/3, then 0.03 > 0.05/2 stops it
    assert holm_rejections([0.03, 0.01], 3) == 1
    assert holm_rejections([0.02, 0.01], 3) == 2 and holm_rejections([0.02], 1) == 1
    assert holm_rejections([0.02], 3) == 0 and holm_rejections([], 5) == 0
    policy = study_record("zd", 0.90, wrong=range(10))
    lucky = study_record("random", 0.91, wrong=range(1, 10), name="r0")  # one image: p = 0.5
    worse = [study_record("random", 0.80, wrong=range(20), name=f"w{i}") for i in range(2)]
    [entry] = dominance([policy, lucky, *worse])
    assert entry["dominates"] is False and entry["at_least_median"] is True
    assert entry["significant_losses"] == 0 and entry["dominates_statistically"] is True
    # six images out of six discordant: p = 1/64 < 0.05/3 -> significant
    strong = study_record("random", 0.96, wrong=range(4, 8), name="r1")
    [entry] = dominance([policy, strong, *worse])
    assert entry["significant_losses"] == 1 and entry["dominates_statistically"] is False
    # below the median of the random points, however small the leads
    [entry] = dominance([policy, lucky, study_record("random", 0.91, wrong=range(1, 10),
                                                     name="r2"), worse[0]])
    assert entry["at_least_median"] is False and entry["dominates_statistically"] is False


def test_dominance_refuses_a_point_over_its_budget():
    with pytest.raises(ValueError, match=r"m r: 3\.1000 average bits exceed its budget 3"):
        dominance([study_record("hawq", 0.9), study_record("random", 0.9, avg=3.1, name="r")])


def test_random_assignments_sit_in_the_budget_window():
    sizes = [144, 4608, 5120]  # digits_cnn: only a few assignments average 2.75..3 bits
    rows = random_at_budget(sizes, 3.0, n=100)
    avg = rows @ sizes / sum(sizes)
    assert np.all(avg <= 3.0) and np.all(avg > 3.0 - BUDGET_WINDOW)
    assert len(rows) == len(np.unique(rows, axis=0)) == 6  # every one of them, once
    deep = [72, 1152, 4608, 13824, 27648, 2048, 320]
    rows = random_at_budget(deep, 2.5, n=10, seed=1)
    assert len(rows) == 10 and np.array_equal(rows, random_at_budget(deep, 2.5, n=10, seed=1))
    assert np.all(np.abs(rows @ deep / sum(deep) - 2.375) <= 0.125)


def test_a_run_writes_the_fronts_beside_the_records(tmp_path, monkeypatch):
    import json

    import benchmarks.quant_study as study

    records = [{**r, "bit_exact": True}
               for r in (study_record("hawq", 0.9, 3.0), *randoms(3.0, [0.8] * 6))]
    monkeypatch.setattr(study, "study", lambda model, acts, log: records)
    monkeypatch.setattr("qasic.reports.study.study_figure", lambda recs: None)
    monkeypatch.setattr("qasic.reports.plots.save_png", lambda fig, path: None)
    assert study.main(["--out", str(tmp_path), "--models", "m"]) == 0
    [front] = json.loads((tmp_path / "quant_study_fronts.json").read_text())
    assert (front["policy"], front["wins"], front["losses"]) == ("hawq", 6, 0)
    assert front["p_value"] == 1 / 64 and front["dominates"] is True
