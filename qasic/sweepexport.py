"""A sweep's rows out of the store: sweep.json (the document ``sweep``, docs/json.md), sweep.csv
and sweep.parquet (the store's columns without the config JSON, plus ``on_front``), sweep.png and
sweep.html (the Pareto front of the chosen objectives)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qasic.errors import ConfigError
from qasic.reports.frontier import Objective, front, measured
from qasic.sweepstore import COLUMNS, ENERGY_PARTS, JSON_COLUMNS

PARQUET_HINT = "pip install pyarrow"
TABLE_FIELDS = (*(n for n, _ in COLUMNS if n != "config"), "on_front")
CSV_FIELDS = TABLE_FIELDS
# sweep.json: a measured point's keys, and an infeasible point's
_NOT_RECORD = ("config", "status", "error", *(f"energy_pj.{p}" for p in ENERGY_PARTS))
RECORD_KEYS = tuple(n for n, _ in COLUMNS if n not in _NOT_RECORD)
INFEASIBLE_KEYS = ("config_hash", "model", "arch", "point", "error")


def check_parquet() -> None:
    """One line saying what to install, before the sweep runs."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ConfigError(f"--parquet needs pyarrow: {PARQUET_HINT}") from None


def write_outputs(rows: Sequence[dict[str, Any]], out: Path, objectives: Sequence[Objective],
                  parquet: bool = False) -> tuple[dict[str, Path], dict[str, Any]]:
    """Write every export of ``rows`` into ``out``; returns (paths by kind, sweep.json)."""
    from qasic.reports.plots import save_png
    from qasic.reports.sweep import sweep_figure
    from qasic.reports.sweep_html import sweep_page

    out.mkdir(parents=True, exist_ok=True)
    on_front = front(rows, objectives)
    doc = sweep_document(rows, on_front, objectives)
    paths = {kind: out / f"sweep.{kind}" for kind in ("json", "csv", "png", "html")}
    paths["json"].write_text(json.dumps(doc, indent=2))
    table = [_table_row(r, f) for r, f in zip(rows, on_front, strict=True)]
    with paths["csv"].open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(table)
    save_png(sweep_figure(doc["points"]), paths["png"])
    paths["html"].write_text(sweep_page(rows, on_front, objectives))
    if parquet:
        paths["parquet"] = write_parquet(table, out / "sweep.parquet")
    return paths, doc


def sweep_document(rows: Sequence[dict[str, Any]], on_front: Sequence[bool],
                   objectives: Sequence[Objective]) -> dict[str, Any]:
    """sweep.json: measured points (with ``on_front``), infeasible ones with their reason."""
    from qasic.schema import document

    ok = [(r, f) for r, f in zip(rows, on_front, strict=True) if r["status"] == "ok"]
    return document("sweep", {
        "models": list(dict.fromkeys(r["model"] for r in rows)),
        "pareto": {"objectives": [o.name for o in objectives],
                   "unmeasured": sum(not measured(r, objectives) for r, _ in ok)},
        "points": [_record(r, f) for r, f in ok],
        "infeasible": [{k: r[k] for k in INFEASIBLE_KEYS} for r in rows if r["status"] != "ok"]})


def _record(row: dict[str, Any], on_front: bool) -> dict[str, Any]:
    record = {k: row[k] for k in RECORD_KEYS}
    energy = {p: row[f"energy_pj.{p}"] for p in ENERGY_PARTS}
    at = list(record).index("area_mm2")  # energy_pj before area_mm2, as in the store
    items = list(record.items())
    return dict(items[:at] + [("energy_pj", energy)] + items[at:]) | {"on_front": on_front}


def _table_row(row: dict[str, Any], on_front: bool) -> dict[str, Any]:
    """A CSV/Parquet row: JSON columns as JSON text."""
    table = {k: row[k] for k in TABLE_FIELDS if k != "on_front"}
    for k in JSON_COLUMNS:
        if table[k] is not None:
            table[k] = json.dumps(table[k])
    return table | {"on_front": on_front}


def write_parquet(table: list[dict[str, Any]], path: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    types = {"TEXT": pa.string(), "INTEGER": pa.int64(), "REAL": pa.float64()}
    fields = [pa.field(n, pa.bool_() if n == "bit_exact" else types[t.split()[0]])
              for n, t in COLUMNS if n != "config"] + [pa.field("on_front", pa.bool_())]
    pq.write_table(pa.Table.from_pylist(table, schema=pa.schema(fields)), path)
    return path
