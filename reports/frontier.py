"""The Pareto front of sweep rows over two or three objectives (accuracy, energy, latency, area).

A row is on the front when no other row is at least as good on every objective and better on one.
A row with a null objective (accuracy of a model without labels; an infeasible point) is not
compared at all: it is neither on the front nor dominating, and is counted as unmeasured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from qasic.errors import ConfigError


@dataclass(frozen=True)
class Objective:
    name: str      # as --pareto spells it
    column: str    # the sweep row's column
    sense: int     # +1: higher is better, -1: lower is better
    label: str     # axis label
    scale: float   # column value / scale = value in the label's unit


OBJECTIVES = {o.name: o for o in (
    Objective("accuracy", "accuracy", +1, "Accuracy (%)", 0.01),
    Objective("energy_pj", "energy_pj.total", -1, "Energy per inference (nJ)", 1e3),
    Objective("latency_us", "latency_us", -1, "Latency per inference (µs)", 1.0),
    Objective("area_mm2", "area_mm2", -1, "Area (mm²)", 1.0),
)}
DEFAULT = ("accuracy", "energy_pj")


def parse_objectives(text: str) -> tuple[Objective, ...]:
    """'accuracy,energy_pj' -> two Objectives; two or three distinct known names."""
    names = [n.strip() for n in text.split(",")]
    if not 2 <= len(names) <= 3 or len(set(names)) != len(names) or \
            any(n not in OBJECTIVES for n in names):
        raise ConfigError(f"--pareto {text!r}: give two or three of {', '.join(OBJECTIVES)}, "
                          "e.g. accuracy,energy_pj")
    return tuple(OBJECTIVES[n] for n in names)


def measured(row: Mapping[str, Any], objectives: Sequence[Objective]) -> bool:
    return row.get("status", "ok") == "ok" and all(row.get(o.column) is not None
                                                   for o in objectives)


def front(rows: Sequence[Mapping[str, Any]], objectives: Sequence[Objective]) -> list[bool]:
    """For each row, whether it is on the Pareto front of ``objectives`` (False if unmeasured)."""
    idx = [i for i, r in enumerate(rows) if measured(r, objectives)]
    on = [False] * len(rows)
    if not idx:
        return on
    # every objective as "higher is better"
    v = np.array([[o.sense * float(rows[i][o.column]) for o in objectives] for i in idx])
    for k, i in enumerate(idx):
        no_worse = (v >= v[k]).all(axis=1)
        better = (v > v[k]).any(axis=1)
        on[i] = not (no_worse & better).any()
    return on
