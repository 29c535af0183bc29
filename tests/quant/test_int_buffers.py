"""0-dim integer buffers are constants while qasic exports (qasic.quant.int_buffers): a codec's
conv computing its padding from int64 buffers (Mimi's, EnCodec's ``*Conv1d``) captures and
runs bit-exact (before, refused: 'control flow depends on the values of a tensor'), and the
module is put back as it was."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture


class CausalConv(nn.Module):
    """EnCodec's padding: left padding_total, right the extra that makes the frames whole."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(2, 4, 4, stride=2)
        self.register_buffer("stride", torch.tensor(2), persistent=False)
        self.register_buffer("kernel_size", torch.tensor(4), persistent=False)
        self.register_buffer("padding_total", torch.tensor(2), persistent=False)

    def forward(self, x):
        length = x.shape[-1]
        frames = torch.ceil((length - self.kernel_size + self.padding_total) / self.stride + 1)
        extra = (frames.to(torch.int64) - 1) * self.stride + self.kernel_size \
            - self.padding_total - length
        return self.conv(nn.functional.pad(x, (self.padding_total, extra)))


def test_int_buffers_are_constants_while_exporting_and_put_back_after():
    x = np.random.default_rng(0).standard_normal((4, 2, 15)).astype(np.float32)
    module = CausalConv().eval()
    g = capture(module, torch.from_numpy(x[:1]))
    assert [n.attrs["padding"] for n in g.nodes if n.op == "conv2d"] == [(0, 2, 0, 1)]
    assert type(module) is CausalConv and list(dict(module.named_buffers())) == [
        "stride", "kernel_size", "padding_total"]
    r = qasic.evaluate(module, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
