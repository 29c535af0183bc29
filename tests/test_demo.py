"""`qasic demo` end to end (RTL check skipped here; tests/rtl covers it)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    from qasic.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    lines = []
    report = run_demo(out, rtl=False, progress=lines.append)
    return out, report, lines


def test_writes_the_four_outputs(demo_out):
    out, report, lines = demo_out
    assert report == out / "report.html"
    for name in ("results.json", "pareto.png", "report.html"):
        assert (out / name).stat().st_size > 0
    # the chosen point's whole accelerator, not the default core
    results = json.loads((out / "results.json").read_text())
    chosen = next(p for p in results["points"] if p["name"] == results["chosen_point"])
    described = json.loads((out / "verilog" / "qasic_accel.json").read_text())
    assert (out / "verilog" / "qasic_accel.v").stat().st_size > 0
    assert described["arch"] == chosen["arch"] == results["rtl"]["arch"]
    assert "gemm" in described["units"] and "dma_load" in described["units"]
    assert any("[2/5]" in line for line in lines)  # progress is shown


def test_results_are_bit_exact_and_rise_with_bits(demo_out):
    results = json.loads((demo_out[0] / "results.json").read_text())
    points = {p["name"]: p for p in results["points"]}
    assert len(points) >= 4 and all(p["bit_exact"] for p in points.values())
    uniform = [points[n] for n in ("W2A8", "W3A8", "W4A8", "W8A8")]
    acc = [p["accuracy"] for p in uniform]
    energy = [p["energy_pj"]["total"] for p in uniform]
    assert acc == sorted(acc) and energy == sorted(energy) and energy[0] < energy[-1]
    assert points["W8A8"]["accuracy"] >= results["fp32_accuracy"] - 0.005
    assert points["W4A8"]["accuracy"] >= 0.95 and points["W2A8"]["accuracy"] >= 0.88
    for p in uniform:
        e = p["energy_pj"]
        assert e["total"] == pytest.approx(e["mac"] + e["sram"] + e["dram"] + e["other"]
                                           + e["leakage"])
        assert e["leakage"] > 0
        assert p["area_mm2"] == pytest.approx(sum(p["area_parts_mm2"].values()))
        assert sum(la["cycles"] for la in p["layers"]) == p["cycles"]
    assert points["mixed W8/4/2"]["weight_bits"] == {"conv1": 8, "conv2": 4, "fc": 2}
    # each point runs on an array whose PEs are as wide as its widest weights
    assert [p["pe_bits"]["weight"] for p in uniform] == [2, 3, 4, 8]
    assert points["mixed W8/4/2"]["pe_bits"]["weight"] == 8
    assert results["rtl"]["verified"] is False  # skipped, and says so
    # narrower PEs, smaller array: W2's area below W8's; the rule that chose is stated
    assert points["W2A8"]["area_mm2"] < points["W8A8"]["area_mm2"]
    assert "within one accuracy point" in results["chosen_rule"]
