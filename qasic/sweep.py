"""`qasic sweep`: models x architectures x quantizations -> a resumable store and its exports.

Each design point (qasic.sweepspace) is measured once: its row goes into the SQLite store
(qasic.sweepstore) under its config hash the moment it completes, so a rerun of the same sweep
(or one that overlaps it) skips what is stored and an interrupted one resumes. Points run on the
executor the flags name (qasic.executors: this process, local processes or Dask), one code path.
The exports are rewritten from the store at the end: sweep.json (docs/json.md), sweep.csv,
sweep.parquet (with pyarrow), sweep.png and sweep.html, with the Pareto front of the objectives.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qasic.executors import ExecutorSpec, open_executor
from qasic.reports.frontier import DEFAULT, OBJECTIVES, Objective
from qasic.sweepexport import check_parquet, write_outputs
from qasic.sweeprun import execute
from qasic.sweepspace import SweepSpace
from qasic.sweepstore import SweepStore

Progress = Callable[[str], None]
LOCAL = ExecutorSpec()  # this process
DEFAULT_OBJECTIVES = tuple(OBJECTIVES[n] for n in DEFAULT)


@dataclass(frozen=True)
class SweepResult:
    rows: list[dict[str, Any]]   # the store's rows of the sweep's points, in the sweep's order
    ran: int                     # points this run measured
    skipped: int                 # points the store had already
    paths: dict[str, Path]       # the files written, by kind (json, csv, png, html, parquet)
    document: dict[str, Any]     # sweep.json


def run_sweep(space: SweepSpace, out: Path, *, store: Path | None = None,
              executor: ExecutorSpec = LOCAL,
              objectives: Sequence[Objective] = DEFAULT_OBJECTIVES,
              parquet: bool = False, bar: bool = False, progress: Progress | None = None,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> SweepResult:
    """Measure the points of ``space`` the store lacks, then write the exports into ``out``.
    ``store``: the SQLite file (default ``out/sweep.db``); ``on_row`` sees each new row after it
    is stored (an exception there stops the sweep: stored rows stay)."""
    if parquet:
        check_parquet()
    unique: dict[str, Any] = {}
    for p in space.points():  # a value given twice on an axis is one point
        unique.setdefault(p.config_hash, p)
    points = list(unique.values())
    with SweepStore(store or out / "sweep.db") as db:
        done = db.finished()
        todo = [p for p in points if p.config_hash not in done]
        _say(progress, f"sweep: {len(points)} points, {len(points) - len(todo)} already in "
             f"{db.path}, {len(todo)} to run on {executor.describe()}")
        if todo:
            _run(space, todo, db, executor, bar, len(points), progress, on_row)
        rows = db.rows(p.config_hash for p in points)
    paths, doc = write_outputs(rows, out, objectives, parquet)
    return SweepResult(rows, len(todo), len(points) - len(todo), paths, doc)


def _run(space: SweepSpace, todo: list, db: SweepStore, executor: ExecutorSpec, bar: bool,
         total: int, progress: Progress | None, on_row: Callable | None) -> None:
    from qasic.models import get_model
    from qasic.models.outputs import select_output

    # trained (or loaded) once, here, --output's alone; the workers get them from the executor
    models = {(m, space.seed): select_output(get_model(m, seed=space.seed, progress=progress),
                                             space.output)
              for m in dict.fromkeys(p.model for p in todo)}
    meter = _meter(bar, total, total - len(todo))

    def put(row: dict[str, Any]) -> None:
        db.put(row)
        meter.update(1)
        meter.set_postfix_str(f"{row['model']} {row['arch']} {row['point']}", refresh=False)
        if on_row:
            on_row(row)

    try:
        with open_executor(executor, models) as (ex, handles):
            execute(todo, ex, handles, put, executor.slots, policy_arch=space.base)
    finally:
        meter.close()


def _meter(show: bool, total: int, initial: int):
    """A progress bar with ETA on stderr (tqdm; a silent stand-in when not shown)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="pt", file=sys.stderr, disable=not show,
                dynamic_ncols=True, smoothing=0.1)


def _say(progress: Progress | None, message: str) -> None:
    if progress:
        progress(message)
