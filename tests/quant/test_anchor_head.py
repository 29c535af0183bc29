"""An anchor-free detection head as ultralytics' YOLOv8 writes it: per level (B, no, H, W)
viewed as (B, no, H W) and joined along the anchors (``torch.cat(..., 2)``: a concat along L of
(N, C, L) maps, lowering_ops._cat_spatial), DFL's softmax over 16 bins into a fixed arange conv,
and the boxes as ``anchors - lt`` (a constant minus an activation: the negation joins the
activation's table, then the constant is added) and ``anchors + rb``, times the strides. Both
were refused; the float graph is torch's and the quantized model is bit-exact."""

import numpy as np
import torch
from torch import nn

import qasic
from qasic.quant import capture, run_float
from tests.quant.opcheck import float_matches, torch_out


def make_anchors(feats, strides, offset=0.5):
    points, stride = [], []
    for f, s in zip(feats, strides):
        _, _, h, w = f.shape
        sx = torch.arange(end=w, dtype=f.dtype) + offset
        sy = torch.arange(end=h, dtype=f.dtype) + offset
        sy, sx = torch.meshgrid(sy, sx, indexing="ij")
        points.append(torch.stack((sx, sy), -1).view(-1, 2))
        stride.append(torch.full((h * w, 1), s, dtype=f.dtype))
    return torch.cat(points), torch.cat(stride)


class Head(nn.Module):
    """Two levels (8x8 and 4x4 of 8 channels) -> (B, 4 + nc, 80) boxes and class scores."""

    def __init__(self, bins: int = 4, nc: int = 3) -> None:
        super().__init__()
        self.bins, self.nc = bins, nc
        self.stem = nn.Conv2d(3, 8, 3, 1, 1)
        self.down = nn.Conv2d(8, 8, 3, 2, 1)
        self.box = nn.ModuleList(nn.Conv2d(8, 4 * bins, 1) for _ in range(2))
        self.cls = nn.ModuleList(nn.Conv2d(8, nc, 1) for _ in range(2))
        self.dfl = nn.Conv2d(bins, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(bins, dtype=torch.float).view(1, bins, 1, 1)

    def forward(self, x):
        p3 = torch.relu(self.stem(x))
        feats = [p3, torch.relu(self.down(p3))]
        b = x.shape[0]
        xs = [torch.cat((self.box[i](f), self.cls[i](f)), 1) for i, f in enumerate(feats)]
        anchors, strides = (a.transpose(0, 1) for a in make_anchors(xs, (1.0, 2.0)))
        x_cat = torch.cat([xi.view(b, 4 * self.bins + self.nc, -1) for xi in xs], 2)
        box, cls = x_cat.split((4 * self.bins, self.nc), 1)
        a = box.shape[-1]
        dist = self.dfl(box.view(b, 4, self.bins, a).transpose(2, 1).softmax(1)).view(b, 4, a)
        lt, rb = dist.chunk(2, 1)
        x1y1 = anchors.unsqueeze(0) - lt
        x2y2 = anchors.unsqueeze(0) + rb
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides
        return torch.cat((dbox, cls.sigmoid()), 1)


def test_yolov8_head_is_torchs_and_bit_exact():
    torch.manual_seed(0)
    m = Head().eval()
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    g = capture(m, torch.from_numpy(x[:1]))  # the head ends in sequence mode: torch's layout
    assert g.output_layout not in ("NCHW", "NCL") and "concat" in [n.op for n in g.nodes]
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), torch_out(m, x), rtol=1e-4,
                               atol=1e-4)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class Rsub(nn.Module):
    """A constant (per channel and position) minus a conv's output, a Conv1d after it."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv1d(2, 4, 3, 1, 1), nn.Conv1d(4, 2, 1)
        self.register_buffer("c", torch.linspace(-1, 1, 4 * 6).view(1, 4, 6))

    def forward(self, x):
        return self.b(self.c - torch.tanh(self.a(x)))


def test_a_constant_minus_an_activation_is_bit_exact():
    torch.manual_seed(0)
    m = Rsub().eval()
    x = np.random.default_rng(1).standard_normal((4, 2, 6)).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
