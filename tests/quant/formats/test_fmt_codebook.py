from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError, InputError
from qasic.quant.formats import NF4, CodebookFormat, power_grid

# reference/formats.md, bitsandbytes' table
NF4_REFERENCE = [
    -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
    -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
    0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
    0.7229568362236023, 1.0,
]


def test_nf4_values_are_bitsandbytes():
    assert list(NF4.values) == NF4_REFERENCE
    assert (NF4.bits, NF4.max_value) == (4, 1.0)
    assert list(NF4.decode(np.arange(16))) == NF4_REFERENCE


def test_nearest_value_matches_brute_force():
    x = np.random.default_rng(0).uniform(-1.3, 1.3, 5000)
    brute = np.argmin(np.abs(x[:, None] - NF4.table[None, :]), axis=1)  # first = lower on ties
    assert np.array_equal(NF4.encode(x), brute)


def test_ties_go_to_the_lower_value_and_ends_saturate():
    t = NF4.table
    mids = (t[:-1] + t[1:]) / 2
    assert list(NF4.encode(mids)) == list(range(15))
    assert list(NF4.encode(np.array([-np.inf, -7.0, 7.0, np.inf, -0.0]))) == [0, 0, 15, 15, 7]


def test_power_grid_formula():
    g = power_grid(4, 1.5)
    i = np.arange(8)
    pos = (i / 7) ** 1.5
    assert np.array_equal(g.table, np.concatenate([-pos[:0:-1], pos]))
    assert (g.bits, len(g.values), g.name) == (4, 15, "pow4_a1.5")
    assert np.array_equal(power_grid(3, 1.0).table, np.arange(-3, 4) / 3)


def test_codebook_validation():
    with pytest.raises(ConfigError, match="values must be finite and strictly increasing"):
        CodebookFormat("bad", (0.0, 1.0, 0.5))
    with pytest.raises(ConfigError, match="has 257 values: allowed 2..256"):
        CodebookFormat("big", tuple(range(257)))
    with pytest.raises(ConfigError, match="power_grid bits = 9 is out of range"):
        power_grid(9, 1.5)
    with pytest.raises(ConfigError, match="alpha = 0 must be > 0"):
        power_grid(4, 0)
    with pytest.raises(InputError, match="pow4_a2 code 15 is out of range 0..14"):
        power_grid(4, 2.0).decode(15)
