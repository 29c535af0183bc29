"""timm's MaxPool2dSame (TensorFlow's asymmetric 'same' max pool: ``F.pad(x, (0, 1, 0, 1),
value=-inf)`` then ``max_pool2d``) is rewritten before capture as the replicate pad it equals
under a max pool (qasic.quant.pool_pad). The rewritten graph computes torch's values; the
quantized model is bit-exact through the golden reference and the simulator, close to float."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant.pool_pad import decompose
from tests.quant.rewrite_check import assert_bit_exact, assert_computes_torch, rewritten

aten = torch.ops.aten


def _pad_same(x, k: int, s: int, value: float):
    """timm's pad_same: the padding TensorFlow's 'SAME' gives, the odd pixel after."""
    ph = max((math.ceil(x.shape[-2] / s) - 1) * s + k - x.shape[-2], 0)
    pw = max((math.ceil(x.shape[-1] / s) - 1) * s + k - x.shape[-1], 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


class SameStem(nn.Module):
    """A conv, timm's MaxPool2dSame (k 3, s 2 on an even map: pads (0, 1, 0, 1) of -inf) and
    a Conv2dSame (the same pad of zeros before a stride-2 conv)."""

    def __init__(self, value: float = -float("inf")):
        super().__init__()
        torch.manual_seed(0)
        self.value = value
        self.conv = nn.Conv2d(3, 8, 3, 1, 1)
        self.down = nn.Conv2d(8, 8, 3, 2)
        self.head = nn.Linear(8, 5)

    def forward(self, x):
        x = self.conv(x) - 1.0  # negative border pixels: zero padding would change the max
        x = F.max_pool2d(_pad_same(x, 3, 2, self.value), 3, 2)
        x = self.down(_pad_same(torch.relu(x), 3, 2, 0.0))
        return self.head(x.mean((2, 3)))


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)


def test_a_minus_inf_pad_before_a_max_pool_is_a_replicate_pad_and_runs_bit_exact():
    x, model = _x(), SameStem().eval()
    ep, new = rewritten(model, x, decompose)
    modes = [n.args[2] for n in new.nodes if n.target is aten.pad.default]
    assert modes == ["replicate", "constant"], modes  # the conv's zero pad stays
    assert_computes_torch(ep, new, model, x)
    assert_bit_exact(model, x)


def test_the_lowest_float_pads_as_minus_inf_does():
    _, new = rewritten(SameStem(torch.finfo(torch.float32).min).eval(), _x(), decompose)
    modes = [n.args[2] for n in new.nodes if n.target is aten.pad.default]
    assert modes == ["replicate", "constant"], modes


class PadRead(nn.Module):
    """A -inf pad read by a max pool and by an add: not a pool's padding alone."""

    def forward(self, x):
        p = F.pad(x, (0, 1, 0, 1), value=-float("inf"))
        return F.max_pool2d(p, 3, 2), torch.exp(p)


def test_a_pad_read_by_anything_but_a_max_pool_stays():
    x = _x()
    ep = torch.export.export(PadRead(), (torch.from_numpy(x[:1]),))
    assert decompose(ep.graph_module.graph) is ep.graph_module.graph


class LongPad(nn.Module):
    """A -inf pad as long as the kernel: a window of padding alone (torch gives -inf)."""

    def forward(self, x):
        return F.max_pool2d(F.pad(x, (0, 2, 0, 2), value=-float("inf")), 2, 1)


def test_a_pad_as_long_as_the_kernel_stays():
    x = _x()
    ep = torch.export.export(LongPad(), (torch.from_numpy(x[:1]),))
    assert decompose(ep.graph_module.graph) is ep.graph_module.graph
