"""Reports: results.json -> Pareto plot (PNG) and one self-contained HTML page.

Data and pictures stay apart: the demo writes ``results.json``; everything here is a pure function
of that data (validated by ``qasic.reports.results``), and only ``write_report`` touches files.
"""

from __future__ import annotations

from pathlib import Path

from qasic.reports.html import render_report
from qasic.reports.pareto import pareto_front
from qasic.reports.plots import energy_accuracy_figure, layer_breakdown_figure, save_png
from qasic.reports.results import load_results, validate_results

__all__ = [
    "energy_accuracy_figure", "layer_breakdown_figure", "load_results", "pareto_front",
    "render_report", "save_png", "validate_results", "write_report",
]


def write_report(results_json_path: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``pareto.png`` and ``report.html`` into ``out_dir`` (created if needed).

    Returns ``{"pareto_png": path, "report_html": path}``. A missing or malformed results file
    raises ``qasic.errors.InputError`` before anything is written.
    """
    results = load_results(results_json_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pareto = energy_accuracy_figure(results)
    return {
        "pareto_png": save_png(pareto, out_dir / "pareto.png"),
        "report_html": render_report(results, out_dir / "report.html", figures={"pareto": pareto}),
    }
