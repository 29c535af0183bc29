"""sweep.html: one self-contained page to explore a sweep: the Pareto front as inline SVG scatters
(hover a point for its name and numbers), every point in a table that sorts by any column and
filters by text or to the front, and the infeasible points with their reasons.

Offline by construction: CSS, SVG and a few lines of script inline, nothing fetched. Every string
from the rows goes through ``html.escape``; no timestamp, so the same rows give the same bytes.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Mapping, Sequence
from typing import Any

from qasic.reports.frontier import Objective, measured
from qasic.reports.svgplot import Dot, scatter_svg

Row = Mapping[str, Any]
# (heading, column, scale, format): the table's columns
COLUMNS = (("model", "model", None, "{}"), ("arch", "arch", None, "{}"),
           ("point", "point", None, "{}"), ("accuracy %", "accuracy", 0.01, "{:.2f}"),
           ("energy nJ", "energy_pj.total", 1e3, "{:.3g}"), ("latency µs", "latency_us", 1,
                                                              "{:.3g}"),
           ("area mm²", "area_mm2", 1, "{:.3g}"), ("cycles", "cycles", 1, "{:d}"),
           ("DRAM bytes", "dram_bytes", 1, "{:d}"), ("PE a×w", None, None, "{}"),
           ("avg w bits", "avg_weight_bits", 1, "{:.2f}"), ("bit-exact", "bit_exact", None,
                                                            "{}"))

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; color: #222; max-width: 1300px; margin: 2em auto;
       padding: 0 1em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ccc; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .note { color: #555; }
table { border-collapse: collapse; font-size: 13px; margin: 0.6em 0; }
th, td { border: 1px solid #d0d0d0; padding: 3px 8px; } td.num { text-align: right; }
th { background: #f0f0f0; cursor: pointer; text-align: left; }
tr.front td { background: #fff0e3; font-weight: 600; }
.legend span { margin-right: 1.2em; } .legend b { display: inline-block; width: 10px;
height: 10px; border-radius: 5px; margin-right: 4px; }
"""

# Sort by a clicked column (numbers as numbers), filter rows by text and to the front.
_SCRIPT = """
const t = document.getElementById('points'), body = t.tBodies[0];
function show() {
  const q = document.getElementById('q').value.toLowerCase();
  const only = document.getElementById('front').checked;
  for (const r of body.rows) r.hidden = (only && !r.classList.contains('front')) ||
      !r.textContent.toLowerCase().includes(q);
}
t.tHead.addEventListener('click', e => {
  const i = e.target.cellIndex, up = e.target.dataset.up !== '1';
  e.target.dataset.up = up ? '1' : '0';
  const key = r => { const s = r.cells[i].textContent, n = parseFloat(s);
                     return isNaN(n) ? s : n; };
  [...body.rows].sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1))
    .forEach(r => body.appendChild(r));
});
document.getElementById('q').addEventListener('input', show);
document.getElementById('front').addEventListener('change', show);
"""


def sweep_page(rows: Sequence[Row], on_front: Sequence[bool],
               objectives: Sequence[Objective]) -> str:
    """The page for ``rows`` (sweep store rows, in order) and their front flags."""
    ok = [(r, f) for r, f in zip(rows, on_front, strict=True) if r["status"] == "ok"]
    bad = [r for r in rows if r["status"] != "ok"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    names = ", ".join(o.name for o in objectives)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>qasic sweep: {html.escape(', '.join(models))}</title>",
             f"<style>{_CSS}</style></head><body>",
             f"<h1>qasic sweep: {html.escape(', '.join(models))}</h1>",
             (f"<p>{len(rows)} design points: {len(ok)} measured, {len(bad)} infeasible; "
             f"{sum(f for _, f in ok)} on the Pareto front of {html.escape(names)}.</p>"),
             _plots([r for r, _ in ok], [f for _, f in ok], objectives, models),
             _table([r for r, _ in ok], [f for _, f in ok]), _infeasible(bad),
             f"<script>{_SCRIPT}</script></body></html>"]
    return "\n".join(parts) + "\n"


def _plots(rows: Sequence[Row], on_front: Sequence[bool], objectives: Sequence[Objective],
           models: list[str]) -> str:
    out = ["<h2>Pareto front</h2>"]
    unmeasured = [o.name for o in objectives if any(r.get(o.column) is None for r in rows)]
    if unmeasured:
        n = sum(not measured(r, objectives) for r in rows)
        out.append(f'<p class="note">{n} of {len(rows)} points have no value for '
                   f"{html.escape(', '.join(unmeasured))} (null: not measured) and are left out "
                   "of the front and the plots.</p>")
    legend = "".join(f'<span><b style="background:{c}"></b>{html.escape(m)}</span>'
                     for m, c in zip(models, _colors(len(models)), strict=True))
    out.append(f'<p class="legend">{legend}<span>ringed: on the front</span></p>')
    out.append('<div class="plots">')
    for y, x in itertools.combinations(objectives, 2):
        dots = [Dot(r[x.column] / x.scale, r[y.column] / y.scale, _title(r),
                    models.index(r["model"]), f)
                for r, f in zip(rows, on_front, strict=True) if measured(r, objectives)]
        if dots:
            out.append(scatter_svg(dots, x.label, y.label, line=len(objectives) == 2))
    out.append("</div>")
    return "\n".join(out)


def _colors(n: int) -> list[str]:
    from qasic.reports.svgplot import PALETTE

    return [PALETTE[i % len(PALETTE)] for i in range(n)]


def _title(r: Row) -> str:
    acc = "–" if r["accuracy"] is None else f"{100 * r['accuracy']:.2f} %"
    return (f"{r['model']} · {r['arch']} · {r['point']}\naccuracy {acc}, "
            f"{r['energy_pj.total'] / 1e3:.4g} nJ, {r['latency_us']:.4g} µs")


def _table(rows: Sequence[Row], on_front: Sequence[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h, *_ in COLUMNS) + "<th>front</th>"
    body = []
    for r, f in zip(rows, on_front, strict=True):
        cells = "".join(_cell(r, *c[1:]) for c in COLUMNS)
        cls = ' class="front"' if f else ""
        body.append(f"<tr{cls}>{cells}<td>{'yes' if f else ''}</td></tr>")
    return ("<h2>Points</h2><p><input id=\"q\" placeholder=\"filter\"> <label><input "
            "id=\"front\" type=\"checkbox\"> front only</label> (click a heading to sort)</p>"
            f'<table id="points"><thead><tr>{head}</tr></thead><tbody>'
            + "\n".join(body) + "</tbody></table>")


def _cell(r: Row, column: str | None, scale: float | None, fmt: str) -> str:
    if column is None:  # the PE widths the array was built with
        return f"<td>{r['pe_input_bits']}×{r['pe_weight_bits']}</td>"
    value = r.get(column)
    if value is None:
        return '<td class="num">–</td>'
    if scale is None:
        return f"<td>{html.escape(str(value))}</td>"
    shown = fmt.format(int(value / scale) if fmt == "{:d}" else value / scale)
    return f'<td class="num">{shown}</td>'


def _infeasible(rows: Sequence[Row]) -> str:
    if not rows:
        return ""
    body = "\n".join(f"<tr><td>{html.escape(r['model'])}</td><td>{html.escape(r['arch'])}</td>"
                     f"<td>{html.escape(r['point'])}</td><td>{html.escape(r['error'] or '')}"
                     "</td></tr>" for r in rows)
    return ("<h2>Infeasible points</h2><table><thead><tr><th>model</th><th>arch</th>"
            f"<th>point</th><th>why</th></tr></thead><tbody>{body}</tbody></table>")
