"""Pure functions from results data to matplotlib figures.

Only the object API: every figure is a fresh ``Figure`` on its own Agg canvas, so nothing here
touches pyplot's global figure list, the global backend or rcParams (plots stay reproducible no
matter who imported us first). User strings are drawn with ``parse_math=False`` so a ``$`` in a
model or point name is shown literally instead of being parsed as mathtext.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from qasic.reports.labels import place_labels
from qasic.reports.pareto import lookup, pareto_front
from qasic.reports.results import (
    ACCURACY_KEY,
    ENERGY_KEY,
    ENERGY_PARTS,
    chosen_point,
    validate_point,
    validate_results,
)

# (label, pJ per unit), smallest first.
ENERGY_UNITS = (("pJ", 1.0), ("nJ", 1e3), ("µJ", 1e6), ("mJ", 1e9))
LOG_SPAN = 10.0  # switch the energy axis to log scale when max/min exceeds this ratio
POINT_COLOR = "#4C72B0"
FRONT_COLOR = "#DD8452"
FP32_COLOR = "0.35"
PART_COLORS = {"mac": "#4C72B0", "sram": "#55A868", "dram": "#C44E52", "other": "#8C8C8C",
               "leakage": "#DD8452"}
DPI = 150
LABEL_PT = 8  # font size of point labels
LABEL_PAD_PT = 1.2  # white box around a label's text
LABEL_GAP_PT = 9.0  # point centre to label; clears the chosen ring (radius ~8 pt)
MARKER_RADIUS_PT = 8.0


def energy_unit(values_pj: Sequence[float]) -> tuple[str, float]:
    """The largest unit in which the smallest positive value is still >= 1: (label, pJ per unit)."""
    positive = [v for v in values_pj if v > 0]
    smallest = min(positive, default=1.0)
    fitting = [u for u in ENERGY_UNITS if smallest >= u[1]]
    return fitting[-1] if fitting else ENERGY_UNITS[0]


def needs_log_scale(values: Sequence[float]) -> bool:
    """True when all values are positive and span more than LOG_SPAN."""
    return min(values) > 0 and max(values) / min(values) > LOG_SPAN


def energy_accuracy_figure(results: Mapping[str, Any]) -> Figure:
    """Energy per inference (x) vs accuracy in % (y) of every point, with the Pareto front.

    Artists carry gids for inspection: "points" (all points), "pareto-line" and "pareto-markers",
    "chosen" (ring on the chosen point) and "fp32" (dashed horizontal line).
    """
    validate_results(results)
    points = results["points"]
    unit, scale = energy_unit([lookup(p, ENERGY_KEY) for p in points])
    x = [lookup(p, ENERGY_KEY) / scale for p in points]
    y = [100 * p[ACCURACY_KEY] for p in points]
    fig = _new_figure((7.5, 4.8))
    ax = fig.add_subplot()
    ax.scatter(x, y, s=36, color=POINT_COLOR, zorder=3, label="design points", gid="points")
    _draw_front(ax, x, y, pareto_front(points, ENERGY_KEY, ACCURACY_KEY))
    _draw_chosen(ax, x, y, points.index(chosen_point(results)))
    fp32 = 100 * results["fp32_accuracy"]
    ax.axhline(fp32, color=FP32_COLOR, linestyle="--", linewidth=1.2,
               label=f"FP32 accuracy ({fp32:.2f} %)", gid="fp32")
    _finish_axes(ax, x, unit)
    ax.set_title(f"{results['model']} on {results['arch']['name']}: energy vs accuracy",
                 parse_math=False)
    _label_points(ax, x, y, [p["name"] for p in points])  # last: needs the final axes layout
    ax.legend(loc="best", fontsize=8)
    return fig


def layer_breakdown_figure(point: Mapping[str, Any]) -> Figure:
    """Per-layer cycles (left) and energy stacked by mac/sram/dram/other (right) of one point."""
    validate_point(point)
    layers = point["layers"]
    fig = _new_figure((9.5, 4.0))
    ax_cycles, ax_energy = fig.subplots(1, 2)
    _cycles_bars(ax_cycles, layers)
    _energy_bars(ax_energy, layers)
    fig.suptitle(f"Per-layer breakdown of {point['name']} (per inference)", parse_math=False)
    return fig


def save_png(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and return the path."""
    path = Path(path)
    fig.savefig(path, format="png", dpi=DPI)
    return path


