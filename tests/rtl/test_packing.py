"""Bus packing and tile padding used by the testbench."""

from __future__ import annotations

import numpy as np

from qasic.rtl.packing import pack_row, pad_tile, unpack_row, wrap


def test_pack_unpack_round_trip_signed():
    values = [-128, 127, -1, 0, 5]
    word = pack_row(values, 8)
    assert word & 0xFF == 0x80 and (word >> 8) & 0xFF == 0x7F
    assert unpack_row(word, 8, 5) == values
    assert unpack_row(pack_row([-2, 1, -1], 2), 2, 3) == [-2, 1, -1]


def test_pad_tile_zero_fills_to_the_array():
    a, w = pad_tile(np.ones((2, 3)), np.ones((3, 4)), rows=4, cols=5)
    assert a.shape == (2, 4) and w.shape == (4, 5)
    assert a[:, 3:].sum() == 0 and w[3:].sum() == 0 and w[:, 4:].sum() == 0


def test_wrap_is_twos_complement():
    np.testing.assert_array_equal(wrap(np.array([65536, 32768, -32769, 5]), 16),
                                  [0, -32768, 32767, 5])
