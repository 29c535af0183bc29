"""Design-space figure for `qasic sweep` records: one series per (model, arch), one point per
quantization."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from qasic.reports.plots import _new_figure

MARKERS = "osD^v<>p*h"
MAX_LABELS = 30  # more points than this: no per-point labels (they would only overlap)
MAX_LEGEND = 12  # more series than this: no legend


def sweep_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """Left: energy per inference vs accuracy. Right: latency vs energy. Series = arrays (and
    models, when there are several)."""
    fig = _new_figure((11.0, 4.6))
    left, right = fig.subplots(1, 2)
    several = len({r.get("model") for r in records}) > 1
    for i, key in enumerate(dict.fromkeys((r.get("model"), r["arch"]) for r in records)):
        rows = sorted((r for r in records if (r.get("model"), r["arch"]) == key),
                      key=lambda r: r["energy_pj"]["total"])
        energy = [r["energy_pj"]["total"] / 1e3 for r in rows]
        label = f"{key[0]} {key[1]}" if several else key[1]
        style = {"marker": MARKERS[i % len(MARKERS)], "label": label}
        left.plot(energy, [100 * r["accuracy"] for r in rows], **style)
        right.plot([r["latency_us"] for r in rows], energy, linestyle="none", **style)
        for r, e in zip(rows, energy, strict=True):
            if len(records) > MAX_LABELS:
                break
            right.annotate(r["point"], (r["latency_us"], e), xytext=(4, 3),
                           textcoords="offset points", fontsize=7, parse_math=False)
    left.set(xlabel="Energy per inference (nJ)", ylabel="Accuracy (%)",
             title="Accuracy vs energy")
    right.set(xlabel="Latency per inference (µs)", ylabel="Energy per inference (nJ)",
              title="Energy vs latency")
    series = len({(r.get("model"), r["arch"]) for r in records})
    for ax in (left, right):
        ax.grid(True, alpha=0.3)
        if 0 < series <= MAX_LEGEND:
            ax.legend(fontsize=8)
    return fig
