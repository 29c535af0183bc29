from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError
from qasic.quant.formats import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    NF4,
    IntFormat,
    integer_levels,
    power_grid,
)

WIDTHS = [(FP4_E2M1, 0.5, 12, 5), (FP6_E2M3, 0.125, 60, 7), (FP6_E3M2, 0.0625, 448, 10),
          (FP8_E4M3, 2.0**-9, 229376, 19), (FP8_E5M2, 2.0**-16, 57344 * 2**16, 33),
          (IntFormat(8), 1.0, 127, 8), (IntFormat(4, symmetric=False), 1.0, 7, 4),
          (IntFormat(4, signed=False), 1.0, 15, 5)]


@pytest.mark.parametrize("fmt, lsb, top, width", WIDTHS, ids=[w[0].name for w in WIDTHS])
def test_levels_times_lsb_is_decode_exactly(fmt, lsb, top, width):
    lv = integer_levels(fmt)
    codes = np.arange(1 << fmt.bits)
    values = fmt.decode(codes)
    ok = np.isfinite(values)
    assert lv.levels.dtype == np.int64 and len(lv.levels) == 1 << fmt.bits
    assert np.array_equal(lv.levels[ok] * lv.lsb, values[ok])  # float equality, no tolerance
    assert (lv.lsb, int(lv.levels.max()), lv.width, lv.max_error) == (lsb, top, width, 0.0)


def test_special_codes_map_like_encode():
    lv = integer_levels(FP8_E5M2)
    assert lv.levels[0x7C] == lv.levels[0x7B] and lv.levels[0xFC] == -lv.levels[0x7B]  # inf
    assert lv.levels[0x7D] == 0 and integer_levels(FP8_E4M3).levels[0xFF] == 0        # NaN
    assert integer_levels(FP4_E2M1).levels[8] == 0                                     # -0


@pytest.mark.parametrize("frac_bits", [4, 6, 7, 8, 12])
def test_nf4_fixed_point_codebook(frac_bits):
    lv = integer_levels(NF4, frac_bits)
    assert lv.lsb == 2.0**-frac_bits and len(lv.levels) == 16
    err = np.abs(lv.levels * lv.lsb - NF4.table)
    assert lv.max_error == err.max() <= 2.0 ** -(frac_bits + 1)
    assert lv.levels[7] == 0 and lv.levels[15] == 2**frac_bits == -lv.levels[0]
    assert lv.width == frac_bits + 2


def test_codebook_needs_frac_bits_and_short_books_pad():
    with pytest.raises(ConfigError, match="codebook nf4 has no exact integer grid: pass "
                                          "frac_bits"):
        integer_levels(NF4)
    lv = integer_levels(power_grid(4, 1.5), 8)
    assert len(lv.levels) == 16 and lv.levels[15] == 0  # code 15 is never produced
