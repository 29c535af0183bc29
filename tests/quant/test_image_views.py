"""Views and permutes that reorder an image's memory (MobileViT's unfolding of a feature map into
patches and its folding back): the image is permuted to torch's (C, H, W), the chain runs as
per-sample reshapes and permutes in sequence mode, and a convolution, pool or upsample reading
the result permutes it back to (H, W, C); the golden reference follows torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.unfold import selection
from tests.quant.opcheck import float_matches, reference_cosine


class Patches(nn.Module):
    """conv -> unfold into (batch * ph * pw, patches, C) -> LayerNorm + linear residual ->
    fold back -> 1x1 conv, joined to the conv's output along channels (MobileViT's block)."""

    def __init__(self, c: int = 8, ph: int = 2, pw: int = 2, tail: str = "conv"):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.proj = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, c, 1)
        self.ln, self.fc = nn.LayerNorm(c), nn.Linear(c, c)
        self.ph, self.pw, self.tail = ph, pw, tail

    def forward(self, x):
        f = self.conv(x)
        b, c, h, w = f.shape
        ph, pw, nh, nw = self.ph, self.pw, h // self.ph, w // self.pw
        p = f.reshape(b * c * nh, ph, nw, pw).transpose(1, 2).reshape(b, c, nh * nw, ph * pw)
        p = p.transpose(1, 3).reshape(b * ph * pw, nh * nw, c)
        p = p + self.fc(self.ln(p))
        g = p.contiguous().view(b, ph * pw, nh * nw, c).transpose(1, 3)
        g = g.reshape(b * c * nh, nw, ph, pw).transpose(1, 2).reshape(b, c, h, w)
        if self.tail == "pool":
            return F.max_pool2d(g, 2)
        return torch.cat([f, self.proj(g)], 1)


def _x(n: int = 8, h: int = 8, w: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)


def test_unfold_and_fold_are_permutes_into_and_out_of_torch_layout():
    g = float_matches(Patches(), _x(2))
    perms = [(n.attrs["perm"], g.shapes[n.output]) for n in g.nodes if n.op == "permute"]
    assert perms == [((2, 0, 1), (8, 8, 6)),        # the image to torch's (C, H, W)
                     ((0, 2, 1, 3), (32, 3, 2, 2)),  # (C h, ph, w, pw) -> (C h, w, ph, pw)
                     ((2, 1, 0), (4, 12, 8)),        # (C, patches, 4) -> (4, patches, C)
                     ((2, 1, 0), (8, 12, 4)),
                     ((0, 2, 1, 3), (32, 2, 3, 2)),
                     ((1, 2, 0), (8, 6, 8))]         # back to the image the 1x1 conv reads
    assert [n.op for n in g.nodes][-3:] == ["conv2d", "lut", "concat"]


@pytest.mark.parametrize("tail, patch", [("conv", (2, 2)), ("conv", (4, 3)), ("pool", (2, 3))])
def test_the_reference_follows_torch_through_the_patches(tail, patch):
    module, x = Patches(ph=patch[0], pw=patch[1], tail=tail).eval(), _x(h=8, w=12)
    float_matches(module, x)
    assert reference_cosine(module, x, 8) > 0.999  # the integer LayerNorm: not fake-quant


def test_a_square_map_with_as_many_channels_is_still_permuted_back():
    # (C, H, W) == (H, W, C) when C == H == W: the layout, not the shape, decides
    class Square(Patches):
        def __init__(self):
            super().__init__(c=8)
            self.conv = nn.Conv2d(3, 8, 3, padding=1)

    g = float_matches(Square(), _x(2, 8, 8))
    assert [n.attrs["perm"] for n in g.nodes if n.op == "permute"][-1] == (1, 2, 0)


def test_a_bilinear_halving_is_an_average_of_two():
    for size, kernel in (((2, 3), (2, 2)), ((4, 3), (1, 2))):
        m = nn.Upsample(size=size, mode="bilinear")
        g = float_matches(m, _x(2, 4, 6))
        assert [(n.op, n.attrs["kernel"]) for n in g.nodes] == [("avgpool2d", kernel)]
    # any other size is a general resize (qasic.quant.resize)
    g = capture(nn.Upsample(size=(3, 3), mode="bilinear").eval(), torch.zeros(1, 3, 4, 6))
    assert [n.op for n in g.nodes] == ["resize"]


class UnfoldFold(nn.Module):
    """MobileViTV2's patches: F.unfold into non-overlapping (ph, pw) patches (aten.im2col),
    (batch, C, ph pw, patches), a LayerNorm + linear over C of its transpose, F.fold back
    (aten.col2im) and a 1x1 conv."""

    def __init__(self, c: int = 8, ph: int = 2, pw: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.proj = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, c, 1)
        self.ln, self.fc = nn.LayerNorm(c), nn.Linear(c, c)
        self.k = (ph, pw)

    def forward(self, x):
        f = self.conv(x)
        b, c, h, w = f.shape
        p = F.unfold(f, self.k, stride=self.k).reshape(b, c, self.k[0] * self.k[1], -1)
        t = p.transpose(1, 3)                                   # (batch, patches, ph pw, C)
        t = (t + self.fc(self.ln(t))).transpose(1, 3)
        return self.proj(F.fold(t.reshape(b, -1, t.shape[-1]), (h, w), self.k, stride=self.k))


def test_unfold_and_fold_into_patches_are_views_and_a_permute():
    """Before: 'op aten.im2col.default is not supported' (MobileViTV2)."""
    module, x = UnfoldFold().eval(), _x(h=8, w=12)
    g = float_matches(module, x)
    moves = [n.attrs["perm"] for n in g.nodes if n.op == "permute"]
    assert moves == [(2, 0, 1),                                 # the image to torch's layout
                     (0, 2, 3, 4, 1), (0, 1, 3, 4, 2),           # unfold: two rotations
                     (2, 1, 0), (2, 1, 0),                       # C last for the linear, back
                     (0, 3, 4, 1, 2), (0, 1, 3, 4, 2), (0, 1, 2, 4, 3),  # fold: three
                     (1, 2, 0)]                                  # the image the conv reads
    assert [n.op for n in g.nodes if n.op not in ("permute", "reshape")] == [
        "conv2d", "norm", "linear", "add", "conv2d"]
    assert reference_cosine(module, x, 8) > 0.999
    r = qasic.evaluate(module, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


@pytest.mark.parametrize("size, kernel, dilation, padding, stride", [
    ((6, 1), (3, 1), (1, 1), (1, 0), (1, 1)), ((5, 7), (3, 2), (2, 1), (1, 1), (2, 1))])
def test_any_unfold_is_a_matmul_by_a_constant_selection(size, kernel, dilation, padding,
                                                        stride):
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    want = F.unfold(x, kernel, dilation=dilation, padding=padding, stride=stride)
    m = torch.from_numpy(selection(size, kernel, dilation, padding, stride))
    assert set(m.unique().tolist()) <= {0.0, 1.0} and m.sum(0).max() == 1  # a pick or a pad
    torch.testing.assert_close((x.reshape(2, 3, -1) @ m).reshape(want.shape), want)


def test_an_overlapping_fold_is_a_matmul_by_the_transposed_selection():
    """Before: refused in one line (col2im of overlapping windows); now im2col's adjoint, a
    linear by the transposed 0/1 selection (an inverse STFT's overlap-add)."""
    class Overlap(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.c = nn.Conv2d(3, 4, 3)

        def forward(self, x):
            return self.c(F.fold(x, (4, 4), 3, padding=1))

    module, x = Overlap().eval(), torch.randn(8, 27, 16).numpy()
    g = capture(module, torch.from_numpy(x[:2]))
    assert "linear" in [n.op for n in g.nodes]
    with torch.no_grad():
        want = module(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), want, atol=1e-5)
    r = qasic.evaluate(module, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class _Stacked(nn.Module):
    """Two conv maps of one image joined along its height (``dim`` 2; SegGPT stacks its prompt
    image above the image) or its width (3), then a 2x2 stride-2 conv."""

    def __init__(self, dim: int):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 1)
        self.out, self.dim = nn.Conv2d(4, 8, 2, 2), dim

    def forward(self, x):
        return self.out(torch.cat([self.a(x), self.b(x)], dim=self.dim))


@pytest.mark.parametrize("dim", [2, 3])
def test_images_joined_along_height_or_width_are_a_concat_of_permuted_images(dim):
    x = np.random.default_rng(0).normal(size=(2, 3, 8, 6)).astype(np.float32)
    model = _Stacked(dim).eval()
    graph = capture(model, torch.from_numpy(x))
    joined = [n for n in graph.nodes if n.name.startswith("cat")]
    # (and a requant lut in front of each part of the concat)
    assert [n.op for n in joined if n.op != "lut"] == ["permute", "permute", "concat", "permute"]
    assert graph.shapes[joined[-1].output] == ((16, 6, 4) if dim == 2 else (8, 12, 4))
    assert float_matches(model, x)
    if dim == 2:  # the same ops along the width
        record = qasic.evaluate(model, x, calibration=x)
        assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
