"""General resizing (qasic.quant.resize): the interpolation matrices against torch's kernels, their
fixed point, the capture of every F.interpolate form to a ``resize`` node, and the golden
reference against the fake-quantized float and against torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, graphio, reference, resize
from tests.quant.opcheck import codes_vs_fake_quant, float_matches, quantized, reference_cosine
from tests.quant.test_ops_capture import Fn


def _x(*shape, seed=0):
    return (np.random.default_rng(seed).normal(size=shape) * 2).astype(np.float32)


# name: (input H, W; F.interpolate keywords)
CASES = {
    "up2_corners": ((4, 5), {"scale_factor": 2, "mode": "bilinear", "align_corners": True}),
    "up3": ((4, 5), {"scale_factor": 3, "mode": "bilinear"}),
    "up4": ((3, 4), {"scale_factor": 4, "mode": "bilinear"}),
    "up8": ((2, 3), {"scale_factor": 8, "mode": "bilinear"}),
    "up8_corners": ((2, 3), {"scale_factor": 8, "mode": "bilinear", "align_corners": True}),
    "to_size": ((7, 5), {"size": (32, 24), "mode": "bilinear"}),
    "to_size_corners": ((7, 5), {"size": (32, 24), "mode": "bilinear", "align_corners": True}),
    "scale_2_5": ((5, 4), {"scale_factor": 2.5, "mode": "bilinear"}),
    "scale_2_5_recomputed": ((5, 4), {"scale_factor": 2.5, "mode": "bilinear",
                                          "recompute_scale_factor": True}),
    "down": ((32, 32), {"size": (13, 13), "mode": "bilinear"}),
    "down_corners": ((32, 20), {"size": (13, 7), "mode": "bilinear", "align_corners": True}),
    "from_1x1": ((1, 1), {"size": (6, 5), "mode": "bilinear"}),       # ASPP's image pooling
    "from_1x1_corners": ((1, 1), {"size": (6, 5), "mode": "bilinear", "align_corners": True}),
    "bicubic": ((5, 6), {"scale_factor": 2, "mode": "bicubic"}),
    "bicubic_corners": ((5, 6), {"size": (17, 9), "mode": "bicubic", "align_corners": True}),
    "bicubic_down": ((16, 12), {"size": (7, 5), "mode": "bicubic"}),
    "nearest_1_5": ((4, 6), {"scale_factor": 1.5, "mode": "nearest"}),
    "nearest_down": ((9, 7), {"size": (4, 3), "mode": "nearest"}),
    "nearest_exact": ((4, 6), {"scale_factor": 1.5, "mode": "nearest-exact"}),
    # adaptive average pooling (PSPNet's pyramid to 3x3 from 2x2, 6x6 from 13x11)
    "area_up": ((2, 2), {"size": (3, 3), "mode": "area"}),
    "area_down": ((13, 11), {"size": (6, 6), "mode": "area"}),
}


def _module(kw: dict) -> Fn:
    return Fn(lambda x: F.interpolate(x, **kw))


def _given_scale(kw: dict) -> float | None:
    return None if kw.get("recompute_scale_factor") else kw.get("scale_factor")


@pytest.mark.parametrize("name", list(CASES))
def test_the_matrices_are_torchs_interpolation(name):
    (h, w), kw = CASES[name]
    x = torch.from_numpy(_x(1, 2, h, w)).double()
    want = F.interpolate(x, **kw).numpy()
    ho, wo = want.shape[2:]
    corners, sf = bool(kw.get("align_corners")), _given_scale(kw)
    rh = resize.matrix(h, ho, kw["mode"], corners, sf)
    rw = resize.matrix(w, wo, kw["mode"], corners, sf)
    np.testing.assert_allclose(np.einsum("oh,nchw,pw->ncop", rh, x.numpy(), rw), want,
                               atol=1e-12)


def test_a_given_scale_factor_moves_the_samples():
    # 5 -> 12 by scale_factor 2.5: torch samples at (o + 1/2) / 2.5 - 1/2, not (o + 1/2) 5 / 12
    given, recomputed = resize.matrix(5, 12, "bilinear", False, 2.5), \
        resize.matrix(5, 12, "bilinear", False, None)
    assert np.abs(given - recomputed).max() > 0.05


@pytest.mark.parametrize("name", list(CASES))
def test_integer_rows_sum_to_their_denominator_and_fit_int8(name):
    (h, w), kw = CASES[name]
    ho = F.interpolate(torch.zeros(1, 1, h, w), **kw).shape[2]
    m = resize.matrix(h, ho, kw["mode"], bool(kw.get("align_corners")), _given_scale(kw))
    q, d = resize.integer_rows(m)
    assert (q.sum(axis=1) == d).all() and q.min() >= -128 and q.max() <= 127
    assert (np.abs(q / d[:, None] - m) <= 1 / d[:, None] + 1e-12).all()  # one unit at most
    equal = [len(set(np.round(r[r != 0], 12))) == 1 for r in m]  # nearest, area, copies: exact
    np.testing.assert_allclose(q[equal] / d[equal, None], m[equal], atol=1e-12)
    assert set(d[~np.array(equal)]) <= {64, 128}


@pytest.mark.parametrize("name", list(CASES))
def test_shared_rows_sum_to_one_denominator_and_fit_int8(name):
    (h, w), kw = CASES[name]
    ho = F.interpolate(torch.zeros(1, 1, h, w), **kw).shape[2]
    m = resize.matrix(h, ho, kw["mode"], bool(kw.get("align_corners")), _given_scale(kw))
    q, d = resize.shared_rows(m)
    assert (q.sum(axis=1) == d).all() and q.min() >= -128 and q.max() <= 127
    assert np.abs(q / d - m).max() <= 1 / d + 1e-12
    if kw["mode"] in ("nearest", "nearest-exact", "area") or h == 1:  # exact
        np.testing.assert_allclose(q / d, m, atol=1e-12)


def test_a_copy_row_at_seven_bits_lends_one_unit_to_its_neighbour():
    w, d = resize.shared_rows(resize.matrix(5, 12, "bilinear"))  # border rows copy a pixel
    assert d == 128 and list(w[0, :2]) == [127, 1]
    w, d = resize.shared_rows(resize.matrix(13, 6, "area"))      # windows of 3: exact
    assert d == 3 and set(w.ravel()) == {0, 1}


def test_bilinear_rows_take_seven_fractional_bits_and_bicubic_borders_six():
    _, d = resize.integer_rows(resize.matrix(7, 32, "bilinear"))
    assert set(d) == {1, 128}  # 1: the border rows copy a pixel
    w, d = resize.integer_rows(resize.matrix(6, 12, "bicubic"))
    assert 64 in set(d) and w.max() > 64  # a merged border weight above 1 (70 of 64)


def test_bicubic_widens_the_intermediate_encoding_by_its_overshoot():
    g = quantized(_module(CASES["bicubic"][1]), _x(8, 3, 5, 6))
    node = g.nodes[0]
    inp = g.tensors[node.inputs[0]]
    scale, _ = node.attrs["mid"]
    w, d = resize.integer_rows(resize.matrix(6, 12, "bicubic"))
    over = max(-np.clip(w, None, 0).sum(axis=1) / d)
    assert np.isclose(over, 9 / 64, atol=1 / 128)  # 2x: t = 1/4, 3/4: taps -0.105, -0.035
    assert np.isclose(scale / inp.scale, 1 + 2 * over, rtol=0.02)
    g = quantized(_module(CASES["up3"][1]), _x(8, 3, 4, 5))  # bilinear: the input's own
    assert tuple(g.nodes[0].attrs["mid"]) == (g.tensors[g.input].scale,
                                              g.tensors[g.input].zero_point)


@pytest.mark.parametrize("name", list(CASES))
def test_capture_is_one_resize_node_matching_torch(name):
    (h, w), kw = CASES[name]
    g = float_matches(_module(kw), _x(2, 3, h, w))
    assert [(n.op, n.attrs["mode"], n.attrs["align_corners"]) for n in g.nodes] == \
        [("resize", kw["mode"], bool(kw.get("align_corners")))]


def test_a_sequence_resizes_along_its_length():
    """F.interpolate(mode='linear') of (N, C, L): a resize of the (1, L, C) image along W."""
    m = _module({"size": 11, "mode": "linear", "align_corners": True})
    g = float_matches(m, _x(2, 3, 5))
    node = g.nodes[0]
    assert node.op == "resize" and node.params["weight_h"].shape == (1, 1)
    assert reference_cosine(m, _x(8, 3, 5), 8) > 0.9995


def test_the_old_forms_keep_their_kernels():
    # twice the size (align_corners False) stays four 2x2 depthwise convs, half an average pool,
    # integer nearest a copy
    for kw, op in (({"scale_factor": 2, "mode": "bilinear"}, "upsample_bilinear"),
                   ({"scale_factor": 0.5, "mode": "bilinear"}, "avgpool2d"),
                   ({"scale_factor": 3, "mode": "nearest"}, "upsample_nearest")):
        g = capture(_module(kw).eval(), torch.zeros(1, 2, 4, 6))
        assert [n.op for n in g.nodes] == [op]


def test_a_resize_graph_saves_and_loads():
    g = quantized(_module(CASES["bicubic"][1]), _x(8, 3, 5, 6))
    again = graphio.graph_from_bytes(graphio.graph_to_bytes(g))
    codes = g.quantize_input(_x(3, 3, 5, 6, seed=1))
    np.testing.assert_array_equal(reference.run(again, codes), reference.run(g, codes))
    assert again.nodes[0].attrs == g.nodes[0].attrs


def test_antialias_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="antialias=True.*antialias=False resizes"):
        capture(_module({"scale_factor": 0.5, "mode": "bilinear", "antialias": True}).eval(),
                torch.zeros(1, 1, 8, 8))


# The reference rounds twice (after W, then after H), and its interpolating weights are
# multiples of 1/128 or 1/64 (off by less than a unit: 1/128 of the neighbours' difference).
# Measured against the fake-quantized float: max 2 codes (1 code but for a handful of the 9216
# of up8_corners, down, bicubic and area_down), mean <= 0.50 (bicubic_down) at 8 bits; max 1
# at 4 bits but area_down's 2; 0 on nearest and from 1x1 (exact weights, one value a row)
@pytest.mark.parametrize("name", list(CASES))
def test_reference_codes_stay_near_the_fake_quantized_float(name):
    (h, w), kw = CASES[name]
    exact = kw["mode"].startswith("nearest") or (h, w) == (1, 1)
    for bits in (8, 4):
        diff = codes_vs_fake_quant(_module(kw), _x(8, 3, h, w), bits)
        assert diff.max() <= (0 if exact else 2) and diff.mean() < 0.5


@pytest.mark.parametrize("name", list(CASES))
def test_reference_tracks_torch(name):
    (h, w), kw = CASES[name]
    x = _x(8, 3, h, w)
    assert reference_cosine(_module(kw), x, 8) > 0.9995  # measured >= 0.99980 (area_down)
    assert reference_cosine(_module(kw), x, 4) > 0.94  # measured >= 0.9505 (area_down)
