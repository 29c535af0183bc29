"""The transformer bit-width study as a figure: accuracy vs energy per token, one panel per
(model, activation format), one marker per weight format, one front per policy."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from qasic.reports.pareto import pareto_front
from qasic.reports.plots import _new_figure
from qasic.reports.study import COLORS

# task -> (record key, axis label, scale, higher is better)
METRICS = {"language_model": ("perplexity_change", "Perplexity change vs fp32 (%)", 100.0, False),
           "sentence_embedding": ("embedding_cosine", "Embedding cosine to fp32", 1.0, True)}
MARKERS = "osD^v<>pPhX*"


def llm_study_figure(records: Sequence[Mapping[str, Any]]) -> Figure:
    """``records``: benchmarks.llm_study records (model, task, activation_format, policy,
    weight_format, energy_pj_per_token and the task's metric)."""
    groups = list(dict.fromkeys((r["model"], r["activation_format"]) for r in records))
    fig = _new_figure((5.2 * len(groups), 4.6))
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    formats = list(dict.fromkeys(r["weight_format"] for r in records))
    for ax, (model, act) in zip(axes, groups, strict=True):
        rows = [r for r in records if r["model"] == model and r["activation_format"] == act]
        key, label, scale, higher = METRICS[rows[0]["task"]]
        _panel(ax, rows, key, scale, higher, formats)
        ax.set(title=f"{model}, activations {act}", xlabel="Energy per token (nJ)",
               ylabel=label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, ncol=2)
    return fig


def _panel(ax, rows: Sequence[Mapping[str, Any]], key: str, scale: float, higher: bool,
           formats: list[str]) -> None:
    pts = [{"x": r["energy_pj_per_token"] / 1e3, "y": scale * r[key], **r} for r in rows]
    for r in pts:
        if r["policy"] in ("uniform", "format"):
            ax.scatter(r["x"], r["y"], marker=MARKERS[formats.index(r["weight_format"])
                                                      % len(MARKERS)],
                       color=COLORS[r["policy"]], s=28, label=r["weight_format"], zorder=3)
    for policy in dict.fromkeys(r["policy"] for r in pts if r["policy"] not in ("format",)):
        mine = [r for r in pts if r["policy"] == policy]
        signed = [{"x": r["x"], "y": r["y"] if higher else -r["y"]} for r in mine]
        front = [mine[i] for i in pareto_front(signed, "x", "y")]
        ax.plot([r["x"] for r in front], [r["y"] for r in front], color=COLORS.get(policy, "k"),
                marker="." if policy != "uniform" else None, lw=1, label=f"{policy} front")
