"""benchmarks/topk_picks.py's row matching: the quantized decoder rows put in float's pick order
(a token both picked compared with its own row; the others in the remaining slots)."""

from benchmarks.topk_picks import _order


def test_rows_are_matched_by_the_token_each_picked():
    assert _order([5, 2, 9], [2, 9, 5]) == [2, 0, 1]  # the same set, another order
    assert _order([5, 2, 9], [2, 7, 5]) == [2, 0, 1]  # 9 not picked: the slot 7 took
    assert _order([1, 2], [1, 2]) == [0, 1]
