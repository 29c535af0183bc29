"""EfficientViT's ReLU linear attention (LiteMLA): ``F.pad(v, (0, 1), value=1)`` is rewritten
before capture as the zero pad plus the constant of the padded positions
(qasic.quant.value_pad), and the normaliser's reciprocal table ``1 / (d + 1e-15)`` is
calibrated where d is not exactly 0 (qasic.quant.calibrate.eps_reciprocals: a row a ReLU zeroed
divides 0 by eps; 1 / eps in the range overflowed the product's requantizer). Bit-exact through
the golden reference and the simulator, close to float."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

import qasic
from qasic.quant import capture
from qasic.quant.calibrate import eps_reciprocals
from qasic.quant.value_pad import decompose


class ReluLinearAttention(nn.Module):
    """LiteMLA's relu_linear_att over (B, heads, N, d) from a 1x1 qkv conv of an image."""

    def __init__(self, c: int = 8, dim: int = 4, eps: float = 1e-15):
        super().__init__()
        torch.manual_seed(0)
        self.dim, self.eps = dim, eps
        self.stem = nn.Conv2d(3, c, 3, 2, 1)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        x = self.stem(x)
        qkv = self.qkv(x)
        b, _, h, w = qkv.shape
        qkv = qkv.reshape(b, -1, 3 * self.dim, h * w).transpose(-1, -2)
        q, k, v = qkv[..., :self.dim], qkv[..., self.dim:2 * self.dim], qkv[..., 2 * self.dim:]
        q, k = F.relu(q), F.relu(k)
        v = F.pad(v, (0, 1), mode="constant", value=1)
        out = torch.matmul(q, torch.matmul(k.transpose(-1, -2), v))
        out = out[..., :-1] / (out[..., -1:] + self.eps)
        return self.proj(out.transpose(-1, -2).reshape(b, -1, h, w)) + x


def test_a_ones_padded_value_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    model = ReluLinearAttention().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph)
    pads = [n for n in new.nodes if n.target is torch.ops.aten.constant_pad_nd.default]
    assert sorted(float(n.args[2]) for n in pads) == [0.0, 1.0]  # the zero pad, the constant's
    gm = fx.GraphModule(ep.graph_module, new)  # the rewritten graph computes torch's values
    params = [p.detach() for p in ep.state_dict.values()]
    xt = torch.from_numpy(x[:1])
    torch.testing.assert_close(gm(*params, xt)[0], model(xt), rtol=1e-5, atol=1e-5)
    g = capture(model, xt)
    assert eps_reciprocals(g), [(n.name, n.op, n.attrs) for n in g.nodes if n.op == "lut"]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class ZeroPad(nn.Module):
    def forward(self, x):
        return F.pad(x, (0, 1)) + F.pad(x, (1, 0), value=0.0)


def test_zero_pads_are_left_as_written():
    ep = torch.export.export(ZeroPad(), (torch.randn(1, 4, 3),))
    graph = ep.graph_module.graph
    assert decompose(graph) is graph
