"""QuantConfig.softmax_bits: softmax outputs (p = code / qmax) stay 8-bit when activations are
narrower. At 4 bits the step is 1/7, so a softmax over 16 bins whose probabilities sit near 1/16
writes mostly code 0 (YOLOv8's DFL head: a softmax over 16 distance bins, then a 1x1 conv with
weights 0..15). Golden reference == simulator at either width; the 8-bit one stays close to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import ConfigError
from qasic.quant import QuantConfig, capture
from qasic.quant.quantize import quantize

BINS, ANCHORS = 16, 12


class DFLHead(nn.Module):
    """ultralytics' distribution focal loss head: 4 sides x 16 bins -> a softmax over the bins,
    then their expected value (a conv with weights 0..15)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.box = nn.Conv2d(8, 4 * BINS, 1)
        self.dfl = nn.Conv2d(BINS, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(BINS, dtype=torch.float).view(1, BINS, 1, 1)

    def forward(self, x):
        b = x.shape[0]
        box = self.box(x).view(b, 4 * BINS, -1)
        p = box.view(b, 4, BINS, -1).transpose(2, 1).softmax(1)
        return self.dfl(p).view(b, 4, -1)


def _x(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 8, 3, 4)).astype(np.float32) * 0.3


@pytest.mark.parametrize("bad", [1, 9, 16, True, 8.0])
def test_softmax_bits_is_an_int_width(bad):
    with pytest.raises(ConfigError, match=r"softmax_bits = .* (is out of range|must be)"):
        QuantConfig(softmax_bits=bad)


def test_softmax_width_follows_the_setting_and_a8_is_unchanged():
    x = _x()
    graph = capture(DFLHead().eval(), torch.from_numpy(x[:1]))

    def width(**kw):
        q = quantize(graph, None, x, QuantConfig(**kw))
        return {q.tensors[n.output].bits for n in q.nodes if n.op == "softmax"}

    assert width(activation_bits=4) == {8}  # the default: 8 bits below 8-bit activations
    assert width(activation_bits=4, softmax_bits=None) == {4}  # None: the activation width
    assert width(activation_bits=4, softmax_bits=6) == {6}
    assert QuantConfig(activation_bits=8).softmax_width == 8  # A8: as before
    a8 = quantize(graph, None, x, QuantConfig())
    before = quantize(graph, None, x, QuantConfig(softmax_bits=None))
    assert all(a8.tensors[t] == before.tensors[t] for t in a8.tensors)


def test_8_bit_softmax_outputs_are_bit_exact_and_keep_the_dfl_head_close_to_fp32():
    x = _x()
    got = {}
    for bits in (4, 8):
        r = qasic.evaluate(DFLHead().eval(), x[:4], calibration=x,
                           config=QuantConfig(activation_bits=4, softmax_bits=bits))
        assert r["bit_exact"]  # golden reference == simulator
        got[bits] = r["cosine"]
    # 4-bit probabilities near 1/16 round to 0: 0.935 at 4 bits, 0.9996 at 8
    assert got[8] > 0.999 and got[4] < 0.95
