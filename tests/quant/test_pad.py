"""Zero padding as its own op (F.pad, nn.ZeroPad2d, TensorFlow-style 'same' padding in ported
nets) folds into the convolution that reads it; anything else reads it written out, and a
negative pad crops.
A ceil_mode average pool whose one window covers the whole map is a global average."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float
from qasic.quant.graph import to_internal


class PaddedConvs(nn.Module):
    """TF 'same' padding of a stride-2 conv (bottom/right only), two pads in a row before a
    depthwise conv, a ZeroPad2d module, a conv with its own padding as well."""

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, stride=2)
        self.c2 = nn.Conv2d(8, 8, 3, groups=8)
        self.pad = nn.ZeroPad2d((2, 0, 1, 1))
        self.c3 = nn.Conv2d(8, 4, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.c1(F.pad(x, (0, 1, 0, 1))))
        x = torch.relu(self.c2(F.pad(F.pad(x, (1, 1, 1, 1)), (1, 0, 2, 0))))
        return self.c3(self.pad(x))


class PaddedConv1d(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv1d(4, 6, 3)

    def forward(self, x):
        return self.c(F.pad(x, (2, 0)))  # causal padding of a sequence as an image of height 1


class WidthPaddedConv(nn.Module):
    """F.pad(x, (2, 0)) of an image (N, C, H, W): its width alone, causal in time (Nemotron ASR
    streaming's subsampling convs over (mel, time)); before, an IndexError."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3, padding=(1, 0))

    def forward(self, x):
        return self.c(F.pad(x, (2, 0)))


def test_a_pad_of_the_width_alone_folds_into_the_conv():
    g = capture(WidthPaddedConv().eval(), (torch.randn(1, 3, 6, 8),), "width")
    assert [n.attrs["padding"] for n in g.nodes if n.op == "conv2d"] == [(1, 2, 1, 0)]
    x = torch.randn(4, 3, 6, 8).numpy()
    r = qasic.evaluate(WidthPaddedConv().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


def test_pads_fold_into_the_convs_padding():
    g = capture(PaddedConvs().eval(), (torch.randn(1, 3, 16, 16),), "padded")
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert [n.attrs["padding"] for n in convs] == [(0, 0, 1, 1), (3, 2, 1, 1), (2, 3, 2, 1)]
    assert len(g.nodes) == len(convs) + 2  # the two relus fuse later; no node for a pad


@pytest.mark.parametrize("net, shape", [(PaddedConvs, (6, 3, 16, 16)),
                                        (PaddedConv1d, (6, 4, 20))])
def test_padded_nets_run_bit_exact(net, shape):
    torch.manual_seed(0)
    x = torch.randn(*shape).numpy()
    r = qasic.evaluate(net().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class PaddedMaxPool(nn.Module):
    """BiT's stem: a conv, a zero pad and a 3x3 stride-2 max pool (the pad's zeros, not the max
    pool's -inf padding: they win over negative pixels)."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 8, 3, stride=2)

    def forward(self, x):
        return F.max_pool2d(F.pad(self.c(x), (1, 1, 1, 1)), 3, 2)


def test_a_max_pool_reads_a_zero_pad_written_out_by_an_identity_conv():
    """Before: refused ('supported only when a convolution reads it')."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 17, 17)
    m = PaddedMaxPool().eval()
    g = capture(m, (x[:1],), "padded_pool")
    assert [n.op for n in g.nodes] == ["conv2d", "conv2d", "maxpool2d"]
    pad = g.nodes[1]
    assert pad.attrs["padding"] == (1, 1, 1, 1) and pad.attrs["groups"] == 8
    assert g.shapes[pad.output] == (10, 10, 8) and np.all(pad.params["weight"] == 1)
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())),
                               want.transpose(0, 2, 3, 1), atol=1e-5)
    assert (want < 0).any() and np.any(want == 0)  # the zeros won somewhere
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class Bad(nn.Module):
    def __init__(self, f) -> None:
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class ShiftedTokens(nn.Module):
    """ViT for small datasets' shifted patch tokenization (lucidrains' vit_pytorch): the image
    and its four one-pixel shifts, ``F.pad(x, (1, -1, 0, 0))`` (a pad and a crop), concatenated
    over the channels, then a patch linear. Before, refused ('a crop is not supported'; a zero
    pad read by a concat: 'supported only when a convolution reads it')."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(15, 8, 4, stride=4)

    def forward(self, x):
        shifts = ((1, -1, 0, 0), (-1, 1, 0, 0), (0, 0, 1, -1), (0, 0, -1, 1))
        return self.c(torch.cat((x, *(F.pad(x, s) for s in shifts)), dim=1))


@pytest.mark.parametrize("f", [
    lambda x: F.pad(x, (-1, 2, 0, -3)),       # crops and pads
    # zero channels: akamaster's CIFAR ResNet option-A shortcut (a LambdaLayer)
    lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2)) + F.pad(x[:, :, ::2, ::2],
                                                                  (1, -1, 0, 0, 1, 3)),
    ShiftedTokens(),
])
def test_zero_pads_no_conv_reads_are_written_out_and_negative_pads_crop(f):
    torch.manual_seed(0)
    m = (f if isinstance(f, nn.Module) else Bad(f)).eval()
    x = torch.randn(6, 3, 8, 8)
    g = capture(m, (x[:1],), "pads")
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())),
                               want.transpose(0, 2, 3, 1), atol=1e-5)
    assert any(n.op == "conv2d" and n.output.endswith((".pad", ".channels")) for n in g.nodes) \
        or isinstance(f, nn.Module)
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class PaddedResidual(nn.Module):
    """NAFNet's check_image_size: the input zero-padded to a multiple of 4 (bottom / right),
    a conv of it, the padded input added back as a residual, the crop to the input's size."""

    def __init__(self) -> None:
        super().__init__()
        self.intro = nn.Conv2d(3, 8, 3, padding=1)
        self.ending = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, inp):
        _, _, h, w = inp.shape
        inp = F.pad(inp, (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4))
        x = self.ending(torch.relu(self.intro(inp)))
        return (x + inp)[:, :, :h, :w]


