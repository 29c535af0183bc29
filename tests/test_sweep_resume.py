"""The sweep store: an interrupted sweep resumes, a rerun skips finished points, and the rows equal
an uninterrupted run's, column for column."""

from __future__ import annotations

import sqlite3

import pytest

import qasic.sweeprun
from qasic.errors import ConfigError
from qasic.sweep import run_sweep
from qasic.sweepaxes import quant_choices
from qasic.sweepspace import canonical_json
from qasic.sweepstore import FORMAT, NAMES, SweepStore
from tests.sweeps import space, stored

SPACE = space(arrays="8x8,16x16,32x32", bits="8,4,2", limit=12)  # 9 points


class Stop(Exception):
    pass


def stop_after(k: int, seen: list):
    def on_row(row):
        seen.append(row["config_hash"])
        if len(seen) == k:
            raise Stop

    return on_row


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("whole")
    return run_sweep(SPACE, out), stored(out / "sweep.db")


def test_interrupted_sweep_resumes_with_only_the_missing_points(tmp_path, uninterrupted):
    first: list[str] = []
    with pytest.raises(Stop):
        run_sweep(SPACE, tmp_path, on_row=stop_after(4, first))
    assert len(stored(tmp_path / "sweep.db")) == 4  # each row committed as it came
    second: list[str] = []
    result = run_sweep(SPACE, tmp_path, on_row=second.append)
    assert (result.skipped, result.ran) == (4, 5)
    assert set(first).isdisjoint(r["config_hash"] for r in second)  # nothing ran twice
    assert {r["config_hash"] for r in second} | set(first) == {
        p.config_hash for p in SPACE.points()}
    whole, rows = uninterrupted
    assert stored(tmp_path / "sweep.db") == rows
    assert result.document == whole.document


def test_a_failing_task_stops_the_sweep_and_keeps_the_rows(tmp_path, monkeypatch, uninterrupted):
    real, calls = qasic.sweeprun.point_task, []

    def flaky(point, graph, model):
        calls.append(point)
        if len(calls) == 3:
            raise RuntimeError("worker lost")
        return real(point, graph, model)

    monkeypatch.setattr(qasic.sweeprun, "point_task", flaky)
    with pytest.raises(RuntimeError, match="worker lost"):
        run_sweep(SPACE, tmp_path)
    kept = len(stored(tmp_path / "sweep.db"))
    assert 2 <= kept < 9  # the two before it, and any that finished while it failed
    monkeypatch.setattr(qasic.sweeprun, "point_task", real)
    assert run_sweep(SPACE, tmp_path).ran == 9 - kept
    assert stored(tmp_path / "sweep.db") == uninterrupted[1]


def test_a_rerun_runs_nothing_and_a_wider_sweep_only_its_new_points(tmp_path, uninterrupted):
    run_sweep(space(arrays="8x8", bits="8,4", limit=12), tmp_path)
    wider = run_sweep(SPACE, tmp_path)
    assert (wider.skipped, wider.ran) == (2, 7)
    assert run_sweep(SPACE, tmp_path).ran == 0
    assert stored(tmp_path / "sweep.db") == uninterrupted[1]


def test_the_hash_covers_every_input_of_a_row():
    base = {p.config_hash for p in SPACE.points()}
    for other in (space(arrays="8x8,16x16,32x32", bits="8,4,2", limit=13),
                  space(arrays="8x8,16x16,32x32", bits="8,4,2", limit=12, dram_bw="4"),
                  space(models=("digits_cnn",), arrays="8x8,16x16,32x32", bits="8,4,2",
                        limit=12)):
        assert base.isdisjoint(p.config_hash for p in other.points())
    # 500 MHz from a TOML (an int) and from --clock-mhz (a float) is one clock
    assert canonical_json({"clock_mhz": 500.0, "b": [1.5]}) == '{"b":[1.5],"clock_mhz":500}'


def test_the_norm_input_width_is_in_every_key():
    """16 since 2026-12-05, None (left out) before: older stores' points run again, since a
    transformer's results changed with it."""
    quant = [p.quant.config() for p in SPACE.points()]
    assert {q["norm_input_bits"] for q in quant} == {16}
    assert {q["embedding_bits"] for q in quant} == {16}  # so is the embedding rows' (2026-12-06)
    assert all("norm_residual_bits" not in q for q in quant)  # None settings stay out
    assert all("recurrence_bits" not in q for q in quant)  # and later ones at their default
    # softmax outputs at 8 bits (2026-12-07) change nothing where activations are 8-bit
    assert all("softmax_bits" not in q for q in quant if q["activation_bits"] == 8)
    narrow = {c.acts.bits: c.config() for c in quant_choices("8", act_bits="8,4")}
    assert "softmax_bits" not in narrow[8] and narrow[4]["softmax_bits"] == 8


def test_a_store_of_another_format_is_refused(tmp_path):
    db = tmp_path / "sweep.db"
    with SweepStore(db) as store:
        assert store.finished() == set()
    with sqlite3.connect(db) as c:
        c.execute(f"PRAGMA user_version = {FORMAT + 1}")
    with pytest.raises(ConfigError, match=f"has format {FORMAT + 1}, this qasic writes {FORMAT}"):
        SweepStore(db)
    (tmp_path / "junk.db").write_bytes(b"not a database" * 100)
    with pytest.raises(ConfigError, match="junk.db: file is not a database; give another"):
        SweepStore(tmp_path / "junk.db")


def test_rows_round_trip(tmp_path):
    row = dict.fromkeys(NAMES) | {"config_hash": "h", "config": "{}", "status": "ok",
                                  "weight_bits": {"fc1": 4}, "bit_exact": True}
    with SweepStore(tmp_path / "s.db") as store:
        store.put(row)
        assert store.rows(["h", "missing"]) == [row]
