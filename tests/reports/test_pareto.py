import pytest

from qasic.reports import pareto_front


def pts(*xy: tuple[float, float]) -> list[dict]:
    return [{"e": x, "acc": y} for x, y in xy]


@pytest.mark.parametrize("points, front", [
    ([], []),
    (pts((5, 0.5)), [0]),
    (pts((1, 0.5), (2, 0.9), (3, 0.7)), [0, 1]),            # (3, 0.7) is dominated by (2, 0.9)
    (pts((3, 0.9), (1, 0.5), (2, 0.7)), [1, 2, 0]),          # all optimal; ordered by energy
    (pts((1, 0.9), (2, 0.5), (3, 0.4)), [0]),                # one point dominates all
    (pts((2, 0.5), (2, 0.9)), [1]),                          # tie in x: higher accuracy wins
    (pts((1, 0.9), (2, 0.9)), [0]),                          # tie in y: lower energy wins
    (pts((2, 0.9), (1, 0.5), (2, 0.9)), [1, 0, 2]),          # duplicates both stay, input order
    (pts((1, 0.5), (1, 0.5), (1, 0.5)), [0, 1, 2]),
])
def test_front(points: list[dict], front: list[int]) -> None:
    assert pareto_front(points, "e", "acc") == front


def test_dotted_keys_reach_nested_values() -> None:
    points = [{"energy_pj": {"total": 2.0}, "accuracy": 0.9},
              {"energy_pj": {"total": 1.0}, "accuracy": 0.8},
              {"energy_pj": {"total": 3.0}, "accuracy": 0.85}]
    assert pareto_front(points, "energy_pj.total", "accuracy") == [1, 0]


def test_input_is_not_changed() -> None:
    points = pts((3, 0.9), (1, 0.5))
    before = [dict(p) for p in points]
    pareto_front(points, "e", "acc")
    assert points == before


def test_fixture_front(results: dict) -> None:
    names = [results["points"][i]["name"]
             for i in pareto_front(results["points"], "energy_pj.total", "accuracy")]
    assert names == ["W2A2", "W4A4", "W4A8", "W8-4-4A8", "W6A8", "W8A8"]