@pytest.mark.parametrize("net, shape", [
    (PaddedResidual, (6, 3, 10, 9)),
    (lambda: Bad(lambda x: F.pad(x, (1, 1, 1, 1)) + 1.0), (6, 3, 8, 8)),
    (lambda: Bad(lambda x: F.pad(x, (1, 2, 0, 1))), (6, 3, 8, 8)),  # the graph output
    # a value pad is the zero pad plus a constant (quant.value_pad) added
    (lambda: Bad(lambda x: F.pad(x, (1, 1, 1, 1), value=0.5)), (6, 3, 8, 8)),
    (lambda: Bad(lambda x: F.pad(x, (2, 1)) * 2.0), (6, 3, 8)),  # (N, C, L)
])
def test_a_zero_pad_no_convolution_reads_is_written_out(net, shape):
    """Before: refused ('a zero pad ... is supported only when a convolution reads it or a
    max pool, not aten.add.Tensor'): NAFNet, and any model padding its input to a multiple of
    its strides or windows and adding it back."""
    torch.manual_seed(0)
    m = net().eval()
    x = torch.randn(*shape)
    g = capture(m, (x[:1],), "padded_read")
    pads = [n for n in g.nodes if n.op == "conv2d" and n.output.endswith(".pad")]
    assert len(pads) == 1 and np.all(pads[0].params["weight"] == 1)  # written out once
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x.numpy())),
                               to_internal(want, g.output_layout), atol=1e-5)
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


@pytest.mark.parametrize("f, message", [
    (lambda x: F.pad(x, (0, 0, 0, 0, 0, 0, 1, 1)), "only the height and width"),
    (lambda x: F.pad(x, (0, 0, 0, 0, -1, 0)), "only the height and width"),
    (lambda x: F.pad(x, (-4, -4, 0, 0)), "crop away the whole"),
])
def test_other_pads_are_refused_in_one_line(f, message):
    with pytest.raises(UnsupportedOpError, match=message) as e:
        capture(Bad(f).eval(), (torch.randn(1, 3, 8, 8),), "bad")
    assert "\n" not in str(e.value).split("; supported ops")[0]


