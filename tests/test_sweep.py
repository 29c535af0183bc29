"""`qasic sweep`: bits x arrays -> tidy JSON/CSV records and a figure."""

from __future__ import annotations

import csv
import json

import pytest

from qasic.arch.config import default_arch
from qasic.errors import ConfigError
from qasic.sweep import CSV_FIELDS, parse_arrays, run_sweep, with_array


def test_sweep_records(tmp_path):
    from qasic.models import get_model

    arch = default_arch()
    archs = [with_array(arch, 8, 8), arch]
    recs = run_sweep(get_model("digits_cnn"), [8, 2], archs, tmp_path, limit=30,
                     progress=lambda m: None)
    assert [(r["arch"], r["point"]) for r in recs] == [
        ("default-8x8", "W8"), ("default-8x8", "W2"), ("default-16x16", "W8"),
        ("default-16x16", "W2")]
    assert all(r["bit_exact"] for r in recs)
    by = {(r["array_rows"], r["point"]): r for r in recs}
    assert by[(8, "W8")]["cycles"] > by[(16, "W8")]["cycles"]  # a smaller array is slower
    assert by[(16, "W2")]["pe_weight_bits"] == 2
    doc = json.loads((tmp_path / "sweep.json").read_text())
    assert (doc["schema"], doc["model"], doc["points"]) == ("qasic.sweep/1", "digits_cnn", recs)
    with (tmp_path / "sweep.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == CSV_FIELDS and len(rows) == 4
    # energy_pj is the breakdown in both files: a dict in the JSON, energy_pj.<part> in the CSV
    assert set(recs[0]["energy_pj"]) == {"mac", "sram", "dram", "other", "total"}
    assert float(rows[0]["energy_pj.total"]) == recs[0]["energy_pj"]["total"]
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_parse_arrays():
    assert parse_arrays("8x8,16x32") == [(8, 8), (16, 32)]
    for bad in ("8by8", "8x8x8", "8", "8x8,16"):
        with pytest.raises(ConfigError, match="ROWSxCOLS"):
            parse_arrays(bad)
