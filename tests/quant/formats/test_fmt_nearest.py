"""nearest_index counts the midpoints below x by comparisons for tables of up to 16 midpoints
(NF4's MSE scale search, 100 ratios per weight): the same indices as the binary search, exact
ties at midpoints to the lower index, +-inf to the ends; and the MSE search picks the same
scales with its range computed once, and the smaller ratios tried only on the blocks ratio 1
does not encode exactly, as when it computed the range per ratio for every block."""

from __future__ import annotations

import numpy as np

from qasic.quant.formats import scales
from qasic.quant.formats.codebook import NF4, power_grid
from qasic.quant.formats.codes import nearest_index
from qasic.quant.formats.granularity import PerChannel
from qasic.quant.formats.integer import IntFormat


def test_the_comparison_count_equals_the_binary_search():
    rng = np.random.default_rng(0)
    for table in (NF4.table, power_grid(3, 1.5).table, np.arange(17.0)):
        mids = (table[:-1] + table[1:]) / 2
        x = np.concatenate([rng.standard_normal(5000) * 2, mids, table, [np.inf, -np.inf]])
        got = nearest_index(table, x.reshape(-1, 1))[:, 0]
        np.testing.assert_array_equal(got, np.searchsorted(mids, x, side="left"))


def test_the_mse_search_with_its_range_once_equals_the_rule_per_ratio():
    rng = np.random.default_rng(1)
    blocks = rng.standard_normal((12, 64)) * rng.uniform(0.1, 3, (12, 1))
    blocks[2] = 0.0
    blocks[3] = rng.random(64) > 0.5  # a 0/1 placement's block: exact at ratio 1
    for fmt in (NF4, IntFormat(4, symmetric=False), IntFormat(4)):
        s, zp = scales.choose_scales(blocks, fmt, PerChannel(), "mse", grid=20)
        best = np.full(len(blocks), np.inf)
        want_s = np.zeros(len(blocks))
        for ratio in np.arange(20, 0, -1) / 20:  # the rule as it was: the range each ratio
            if zp is None:
                amax = np.abs(blocks).max(axis=1) * ratio
                si, zi = np.where(amax > 0, amax / fmt.max_value, 1.0), 0
            else:
                si, zpi = scales.affine_params(blocks, fmt, ratio)
                zi = zpi[:, None]
            x = blocks / si[:, None] + zi
            err = ((fmt.snap(x) - x) ** 2).sum(axis=1) * si**2
            want_s = np.where(err < best, si, want_s)
            best = np.minimum(err, best)
        np.testing.assert_array_equal(s, want_s)
