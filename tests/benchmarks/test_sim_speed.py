"""benchmarks.sim_speed's fits and summary (the measurements themselves are the benchmark's)."""

from __future__ import annotations

import pytest

from benchmarks.sim_speed import power_law, summary


@pytest.mark.parametrize("exponent", [1.0, 0.5, 2.0])
def test_the_power_law_recovers_the_exponent_and_keeps_its_points(exponent):
    macs = [3e8, 6e8, 1.2e9, 2.4e9]
    secs = [2e-10 * m ** exponent for m in macs]
    law = power_law(macs, secs)
    assert law["exponent"] == pytest.approx(exponent)
    assert law["seconds_at_1_gmac"] == pytest.approx(2e-10 * 1e9 ** exponent)
    assert [p["macs"] for p in law["points"]] == [int(m) for m in macs]


def test_the_summary_names_the_slowest_model_and_counts_errors():
    models = [{"model": "a", "batch": 1, "reference_over_sim": 1.5},
              {"model": "b", "batch": 256, "reference_over_sim": 0.8}]
    out = {"models": models, "scaling": {"power_law": {"exponent": 1.02}}}
    s = summary(out)
    assert s["slowest_reference_over_sim"] == {"model": "b", "batch": 256,
                                               "reference_over_sim": 0.8}
    assert not s["every_model_at_least_reference_speed"]
    assert s["scaling_exponent"] == 1.02
    models[1]["reference_over_sim"] = 1.1
    assert summary(out)["every_model_at_least_reference_speed"]
    models.append({"model": "c", "error": "exit 1: killed"})
    assert not summary(out)["every_model_at_least_reference_speed"]
    assert summary(out)["errors"] == [models[2]]
