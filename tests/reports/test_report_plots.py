import json
import subprocess
import sys
from pathlib import Path

import pytest
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

from qasic.reports import energy_accuracy_figure, layer_breakdown_figure, save_png
from qasic.reports.plots import energy_unit


def by_gid(ax: Axes, gid: str) -> list:
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_one_scatter_point_and_one_label_per_design_point(results: dict) -> None:
    ax = energy_accuracy_figure(results).axes[0]
    (points,) = by_gid(ax, "points")
    assert len(points.get_offsets()) == 7
    assert [t.get_text() for t in ax.texts] == [p["name"] for p in results["points"]]


def test_pareto_front_drawn_in_energy_order(results: dict) -> None:
    ax = energy_accuracy_figure(results).axes[0]
    (line,) = by_gid(ax, "pareto-line")
    (markers,) = by_gid(ax, "pareto-markers")
    # Fixture energies are 40..240 nJ; the front skips W2A8 (120 nJ, 80 %).
    assert list(line.get_xdata()) == [40, 95, 150, 170, 200, 240]
    assert len(markers.get_offsets()) == 6
    assert line.get_drawstyle() == "steps-post"


def test_fp32_dashed_line_and_legend(results: dict) -> None:
    ax = energy_accuracy_figure(results).axes[0]
    (fp32,) = by_gid(ax, "fp32")
    assert list(fp32.get_ydata()) == [pytest.approx(97.8)] * 2
    assert fp32.get_linestyle() == "--"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "FP32 accuracy (97.80 %)" in legend and "Pareto front" in legend


def test_chosen_point_ringed(results: dict) -> None:
    ax = energy_accuracy_figure(results).axes[0]
    (chosen,) = by_gid(ax, "chosen")
    assert chosen.get_offsets().tolist() == [[150, pytest.approx(97.2)]]


def test_axes_units_and_linear_scale_within_a_decade(results: dict) -> None:
    ax = energy_accuracy_figure(results).axes[0]
    assert ax.get_xlabel() == "Energy per inference (nJ)"
    assert ax.get_ylabel() == "Accuracy (%)"
    assert ax.get_xscale() == "linear"


def test_log_scale_when_energy_spans_more_than_10x(results: dict) -> None:
    results["points"][-1]["energy_pj"]["total"] = 4_000.0  # 4 nJ vs 240 nJ
    ax = energy_accuracy_figure(results).axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Energy per inference (nJ)"


@pytest.mark.parametrize("values, unit", [
    ([5.0, 900.0], "pJ"), ([1_000.0, 2e6], "nJ"), ([3e6], "µJ"), ([0.5], "pJ"), ([0.0], "pJ"),
])
def test_energy_unit(values: list[float], unit: str) -> None:
    assert energy_unit(values)[0] == unit


@pytest.mark.parametrize("w2a2_pj", [40_000.0, 2_000.0])  # linear and log energy axis
def test_point_labels_do_not_overlap(results: dict, w2a2_pj: float) -> None:
    results["points"][-1]["energy_pj"]["total"] = w2a2_pj
    fig = energy_accuracy_figure(results)
    fig.canvas.draw()
    # Text's own extent: an Annotation's would include its leader line, which may cross labels.
    boxes = [Text.get_window_extent(t) for t in fig.axes[0].texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    axes_box = fig.axes[0].bbox
    assert all(axes_box.contains(b.x0, b.y0) and axes_box.contains(b.x1, b.y1) for b in boxes)


def test_log_axis_ticks_are_plain_numbers(results: dict) -> None:
    results["points"][-1]["energy_pj"]["total"] = 2_000.0
    fig = energy_accuracy_figure(results)
    fig.canvas.draw()
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert {"2", "5", "10", "100", "200"} <= set(labels)


def test_dollar_in_names_is_literal(results: dict) -> None:
    results["model"] = "net$x$"
    results["points"][0]["name"] = "W$8$"
    fig = energy_accuracy_figure(results)
    fig.canvas.draw()  # would raise or render math if the text were parsed as mathtext
    assert fig.axes[0].texts[0].get_text() == "W$8$"


def test_layer_breakdown_bars(results: dict) -> None:
    fig = layer_breakdown_figure(results["points"][0])
    cycles_ax, energy_ax = fig.axes
    assert [p.get_height() for p in cycles_ax.patches] == [360, 1680, 360]
    assert len(energy_ax.patches) == 3 * 5  # three layers x mac/sram/dram/other/leakage
    assert [t.get_text() for t in energy_ax.get_xticklabels()] == ["conv1", "conv2", "fc"]
    assert [t.get_text() for t in energy_ax.get_legend().get_texts()] == [
        "mac", "sram", "dram", "other", "leakage"]
    # Stacked: the top of each layer's column is its total (36 nJ for conv1 of W8A8).
    tops = [p.get_y() + p.get_height() for p in energy_ax.patches[-3:]]
    assert tops == pytest.approx([36.0, 168.0, 36.0])


def test_save_png(results: dict, tmp_path: Path) -> None:
    path = save_png(energy_accuracy_figure(results), tmp_path / "p.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_are_plain_figures(results: dict) -> None:
    assert isinstance(energy_accuracy_figure(results), Figure)


def test_reports_leave_matplotlib_global_state_alone(results: dict, tmp_path: Path) -> None:
    # Lesson 13: no pyplot and no global style or backend change, at import or while drawing.
    # rcParams is read with dict's own methods: its __getitem__ would resolve the backend and so
    # import pyplot itself. A fresh interpreter, since other tests may have imported pyplot.
    (tmp_path / "results.json").write_text(json.dumps(results))
    code = f"""
import sys, matplotlib
params = matplotlib.rcParams
raw = lambda: {{k: dict.__getitem__(params, k) for k in dict.keys(params)}}
before = raw()
import qasic.reports
qasic.reports.write_report({str(tmp_path / "results.json")!r}, {str(tmp_path)!r})
assert "matplotlib.pyplot" not in sys.modules
assert raw() == before
"""
    subprocess.run([sys.executable, "-c", code], check=True)
