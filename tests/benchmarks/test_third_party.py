"""benchmarks.third_party: the stored run names every network of MODELS with a known status,
a network of a library that is not installed is 'unavailable' in one line (CI installs neither
library), and an unknown name is refused before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import third_party

STORED = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "third_party.json"
STATUSES = {"ok", "refused", "crash", "timeout", "unavailable", "build"}


def test_the_stored_run_covers_every_network_with_a_status():
    doc = json.loads(STORED.read_text())
    assert doc["schema"] == third_party.SCHEMA and doc["libraries"] == third_party.LIBRARIES
    names = [r["name"] for r in doc["records"]]
    assert sorted(names) == sorted(third_party.MODELS)
    for r in doc["records"]:
        assert r["status"] in STATUSES and r["library"] == third_party.MODELS[r["name"]][0]
        assert (r["status"] == "ok") == (r["bit_exact"] is not None)
        assert r["status"] == "ok" or r["error"], r


def test_a_library_not_installed_is_unavailable_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(third_party, "TARGET", tmp_path / "nothing")
    monkeypatch.setattr(third_party.importlib.util, "find_spec", lambda name: None)
    rec = third_party.run_one("vit")
    assert rec["status"] == "unavailable" and "--install" in rec["error"]
    assert "\n" not in rec["error"]


def test_an_unknown_network_is_refused_before_any_work(capsys):
    with pytest.raises(SystemExit):
        third_party.main(["--only", "no_such_net", "--out", "out/x"])
    assert "unknown network(s) no_such_net" in capsys.readouterr().err