class Copied(nn.Module):
    """A conv, a ``mode`` pad of H and W (or of L: Conv1d), a conv (UNet1DModel's reflect-padded
    downsampling)."""

    def __init__(self, mode: str, dims: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.a, self.b, self.mode = conv(3, 4, 1), conv(4, 5, 3, stride=2), mode
        self.pads = (1, 2, 2, 1) if dims == 2 else (2, 1)

    def forward(self, x):
        return self.b(F.pad(torch.relu(self.a(x)), self.pads, mode=self.mode))


@pytest.mark.parametrize("mode, dims", [("reflect", 2), ("replicate", 2), ("circular", 2),
                                        ("reflect", 1)])
def test_copying_pads_are_a_resize_of_one_hot_rows(mode, dims):
    shape = (6, 3, 8, 8) if dims == 2 else (6, 3, 12)
    x = torch.randn(*shape).numpy()
    m = Copied(mode, dims).eval()
    g = capture(m, (torch.from_numpy(x[:1]),), "copied")
    resize = next(n for n in g.nodes if n.op == "resize")
    wh, ww = resize.params["weight_h"], resize.params["weight_w"]
    assert ww.shape == ((11, 8) if dims == 2 else (15, 12)) and (ww.sum(1) == 1).all()
    assert wh.shape == ((11, 8) if dims == 2 else (1, 1)) and set(np.unique(ww)) == {0, 1}
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    got = run_float(g, g.to_internal(x))
    np.testing.assert_allclose(got, g.to_internal(want), atol=1e-5)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class SequenceReflect(nn.Module):
    """A reflect pad of the positions in a sequence model: a selection matmul."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 8), nn.Linear(8, 3)

    def forward(self, x):
        h = F.pad(self.a(x).transpose(1, 2), (2, 1), mode="reflect").transpose(1, 2)
        return self.b(torch.softmax(h, -1))


def test_a_reflect_pad_in_a_sequence_model_is_a_selection():
    x = torch.randn(6, 5, 4).numpy()
    m = SequenceReflect().eval()
    g = capture(m, (torch.from_numpy(x[:2]),), "reflect")
    sel = next(n for n in g.nodes if n.op == "constant")
    assert sel.params["value"].shape[-2:] == (8, 5)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), want, atol=1e-5)


@pytest.mark.parametrize("size", [(3, 3), (5, 2)])
def test_a_ceil_mode_window_over_the_whole_map_is_a_global_average(size):
    """HF EfficientNet's pooler: AvgPool2d(hidden_dim, ceil_mode=True) on a small map."""
    class Pool(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c = nn.Conv2d(3, 8, 1)
            self.p = nn.AvgPool2d(16, ceil_mode=True)

        def forward(self, x):
            return self.p(self.c(x))

    torch.manual_seed(1)
    x = torch.randn(8, 3, *size)
    m = Pool().eval()
    g = capture(m, (x[:1],), "pool")
    pool = next(n for n in g.nodes if n.op == "avgpool2d")
    assert pool.attrs["kernel"] == size and pool.attrs["divisor"] == size[0] * size[1]
    with torch.no_grad():
        want = m(x).numpy()
    np.testing.assert_allclose(m.c(x).mean(dim=(2, 3), keepdim=True).detach().numpy(), want,
                               atol=1e-6)
    r = qasic.evaluate(m, x.numpy(), calibration=x.numpy())
    assert r["bit_exact"] and r["cosine"] > 0.999


class PadThenTo(nn.Module):
    """Gemma 3n's subsampling: ``F.pad(x, p).to(weight.dtype)`` then the conv: the conversion
    to its own dtype passes the zero pad on (before, 'a zero pad ... not aten.to.dtype'), and
    a clamp by one-value constant tensors (its gradient clipping) is a clamp."""

    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(3, 4, 3)
        self.register_buffer("clip", torch.tensor(2.0))

    def forward(self, x):
        y = self.c(F.pad(x, (1, 1, 0, 2)).to(self.c.weight.dtype))
        return torch.clamp(y, -self.clip, self.clip)


def test_a_zero_pad_goes_through_a_conversion_to_its_own_dtype():
    g = capture(PadThenTo().eval(), (torch.randn(1, 3, 6, 8),), "to")
    assert [(n.op, n.attrs.get("padding")) for n in g.nodes] == [("conv2d", (0, 1, 2, 1)),
                                                                 ("clamp", None)]
    x = torch.randn(4, 3, 6, 8).numpy()
    r = qasic.evaluate(PadThenTo().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class Cropped(nn.Module):
    """A slice of the length (BigVGAN-style anti-aliased upsampling: a depthwise transposed
    conv of stride 2, its output cropped ``[..., 3:-3]``) or of the height and width (every
    second column of rows 1..-1) between convs."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.dims = dims
        if dims == 1:
            self.a, self.b = nn.Conv1d(3, 4, 3, padding=1), nn.Conv1d(4, 5, 3)
            self.up = nn.ConvTranspose1d(4, 4, 4, stride=2, groups=4)
        else:
            self.a, self.b = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 5, 3)

    def forward(self, x):
        h = torch.relu(self.a(x))
        h = self.up(h)[..., 3:-3] if self.dims == 1 else h[:, :, 1:-1, ::2]
        return self.b(h)


@pytest.mark.parametrize("dims", [1, 2])
def test_a_slice_of_the_height_or_width_is_a_crop_of_one_hot_rows(dims):
    shape = (6, 3, 12) if dims == 1 else (6, 3, 8, 8)
    x = torch.randn(*shape).numpy()
    m = Cropped(dims).eval()
    g = capture(m, (torch.from_numpy(x[:1]),), "cropped")
    crops = [n for n in g.nodes if n.op == "resize"]  # one a sliced axis
    assert len(crops) == dims
    wh, ww = crops[0].params["weight_h"], crops[0].params["weight_w"]
    for c in crops[1:]:
        wh, ww = c.params["weight_h"] @ wh, c.params["weight_w"] @ ww
    # 1-D: (12 - 1) * 2 + 4 = 26 upsampled positions, 20 kept from the fourth; 2-D: rows 1-6,
    # columns 0, 2, 4, 6
    want_w = np.eye(26)[3:23] if dims == 1 else np.eye(8)[::2]
    want_h = np.eye(1) if dims == 1 else np.eye(8)[1:7]
    np.testing.assert_array_equal(ww, want_w)
    np.testing.assert_array_equal(wh, want_h)
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), g.to_internal(want), atol=1e-5)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
