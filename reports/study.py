"""Accuracy vs energy for bit-width studies: one front per policy, random assignments in grey."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from qasic.reports.pareto import pareto_front
from qasic.reports.plots import _new_figure

COLORS = {"uniform": "#4C72B0", "format": "#8172B3", "hawq": "#DD8452", "lim": "#55A868",
          "zd": "#C44E52", "measured": "#937860"}


def study_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """One panel per (model, activation format)."""
    groups = list(dict.fromkeys((r["model"], r["activation_format"]) for r in records))
    fig = _new_figure((5.2 * len(groups), 4.6))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (model, act) in zip(axes, groups, strict=True):
        rows = [r for r in records if r["model"] == model and r["activation_format"] == act]
        _panel(ax, rows)
        ax.set(title=f"{model}, activations {act}", xlabel="Energy per inference (nJ)",
               ylabel="Accuracy (%)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def _panel(ax, rows: Sequence[Mapping[str, Any]]) -> None:
    rand = [r for r in rows if r["policy"] == "random"]
    ax.scatter([r["energy_pj"] / 1e3 for r in rand], [100 * r["accuracy"] for r in rand],
               color="0.7", s=14, label="random (equal size budget)")
    for policy in dict.fromkeys(r["policy"] for r in rows if r["policy"] != "random"):
        pts = [r for r in rows if r["policy"] == policy]
        front = [pts[i] for i in pareto_front(pts, "energy_pj", "accuracy")]
        kw = {"color": COLORS.get(policy, "k"), "label": policy}
        ax.plot([r["energy_pj"] / 1e3 for r in front], [100 * r["accuracy"] for r in front],
                marker="o", ms=4, **kw)
        if policy == "format":
            for r in pts:
                ax.annotate(r["weight_format"], (r["energy_pj"] / 1e3, 100 * r["accuracy"]),
                            fontsize=6, xytext=(3, -8), textcoords="offset points",
                            parse_math=False)
