"""General image resizing (``F.interpolate``: bilinear, bicubic, nearest) as two constant GEMMs.

A resize is separable: per sample and channel, Y = R_h X R_w^T with R_h (H_out, H_in) and R_w
(W_out, W_in) the interpolation weights along each axis (``matrix``), which follow PyTorch's CPU
kernels (aten/src/ATen/native/UpSample.h: ``area_pixel_compute_scale``,
``area_pixel_compute_source_index``, ``guard_index_and_lambda``, ``nearest_idx``,
``get_cubic_upsample_coefficients``):

    scale     align_corners: (in - 1) / (out - 1) (0 when out == 1); otherwise 1 / scale_factor
              when torch was given one (``scale_factor`` without ``recompute_scale_factor``),
              else in / out
    source    align_corners: scale * o; otherwise scale * (o + 1/2) - 1/2, clamped at 0
              for bilinear (not for bicubic)
    bilinear  taps i0 = min(floor(src), in - 1) and min(i0 + 1, in - 1), weights 1 - l, l with
              l = clamp(src - i0, 0, 1); out == in is the identity
    bicubic   taps floor(src) - 1 .. floor(src) + 2 clamped to [0, in - 1], Keys' cubic
              convolution with A = -0.75 at t = src - floor(src)
    nearest   tap min(floor(o * scale), in - 1); 'nearest-exact' min(floor((o + 1/2) scale),
              in - 1) (both: scale = 1 / scale_factor or in / out, whatever align_corners)

Integers: each row of a matrix is rounded to ``FRAC_BITS`` fractional bits with its sum kept at
exactly 2^FRAC_BITS (largest remainders; a constant image stays constant), so every weight
is an int8 (bicubic's largest merged border weight is below 1.1, 70 of 127). The golden
reference (``qasic.quant.reference``, op ``resize``) applies R_w along W, requantizes to the
intermediate encoding ``mid`` (M_w = s_in / (2^F s_mid)), applies R_h along H and requantizes
to the output (M_h = s_mid / (2^F s_out)): exactly two ``linear`` layers with constant
weights between permutes, which is how the compiler runs it (``qasic.compiler.resize``).
``mid`` is the input's encoding for bilinear and nearest (their W stage only mixes input values
convexly, so nothing clips), and for bicubic the input's range widened on each side by the
largest sum of negative weights of a row of R_w times its span (Keys' kernel overshoots by at
most 0.1875 of a step: the range grows by up to 37.5%).
"""

from __future__ import annotations

import numpy as np

from qasic.quant.graph import TensorQ
from qasic.quant.observers import affine, fp_tensor

FRAC_BITS = 6   # weights in units of 1/64: rows sum to 64, every weight fits an int8
CUBIC_A = -0.75
MODES = ("bilinear", "bicubic", "nearest", "nearest-exact")


def source_scale(n_in: int, n_out: int, align_corners: bool, scale: float | None) -> float:
    """torch's area_pixel_compute_scale: input pixels per output pixel."""
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    return 1.0 / scale if scale is not None and scale > 0 else n_in / n_out


def _source(o: np.ndarray, ratio: float, align_corners: bool, cubic: bool) -> np.ndarray:
    if align_corners:
        return ratio * o
    src = ratio * (o + 0.5) - 0.5
    return src if cubic else np.maximum(src, 0.0)


def _bilinear(n_in: int, n_out: int, ratio: float, align_corners: bool) -> np.ndarray:
    m = np.zeros((n_out, n_in))
    if n_in == n_out:
        return np.eye(n_in)
    o = np.arange(n_out)
    src = _source(o, ratio, align_corners, cubic=False)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    lam = np.clip(src - i0, 0.0, 1.0)
    np.add.at(m, (o, i0), 1.0 - lam)
    np.add.at(m, (o, np.minimum(i0 + 1, n_in - 1)), lam)
    return m


def cubic_weights(t: np.ndarray) -> np.ndarray:
    """(n, 4) Keys' cubic convolution weights of taps -1, 0, 1, 2 at fractions ``t``."""
    a = CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):   # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


def _bicubic(n_in: int, n_out: int, ratio: float, align_corners: bool) -> np.ndarray:
    m = np.zeros((n_out, n_in))
    o = np.arange(n_out)
    src = _source(o, ratio, align_corners, cubic=True)
    base = np.floor(src).astype(np.int64)
    w = cubic_weights(src - base)
    for j in range(4):
        np.add.at(m, (o, np.clip(base - 1 + j, 0, n_in - 1)), w[:, j])
    return m


def _nearest(n_in: int, n_out: int, ratio: float, offset: float) -> np.ndarray:
    o = np.arange(n_out)
    src = np.minimum(np.floor((o + offset) * ratio).astype(np.int64), n_in - 1)
    m = np.zeros((n_out, n_in))
    m[o, src] = 1.0
    return m


_MATRICES = {"bilinear": _bilinear, "bicubic": _bicubic}
_NEAREST = {"nearest": 0.0, "nearest-exact": 0.5}  # mode -> offset of the sampling position


def matrix(n_in: int, n_out: int, mode: str, align_corners: bool = False,
           scale: float | None = None) -> np.ndarray:
    """(n_out, n_in) float64 interpolation weights along one axis (the module doc); ``scale``:
    the scale factor torch was given for this axis, or None."""
    if mode not in MODES:
        raise ValueError(f"resize mode {mode!r}; one of {', '.join(MODES)}")
    if mode in _NEAREST:
        return _nearest(n_in, n_out, source_scale(n_in, n_out, False, scale), _NEAREST[mode])
    return _MATRICES[mode](n_in, n_out, source_scale(n_in, n_out, align_corners, scale),
                           align_corners)


def fixed(m: np.ndarray, frac_bits: int = FRAC_BITS) -> np.ndarray:
    """Rows of ``m`` (each summing to 1) as integers in units of 2^-frac_bits, each row summing
    to exactly 2^frac_bits: rounded down, then the missing units to the largest remainders
    (ties to the lower index)."""
    one = 1 << frac_bits
    scaled = np.asarray(m, np.float64) * one
    out = np.floor(scaled).astype(np.int64)
    rem = scaled - out
    short = one - out.sum(axis=1)
    for r in range(len(out)):
        order = np.argsort(-rem[r], kind="stable")
        out[r, order[:short[r]]] += 1
    return out


def output_scales(scale_factors) -> tuple[float | None, float | None]:
    """(scale_h, scale_w) from aten's scale_factors argument (None, one or two values)."""
    if scale_factors is None:
        return (None, None)
    s = [float(v) for v in scale_factors]
    return (s[0], s[-1]) if s else (None, None)


def mid_encoding(inp: TensorQ, weight_w: np.ndarray) -> TensorQ:
    """The encoding of the values between the two stages (the module doc): the input's when no
    weight of the fixed-point ``weight_w`` is negative, else its range widened by the
    overshoot."""
    over = float(np.clip(weight_w, None, 0).sum(axis=1).min()) / -(1 << FRAC_BITS)
    if over == 0:
        return inp
    lo, hi = (float(v) for v in inp.decode(np.array([inp.qmin, inp.qmax])))
    lo, hi = lo - over * (hi - lo), hi + over * (hi - lo)
    return fp_tensor(lo, hi, inp.fmt) if inp.is_fp else affine(lo, hi, inp.bits)
