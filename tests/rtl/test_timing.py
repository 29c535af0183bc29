"""The fold cycle formula shared by the RTL and the simulator."""

from __future__ import annotations

import pytest

from qasic.rtl.timing import first_write_cycle, fold_cycles, preload_cycles, stream_cycles


@pytest.mark.parametrize("r,c,t", [(16, 16, 1), (16, 16, 64), (3, 5, 7), (1, 1, 1)])
def test_fold_cycles_is_preload_plus_stream(r, c, t):
    assert fold_cycles(r, c, t) == 2 * r + c + t - 2
    assert fold_cycles(r, c, t) == preload_cycles(r) + stream_cycles(r, c, t)
    # The last output row is written in the cycle before done.
    assert first_write_cycle(r, c) + t - 1 == fold_cycles(r, c, t) - 1


def test_fold_cycles_rejects_empty_folds():
    with pytest.raises(ValueError, match=r"^fold_cycles: t = 0 must be >= 1$"):
        fold_cycles(16, 16, 0)
