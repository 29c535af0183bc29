"""A scatter plot as inline SVG text: points with hover titles, a highlighted subset, axes with
ticks. For pages that must work offline and alone (no scripts, no fonts, no image files)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 560, 380
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 20, 50
PALETTE = ("#4C72B0", "#55A868", "#C44E52", "#8172B2", "#CCB974", "#64B5CD", "#8C8C8C")
FRONT_COLOR = "#DD8452"
LOG_SPAN = 20.0  # a positive axis spanning more than this ratio is drawn in log scale


@dataclass(frozen=True)
class Dot:
    x: float
    y: float
    title: str        # the hover text
    series: int = 0   # colour index (e.g. the model)
    marked: bool = False


@dataclass(frozen=True)
class Axis:
    lo: float
    hi: float
    log: bool

    @classmethod
    def of(cls, values: Sequence[float]) -> Axis:
        lo, hi = min(values), max(values)
        log = lo > 0 and hi / lo > LOG_SPAN
        if log:
            return cls(math.log10(lo) - 0.05, math.log10(hi) + 0.05, True)
        pad = (hi - lo) * 0.06 or abs(hi) * 0.06 or 1.0
        return cls(lo - pad, hi + pad, False)

    def frac(self, v: float) -> float:
        v = math.log10(v) if self.log else v
        return (v - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[float]:
        if self.log:  # 1, 2, 5 times each power of ten in range
            ticks = [m * 10.0 ** e for e in range(math.floor(self.lo), math.ceil(self.hi) + 1)
                     for m in (1, 2, 5)]
            return [t for t in ticks if self.lo <= math.log10(t) <= self.hi]
        step = _nice_step((self.hi - self.lo) / 5)
        first = math.ceil(self.lo / step) * step
        return [first + i * step for i in range(int((self.hi - first) / step) + 1)]


def _nice_step(raw: float) -> float:
    magnitude = 10.0 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)


def scatter_svg(dots: Sequence[Dot], x_label: str, y_label: str, line: bool = False) -> str:
    """The SVG element. ``line``: join the marked dots in x order (a 2-D Pareto front)."""
    xa, ya = Axis.of([d.x for d in dots]), Axis.of([d.y for d in dots])
    pw, ph = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(d: Dot) -> tuple[float, float]:
        return LEFT + xa.frac(d.x) * pw, TOP + (1 - ya.frac(d.y)) * ph

    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">'),
             f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
    parts += _ticks(xa, ya, pw, ph)
    parts.append(f'<text x="{LEFT + pw / 2}" y="{HEIGHT - 12}" text-anchor="middle">'
                 f'{html.escape(x_label)}</text>')
    parts.append(f'<text transform="translate(16 {TOP + ph / 2}) rotate(-90)" '
                 f'text-anchor="middle">{html.escape(y_label)}</text>')
    marked = sorted((d for d in dots if d.marked), key=lambda d: d.x)
    if line and len(marked) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in map(px, marked))
        parts.append(f'<polyline points="{path}" fill="none" stroke="{FRONT_COLOR}" '
                     'stroke-width="1.5"/>')
    for d in sorted(dots, key=lambda d: d.marked):  # marked dots on top
        x, y = px(d)
        color = PALETTE[d.series % len(PALETTE)]
        ring = f' stroke="{FRONT_COLOR}" stroke-width="2.5"' if d.marked else ""
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{5 if d.marked else 3.5}" '
                     f'fill="{color}"{ring}><title>{html.escape(d.title)}</title></circle>')
    parts.append("</svg>")
    return "\n".join(parts)


def _ticks(xa: Axis, ya: Axis, pw: float, ph: float) -> list[str]:
    out = []
    for t in xa.ticks():
        x = LEFT + xa.frac(t) * pw
        out.append(f'<line x1="{x:.1f}" y1="{TOP + ph}" x2="{x:.1f}" y2="{TOP + ph + 4}" '
                   f'stroke="#999"/><text x="{x:.1f}" y="{TOP + ph + 16}" '
                   f'text-anchor="middle">{t:g}</text>')
    for t in ya.ticks():
        y = TOP + (1 - ya.frac(t)) * ph
        out.append(f'<line x1="{LEFT - 4}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="#999"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{t:g}</text>')
    return out
