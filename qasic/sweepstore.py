"""The sweep store: one SQLite row per design point, filed under its config hash.

SQLite (the standard library's) because a sweep is a few thousand rows written one at a time by
one process, and resuming is ``SELECT config_hash``: each finished point is committed as it
arrives, so an interrupted sweep loses at most the points still running. Rows are a pure function
of their config (no timestamps), so a resumed sweep's rows equal an uninterrupted one's.

Query it with any SQLite client, e.g.
``sqlite3 out/sweep/sweep.db 'SELECT arch, point, accuracy, "energy_pj.total" FROM points'``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

from qasic.errors import ConfigError

# PRAGMA user_version of a store this module writes; 2: energy_pj.leakage, area_mm2 measured
FORMAT = 2
ENERGY_PARTS = ("mac", "sram", "dram", "other", "leakage", "total")
# (column, SQLite type), in the order of every export. Keys as in docs/json.md; energy_pj is
# spelled energy_pj.<part> as in sweep.csv; weight_bits is JSON ({layer: bits}).
COLUMNS: tuple[tuple[str, str], ...] = (
    ("config_hash", "TEXT PRIMARY KEY"),  # SHA-256 of `config`
    ("config", "TEXT NOT NULL"),          # the canonical JSON of the point's whole config
    ("status", "TEXT NOT NULL"),          # ok | infeasible (no arch or program can be built)
    ("error", "TEXT"),                    # why it is infeasible (one line)
    ("model", "TEXT"), ("seed", "INTEGER"), ("samples", "INTEGER"),
    ("arch", "TEXT"), ("point", "TEXT"),
    ("array_rows", "INTEGER"), ("array_cols", "INTEGER"),
    ("pe_input_bits", "INTEGER"), ("pe_weight_bits", "INTEGER"),
    ("sram_bytes", "INTEGER"), ("dram_bytes_per_cycle", "INTEGER"), ("clock_mhz", "REAL"),
    ("weights", "TEXT"), ("policy", "TEXT"), ("budget", "TEXT"),
    ("activation_format", "TEXT"), ("activation_bits", "INTEGER"),
    ("weight_bits", "TEXT"), ("avg_weight_bits", "REAL"),
    ("accuracy", "REAL"), ("bit_exact", "INTEGER"), ("cycles", "INTEGER"),
    ("latency_us", "REAL"), ("macs", "INTEGER"), ("dram_bytes", "INTEGER"),
    *((f"energy_pj.{p}", "REAL") for p in ENERGY_PARTS),
    ("area_mm2", "REAL"),
)
NAMES = tuple(name for name, _ in COLUMNS)
JSON_COLUMNS = ("weight_bits",)
BOOL_COLUMNS = ("bit_exact",)


class SweepStore:
    """Rows by config hash. ``put`` commits at once; ``rows`` reads them back as dicts."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0)
            self._check_format()
        except sqlite3.DatabaseError as e:
            raise ConfigError(f"sweep store {self.path}: {e}; give another --store or move the "
                              "file away") from None

    def _check_format(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = self._db.execute("SELECT name FROM sqlite_master WHERE name = 'points'")
        if tables.fetchone() is None:
            columns = ", ".join(f"{_quoted(n)} {t}" for n, t in COLUMNS)
            with self._db:
                self._db.execute(f"CREATE TABLE points ({columns})")
                self._db.execute(f"PRAGMA user_version = {FORMAT}")
        elif version != FORMAT:
            raise ConfigError(f"sweep store {self.path} has format {version}, this qasic writes "
                              f"{FORMAT}; give another --store or move the file away")

    def finished(self) -> set[str]:
        """Config hashes of every stored point."""
        return {h for (h,) in self._db.execute("SELECT config_hash FROM points")}

    def put(self, row: Mapping[str, Any]) -> None:
        """Store (or replace) one point's row and commit it."""
        values = [_to_sql(n, row.get(n)) for n in NAMES]
        marks = ", ".join("?" * len(NAMES))
        with self._db:
            self._db.execute(f"INSERT OR REPLACE INTO points VALUES ({marks})", values)

    def rows(self, hashes: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The stored rows of ``hashes`` in that order (missing ones left out); None: all,
        ordered by hash."""
        cursor = self._db.execute(f"SELECT {', '.join(map(_quoted, NAMES))} FROM points "
                                  "ORDER BY config_hash")
        by_hash = {r[0]: dict(zip(NAMES, map(_from_sql, NAMES, r), strict=True)) for r in cursor}
        if hashes is None:
            return list(by_hash.values())
        return [by_hash[h] for h in hashes if h in by_hash]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quoted(name: str) -> str:
    return f'"{name}"'


def _to_sql(name: str, value: Any) -> Any:
    if hasattr(value, "item"):  # a NumPy scalar
        value = value.item()
    if value is not None and name in JSON_COLUMNS:
        return json.dumps(value)
    if isinstance(value, bool):
        return int(value)
    return value


def _from_sql(name: str, value: Any) -> Any:
    if value is not None and name in JSON_COLUMNS:
        return json.loads(value)
    if value is not None and name in BOOL_COLUMNS:
        return bool(value)
    return value
