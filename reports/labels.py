"""Greedy placement of point labels so they overlap neither each other nor the markers.

Sweeps cluster near FP32 accuracy, so labels at one fixed offset pile up. This tries a short list of
slots around each point (right/left, then further above/below) and keeps the first with the least
overlap. Pure geometry in display pixels; no matplotlib here, so it is tested on plain numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, y up
Offset = tuple[float, float]  # label's lower-left corner minus its anchor, pixels

# (side, row): side +1 right of the point, -1 left; row +n the n-th slot above, -n below.
SLOTS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (1, 2), (1, -2), (-1, 2), (-1, -2),
         (1, 3), (1, -3), (-1, 3), (-1, -3))
ROW_PITCH = 1.15  # label heights between stacked rows
OUTSIDE_WEIGHT = 4.0  # a label cut off by the axes edge is worse than one overlapping another


def place_labels(anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]],
                 bounds: Box, gap: float, marker_radius: float) -> list[Offset]:
    """Offset of each label (width, height in ``sizes``) from its anchor point.

    Labels are placed in input order; each avoids the labels placed before it, every marker (a
    square of ``marker_radius`` around each anchor) and the area outside ``bounds``. ``gap`` is the
    horizontal clearance between a point and its label; it should exceed ``marker_radius``.
    """
    markers = [(x - marker_radius, y - marker_radius, x + marker_radius, y + marker_radius)
               for x, y in anchors]
    placed: list[Box] = []
    offsets: list[Offset] = []
    for (x, y), (w, h) in zip(anchors, sizes, strict=True):
        options = [slot_offset(side, row, w, h, gap) for side, row in SLOTS]
        # min() keeps the first of equal costs, so the preferred slot wins when all are free.
        best = min(options, key=lambda o: cost(shift((x, y), o, w, h), placed + markers, bounds))
        offsets.append(best)
        placed.append(shift((x, y), best, w, h))
    return offsets


def slot_offset(side: int, row: int, w: float, h: float, gap: float) -> Offset:
    dx = gap if side > 0 else -gap - w
    step = (abs(row) - 1) * ROW_PITCH * h
    dy = gap / 2 + step if row > 0 else -gap / 2 - h - step
    return dx, dy


def shift(anchor: tuple[float, float], offset: Offset, w: float, h: float) -> Box:
    x0, y0 = anchor[0] + offset[0], anchor[1] + offset[1]
    return x0, y0, x0 + w, y0 + h


def cost(box: Box, obstacles: Sequence[Box], bounds: Box) -> float:
    """Area overlapping obstacles plus weighted area outside bounds."""
    outside = area(box) - overlap(box, bounds)
    return sum(overlap(box, other) for other in obstacles) + OUTSIDE_WEIGHT * outside


def overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def area(box: Box) -> float:
    return (box[2] - box[0]) * (box[3] - box[1])
