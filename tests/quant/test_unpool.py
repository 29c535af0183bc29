"""Max unpooling at a tiling max pool's indices (qasic.quant.unpool): ENet's and SegNet's
decoders put each value at its window's max in the pool's input. The rewrite (a top-1 mask of
each window times the values) leaves the float graph equal to torch; golden reference ==
simulator, the float-vs-quantized cosine; an unpooling the indices do not tile stays refused in
one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float
from qasic.quant.graph import to_internal


class _Unpool(nn.Module):
    """PReLU features, a 2x2 max pool with indices, a 1x1 conv of the pooled map (ENet's
    main_conv1 of the decoder's features), max_unpool2d at the indices to the input's size."""

    def __init__(self, k: int = 2, stride: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.c, self.d, self.p = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.PReLU()
        self.pool = nn.MaxPool2d(k, stride, return_indices=True)
        self.unpool = nn.MaxUnpool2d(k, stride)

    def forward(self, x):
        x = self.p(self.c(x))
        m, idx = self.pool(x)
        return self.unpool(self.d(m), idx, output_size=x.size())


def test_a_max_unpooling_at_the_pools_indices_is_a_window_mask_times_the_values():
    """Before: refused ('output 1 of aten.max_pool2d_with_indices.default (e.g. pool indices
    ...) is not supported')."""
    x = np.random.default_rng(0).normal(size=(6, 3, 8, 6)).astype(np.float32)
    m = _Unpool().eval()
    graph = capture(m, torch.from_numpy(x[:2]))
    assert "topk_mask" in [n.op for n in graph.nodes]
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)),
                               to_internal(want, graph.output_layout), atol=1e-5)
    assert (want == 0).mean() >= 0.74  # three of each window's four pixels
    r = qasic.evaluate(m, x, calibration=x)
    # the 8-bit codes of a window tie where the floats do not: the first of them is picked
    assert r["bit_exact"] and r["cosine"] > 0.95, r["cosine"]


def test_an_unpooling_of_overlapping_windows_stays_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="output 1 of aten.max_pool2d_with_indices") \
            as e:
        capture(_Unpool(3, 2).eval(), torch.randn(1, 3, 9, 9))
    assert "\n" not in str(e.value)
