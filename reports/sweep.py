"""Design-space figure for `qasic sweep` records: one series per array, one point per bit-width."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from qasic.reports.plots import _new_figure

MARKERS = "osD^v<>p*h"


def sweep_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """Left: energy per inference vs accuracy. Right: latency vs energy. Series = arrays."""
    fig = _new_figure((11.0, 4.6))
    left, right = fig.subplots(1, 2)
    for i, arch in enumerate(dict.fromkeys(r["arch"] for r in records)):
        rows = sorted((r for r in records if r["arch"] == arch),
                      key=lambda r: r["energy_pj"]["total"])
        energy = [r["energy_pj"]["total"] / 1e3 for r in rows]
        style = {"marker": MARKERS[i % len(MARKERS)], "label": arch}
        left.plot(energy, [100 * r["accuracy"] for r in rows], **style)
        right.plot([r["latency_us"] for r in rows], energy, linestyle="none", **style)
        for r, e in zip(rows, energy, strict=True):
            right.annotate(r["point"], (r["latency_us"], e), xytext=(4, 3),
                           textcoords="offset points", fontsize=7, parse_math=False)
    left.set(xlabel="Energy per inference (nJ)", ylabel="Accuracy (%)",
             title="Accuracy vs energy")
    right.set(xlabel="Latency per inference (µs)", ylabel="Energy per inference (nJ)",
              title="Energy vs latency")
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    return fig
