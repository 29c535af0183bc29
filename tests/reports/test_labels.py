from itertools import combinations

from qasic.reports.labels import overlap, place_labels, shift

BOUNDS = (0.0, 0.0, 1000.0, 1000.0)
GAP, RADIUS = 10.0, 8.0


def boxes(anchors: list, sizes: list, offsets: list) -> list:
    return [shift(a, o, *s) for a, s, o in zip(anchors, sizes, offsets, strict=True)]


def test_lone_label_goes_right_and_above() -> None:
    assert place_labels([(500, 500)], [(40, 12)], BOUNDS, GAP, RADIUS) == [(10.0, 5.0)]


def test_label_at_right_edge_flips_left() -> None:
    [(dx, dy)] = place_labels([(990, 500)], [(40, 12)], BOUNDS, GAP, RADIUS)
    assert (dx, dy) == (-50.0, 5.0)


def test_clustered_labels_do_not_overlap() -> None:
    anchors = [(500 + 3 * i, 500 + i) for i in range(6)]  # six points within a few pixels
    sizes = [(40, 12)] * 6
    placed = boxes(anchors, sizes, place_labels(anchors, sizes, BOUNDS, GAP, RADIUS))
    assert all(overlap(a, b) == 0 for a, b in combinations(placed, 2))


def test_labels_avoid_other_markers() -> None:
    anchors = [(500, 500), (530, 510)]  # the second point sits where the first label would go
    sizes = [(40, 12)] * 2
    first = boxes(anchors, sizes, place_labels(anchors, sizes, BOUNDS, GAP, RADIUS))[0]
    marker = (530 - RADIUS, 510 - RADIUS, 530 + RADIUS, 510 + RADIUS)
    assert overlap(first, marker) == 0
