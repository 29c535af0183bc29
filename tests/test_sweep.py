"""`qasic sweep`: the design space's points and their exports (JSON, CSV, PNG, HTML)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from qasic.cli import main
from qasic.sweep import run_sweep
from qasic.sweepexport import CSV_FIELDS
from tests.sweeps import space


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """digits_mlp: 2 arrays x (fitted PEs, 8x4 PEs) x W8/W4: 8 points, 2 infeasible."""
    out = tmp_path_factory.mktemp("sweep")
    return out, run_sweep(space(pe_bits="fit,8x4"), out)


def test_points_run_in_order_and_w8_on_4bit_pes_is_infeasible(swept):
    _, result = swept
    assert (result.ran, result.skipped) == (8, 0)
    assert [(r["arch"], r["point"], r["status"]) for r in result.rows] == [
        ("default-8x8", "W8/A8", "ok"), ("default-8x8", "W4/A8", "ok"),
        ("default-8x8-a8w4", "W8/A8", "infeasible"), ("default-8x8-a8w4", "W4/A8", "ok"),
        ("default-16x16", "W8/A8", "ok"), ("default-16x16", "W4/A8", "ok"),
        ("default-16x16-a8w4", "W8/A8", "infeasible"), ("default-16x16-a8w4", "W4/A8", "ok")]
    bad = result.rows[2]
    assert bad["error"] == ("layer fc1 has 8-bit weights but the array's PEs take "
                            "array.weight_bits = 4; raise array.weight_bits or quantize the layer "
                            "to fewer bits")
    assert bad["cycles"] is None and bad["pe_weight_bits"] == 4


def test_measured_points(swept):
    _, result = swept
    by = {(r["arch"], r["point"]): r for r in result.rows}
    ok = [r for r in result.rows if r["status"] == "ok"]
    assert all(r["bit_exact"] and r["samples"] == 20 for r in ok)
    assert by[("default-8x8", "W8/A8")]["cycles"] > by[("default-16x16", "W8/A8")]["cycles"]
    assert by[("default-8x8", "W4/A8")]["pe_weight_bits"] == 4  # fitted to 4-bit weights
    assert by[("default-8x8", "W4/A8")]["weight_bits"] == {"fc1": 4, "fc2": 4}
    assert by[("default-8x8", "W4/A8")]["avg_weight_bits"] == 4.0
    # the area model: a wider array and wider PEs take more silicon
    area = {k: r["area_mm2"] for k, r in by.items() if r["status"] == "ok"}
    assert all(a > 0 for a in area.values())
    assert area[("default-16x16", "W8/A8")] > area[("default-8x8", "W8/A8")]
    assert area[("default-8x8", "W8/A8")] > area[("default-8x8", "W4/A8")]
    assert len({r["config_hash"] for r in result.rows}) == 8


def test_area_is_a_pareto_axis(swept):
    from qasic.reports.frontier import front, parse_objectives

    _, result = swept
    ok = [r for r in result.rows if r["status"] == "ok"]
    on = front(ok, parse_objectives("accuracy,area_mm2"))
    smallest = min(ok, key=lambda r: r["area_mm2"])
    assert on[ok.index(smallest)]  # nothing is smaller: the smallest array is on the front
    assert any(on) and not all(on)  # the 16x16 arrays are dominated by area


def test_json_csv_png_html(swept):
    out, result = swept
    doc = json.loads((out / "sweep.json").read_text())
    assert doc == result.document and doc["schema"] == "qasic.sweep/2"
    assert doc["models"] == ["digits_mlp"]
    assert doc["pareto"] == {"objectives": ["accuracy", "energy_pj"], "unmeasured": 0}
    assert len(doc["points"]) == 6 and len(doc["infeasible"]) == 2
    assert set(doc["points"][0]["energy_pj"]) == {"mac", "sram", "dram", "other", "leakage",
                                                   "total"}
    assert any(p["on_front"] for p in doc["points"])
    with (out / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_FIELDS and len(rows) == 8  # infeasible rows too
    assert float(rows[0]["energy_pj.total"]) == doc["points"][0]["energy_pj"]["total"]
    assert json.loads(rows[0]["weight_bits"]) == {"fc1": 8, "fc2": 8}
    assert rows[2]["status"] == "infeasible" and rows[2]["cycles"] == ""
    assert (out / "sweep.png").stat().st_size > 0
    page = (out / "sweep.html").read_text()
    assert page.count("<svg") == 1 and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # offline: nothing fetched
    assert "Infeasible points" in page and page.count('<tr class="front">') == sum(
        p["on_front"] for p in doc["points"])


def test_json_stays_clean_on_stdout_with_the_bar_on_stderr(tmp_path, capsys):
    argv = ["sweep", "--model", "digits_mlp", "--bits", "4", "--arrays", "8x8", "--limit", "8",
            "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["points"][0]["point"] == "W4/A8"
    assert "1/1" in captured.err and "100%" in captured.err  # tqdm's bar and count
    assert main(argv) == 0  # the rerun: everything from the store, the same document
    again = capsys.readouterr()
    assert again.out == captured.out and "1 from the store, 0 run" in again.err


def test_several_models(tmp_path):
    result = run_sweep(space(models=("digits_mlp", "digits_cnn"), arrays="16x16", bits="4",
                             limit=8), tmp_path)
    assert [r["model"] for r in result.rows] == ["digits_mlp", "digits_cnn"]
    assert result.document["models"] == ["digits_mlp", "digits_cnn"]
    assert result.rows[0]["macs"] < result.rows[1]["macs"]


def test_a_quant_set_axis_runs_each_setting_as_its_own_point(tmp_path, capsys):
    argv = ["sweep", "--model", "digits_mlp", "--bits", "4", "--arrays", "8x8", "--limit", "8",
            "--quant-set", "output_bits=none,12", "--out", str(tmp_path), "--no-progress"]
    assert main([*argv, "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert [p["point"] for p in points] == ["W4/A8 output_bits=None", "W4/A8 output_bits=12"]
    assert len({p["config_hash"] for p in points}) == 2 and all(p["bit_exact"] for p in points)
    # the 12-bit logits are a wider output: the last layer writes int16 codes
    assert points[1]["dram_bytes"] > points[0]["dram_bytes"]
    assert main(argv) == 0 and "2 from the store, 0 run" in capsys.readouterr().err


def test_parquet_has_the_csv_rows_typed(swept, tmp_path):
    import pyarrow.parquet as pq

    from qasic.reports.frontier import parse_objectives
    from qasic.sweepexport import write_outputs

    _, result = swept
    paths, _ = write_outputs(result.rows, tmp_path, parse_objectives("accuracy,latency_us"),
                             parquet=True)
    table = pq.read_table(paths["parquet"])
    assert tuple(table.column_names) == CSV_FIELDS and table.num_rows == 8
    assert str(table.schema.field("cycles").type) == "int64"
    assert str(table.schema.field("bit_exact").type) == "bool"
    assert table.column("cycles").null_count == 2  # the infeasible points


def test_parquet_without_pyarrow_says_what_to_install(monkeypatch, tmp_path, capsys):
    import sys

    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # import fails
    assert main(["sweep", "--parquet", "--out", str(tmp_path)]) == 1
    assert capsys.readouterr().err == ("qasic: error: --parquet needs pyarrow: pip install "
                                       "pyarrow\n")


def test_a_policy_chooses_bits_per_point(tmp_path):
    from dataclasses import replace

    from qasic.sweepaxes import quant_choices

    choices = quant_choices(policies="uniform", budgets="avg_bits=3,size_bits=1")
    result = run_sweep(replace(space(arrays="16x16", limit=8), quants=tuple(choices)), tmp_path)
    ok, bad = result.rows
    assert (ok["point"], ok["policy"], ok["budget"]) == ("uniform@avg_bits=3/A8", "uniform",
                                                          "avg_bits=3")
    assert ok["weight_bits"] == {"fc1": 3, "fc2": 3} and ok["status"] == "ok"
    assert bad["status"] == "infeasible" and "size_bits=1" in bad["error"]  # no bits fit it


def test_the_golden_reference_runs_once_per_quantization(tmp_path, monkeypatch):
    """3 arrays x W8/W4: the reference runs on each quantized graph once (its outputs do not
    depend on the arch), and every point still compares its simulation with them."""
    import qasic.flow

    real, runs = qasic.flow.golden_outputs, []

    def counted(graph, codes):
        runs.append((graph.name, len(codes)))
        return real(graph, codes)

    monkeypatch.setattr(qasic.flow, "golden_outputs", counted)
    result = run_sweep(space(arrays="8x8,16x16,32x32", limit=12), tmp_path)
    assert result.ran == 6 and len(runs) == 2
    assert all(r["bit_exact"] for r in result.rows)


def test_golden_outputs_are_only_reused_for_their_own_inputs():
    from qasic.flow import Golden, codes_digest

    golden = Golden(codes_digest(np.arange(6).reshape(2, 3)), np.ones((2, 4)))
    assert golden.outputs_for(np.arange(6).reshape(2, 3)) is golden.outputs
    assert golden.outputs_for(np.arange(6).reshape(3, 2)) is None
    assert golden.outputs_for(np.arange(1, 7).reshape(2, 3)) is None
