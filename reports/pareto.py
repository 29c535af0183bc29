"""The Pareto front of design points: lower cost (x) and higher quality (y) are better.

Deliberately the naive O(n^2) definition: a few dozen points per sweep, and the plain double loop is
the definition other code can be checked against.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def lookup(record: Mapping[str, Any], key: str) -> float:
    """``record[key]``, where a dotted key descends into nested mappings ("energy_pj.total")."""
    value: Any = record
    for part in key.split("."):
        value = value[part]
    return float(value)


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """True if ``a = (x, y)`` is no worse than ``b`` on both axes and strictly better on one."""
    no_worse = a[0] <= b[0] and a[1] >= b[1]
    return no_worse and (a[0] < b[0] or a[1] > b[1])


def pareto_front(points: Sequence[Mapping[str, Any]], x_key: str, y_key: str) -> list[int]:
    """Indices of the points that no other point dominates (minimise ``x_key``, maximise ``y_key``).

    Keys may be dotted paths into nested mappings, e.g. ``"energy_pj.total"``. Exact duplicates do
    not dominate each other, so all copies of a front point are returned. The indices are ordered by
    increasing x (ties keep input order), so the front can be drawn as a line in that order.
    """
    xy = [(lookup(p, x_key), lookup(p, y_key)) for p in points]
    front = [i for i, b in enumerate(xy) if not any(dominates(a, b) for a in xy)]
    return sorted(front, key=lambda i: (xy[i][0], i))