def png_bytes(fig: Figure) -> bytes:
    """``fig`` encoded as PNG, for inlining into HTML."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _new_figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)  # attaches itself to fig; a private canvas, not the global backend
    return fig


def _draw_front(ax: Axes, x: list[float], y: list[float], front: list[int]) -> None:
    fx, fy = [x[i] for i in front], [y[i] for i in front]
    # A staircase, not a straight segment: the space between two configurations is not attainable,
    # so the best accuracy at a given energy is that of the last front point at or below it.
    ax.plot(fx, fy, color=FRONT_COLOR, linewidth=1.5, drawstyle="steps-post", zorder=2,
            label="Pareto front", gid="pareto-line")
    ax.scatter(fx, fy, s=90, marker="D", facecolors="none", edgecolors=FRONT_COLOR,
               linewidths=1.8, zorder=4, label="Pareto-optimal", gid="pareto-markers")


def _draw_chosen(ax: Axes, x: list[float], y: list[float], i: int) -> None:
    ax.scatter([x[i]], [y[i]], s=260, marker="o", facecolors="none", edgecolors="black",
               linewidths=1.4, zorder=5, label="chosen", gid="chosen")


def _label_points(ax: Axes, x: list[float], y: list[float], names: list[str]) -> None:
    fig = ax.get_figure()
    fig.draw_without_rendering()  # runs the constrained layout, so pixel positions are final
    px = fig.dpi / 72  # pixels per point
    data = list(zip(x, y, strict=True))
    anchors = [(float(a), float(b)) for a, b in ax.transData.transform(data)]
    sizes = [_label_size(fig, name) for name in names]
    offsets = place_labels(anchors, sizes, tuple(ax.bbox.extents), LABEL_GAP_PT * px,
                           MARKER_RADIUS_PT * px)
    for xi, yi, name, (dx, dy), (_, h) in zip(x, y, names, offsets, sizes, strict=True):
        far = abs(dy) > LABEL_GAP_PT * px / 2 + h + 0.5  # not in a slot next to its point
        pad = LABEL_PAD_PT * px
        _annotate(ax, (xi, yi), name, ((dx + pad) / px, (dy + pad) / px), far)


def _label_size(fig: Figure, name: str) -> tuple[float, float]:
    """Width and height in pixels of a label's box (text plus padding)."""
    renderer = fig.canvas.get_renderer()
    w, h, _ = renderer.get_text_width_height_descent(name, FontProperties(size=LABEL_PT), False)
    pad = 2 * LABEL_PAD_PT * fig.dpi / 72
    return w + pad, h + pad


def _annotate(ax: Axes, xy: tuple[float, float], name: str, offset_pt: tuple[float, float],
              leader: bool) -> None:
    # A translucent box keeps a label readable where it crosses the FP32 line or the front; a
    # label moved away from its point gets a thin leader line back to it.
    arrow = {"arrowstyle": "-", "color": "0.45", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 5}
    box = {"boxstyle": f"square,pad={LABEL_PAD_PT / LABEL_PT}", "facecolor": "white",
           "edgecolor": "none", "alpha": 0.75}
    ax.annotate(name, xy, xytext=offset_pt, textcoords="offset points", fontsize=LABEL_PT,
                ha="left", va="bottom", parse_math=False, bbox=box,
                arrowprops=arrow if leader else None)


def _finish_axes(ax: Axes, x: list[float], unit: str) -> None:
    if needs_log_scale(x):
        _log_energy_axis(ax)
    ax.set_xlabel(f"Energy per inference ({unit})")
    ax.set_ylabel("Accuracy (%)")
    ax.grid(True, which="major", alpha=0.3)
    ax.set_axisbelow(True)  # grid behind the markers
    ax.margins(x=0.12, y=0.08)  # room for the labels right of the rightmost point


def _log_energy_axis(ax: Axes) -> None:
    # Plain numbers at 1-2-5 steps read better than bare powers of ten over two or three decades.
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _cycles_bars(ax: Axes, layers: list[dict]) -> None:
    pos = list(range(len(layers)))
    ax.bar(pos, [layer["cycles"] for layer in layers], color=POINT_COLOR, gid="cycles")
    _layer_ticks(ax, layers)
    ax.set_ylabel("Cycles")
    ax.set_title("Cycles per layer")


def _energy_bars(ax: Axes, layers: list[dict]) -> None:
    unit, scale = energy_unit([layer["energy_pj"]["total"] for layer in layers])
    pos = list(range(len(layers)))
    bottom = [0.0] * len(layers)
    for part in ENERGY_PARTS:
        heights = [layer["energy_pj"][part] / scale for layer in layers]
        ax.bar(pos, heights, bottom=bottom, color=PART_COLORS[part], label=part, gid=part)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    _layer_ticks(ax, layers)
    ax.set_ylabel(f"Energy ({unit})")
    ax.set_title("Energy per layer")
    ax.legend(fontsize=8)


def _layer_ticks(ax: Axes, layers: list[dict]) -> None:
    # Integer positions with tick labels, because categorical x would merge repeated layer names.
    ax.set_xticks(range(len(layers)), [layer["name"] for layer in layers], parse_math=False)
    ax.grid(True, axis="y", alpha=0.3)
    ax.set_axisbelow(True)  # grid behind the bars
