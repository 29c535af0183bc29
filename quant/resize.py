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
    area      (F.interpolate mode 'area', adaptive_avg_pool to any size) the mean of inputs
              floor(o in / out) .. ceil((o + 1) in / out) - 1

Integers: R_w (``integer_rows``) has int8 weights over a denominator d_o per row o. A row
whose nonzero weights are all equal (nearest, area, a copy at a border) is exact: weights 1
over their count. Any other is rounded to F fractional bits, F the largest of 7 or 6 that keeps
every weight an int8 (bilinear: 7 unless a weight rounds to 1; bicubic's merged border weights
reach 1.1: 6), with the row's sum kept at exactly 2^F (largest remainders; a constant image
stays constant). R_h (``shared_rows``) has one denominator d_h for all its rows: exact for
nearest and area (the least common multiple of the window sizes, up to 127), else 2^7 or 2^6,
whichever is off by less in RMS (at 2^7 a copy row is 127 + 1 with a neighbour).

The golden reference (``qasic.quant.reference``, op ``resize``) applies R_w along W,
requantizes to the intermediate encoding ``mid`` (M_w[o] = s_in / (d_o s_mid)), applies R_h
along H and requantizes to the output (M_h = s_mid / (d_h s_out)): a ``linear`` with constant
weights and a multiplier per output column between two permutes, then a ``matmul`` of the
constant R_h (codes of scale 1 / d_h) by the intermediate as (H, W_out C), which is how the
compiler runs it (``qasic.compiler.resize``). ``mid`` is the input's encoding for bilinear,
nearest and area (their W stage only mixes input values convexly, so nothing clips), and for
bicubic the input's range widened on each side by the largest sum of negative weights of a row
of R_w times its span (Keys' kernel overshoots by at most 0.1875 of a step: the range grows by
up to 37.5%).
"""

from __future__ import annotations

import math

import numpy as np

from qasic.quant.graph import TensorQ
from qasic.quant.observers import affine, fp_tensor

FRAC_BITS = (7, 6)  # fractional bits of a rounded row: the first whose weights fit an int8
CUBIC_A = -0.75
MAX_WINDOW = 127   # an area row's weights are 1 over its count: at most int8's 127 of them
MODES = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")


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
    if n_in == n_out:  # torch's bilinear kernels copy a same-size axis
        return np.eye(n_in)
    m = np.zeros((n_out, n_in))
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


def area_windows(n_in: int, n_out: int) -> list[tuple[int, int]]:
    """torch's adaptive average pooling windows [lo, hi) along one axis."""
    return [(o * n_in // n_out, -(-(o + 1) * n_in // n_out)) for o in range(n_out)]


def _area(n_in: int, n_out: int, ratio: float, align_corners: bool) -> np.ndarray:
    m = np.zeros((n_out, n_in))
    for o, (lo, hi) in enumerate(area_windows(n_in, n_out)):
        m[o, lo:hi] = 1.0 / (hi - lo)
    return m


_MATRICES = {"bilinear": _bilinear, "bicubic": _bicubic, "area": _area}
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


def fixed_row(row: np.ndarray, frac_bits: int) -> np.ndarray:
    """A row summing to 1 as integers in units of 2^-frac_bits summing to exactly 2^frac_bits:
    rounded down, then the missing units to the largest remainders (ties to the lower
    index)."""
    one = 1 << frac_bits
    scaled = np.asarray(row, np.float64) * one
    out = np.floor(scaled).astype(np.int64)
    order = np.argsort(-(scaled - out), kind="stable")
    out[order[:one - int(out.sum())]] += 1
    return out


def integer_rows(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weights int64 (rows, n_in), denominators (rows,)): row o of ``m`` ~ weights[o] / d[o]
    (the module doc: exact where the nonzero weights are equal, else 2^7 or 2^6)."""
    weights, dens = np.zeros(m.shape, np.int64), np.zeros(len(m), np.int64)
    for o, row in enumerate(np.asarray(m, np.float64)):
        nz = row[row != 0]
        k = len(nz)
        if k and k <= MAX_WINDOW and np.allclose(nz, 1.0 / k, rtol=0, atol=1e-12):
            weights[o], dens[o] = row != 0, k
            continue
        for f in FRAC_BITS:
            w = fixed_row(row, f)
            if w.min() >= -128 and w.max() <= 127:
                weights[o], dens[o] = w, 1 << f
                break
        else:
            raise ValueError(f"resize row {o} of weights {row} does not fit int8 weights")
    return weights, dens


def _capped_row(row: np.ndarray, frac_bits: int) -> np.ndarray | None:
    """``fixed_row`` with a weight of 2^7 (a copy) split 127 + 1 with the next-largest tap (the
    nearest one if no other is nonzero); None for a row of one input."""
    w = fixed_row(row, frac_bits)
    if w.max() <= 127 and w.min() >= -128:
        return w
    if len(row) == 1 or w.max() != 128 or w.min() < -128:  # only a copy splits
        return None
    i = int(np.argmax(w))
    others = np.where(np.arange(len(row)) == i, -np.inf, row - 1e-9 * np.abs(np.arange(
        len(row)) - i))  # ties: the nearest tap
    w[i], w[int(np.argmax(others))] = w[i] - 1, w[int(np.argmax(others))] + 1
    return w


def shared_rows(m: np.ndarray) -> tuple[np.ndarray, int]:
    """(weights int64 (rows, n_in), d): every row of ``m`` ~ weights / d with one denominator
    (the H stage's: one multiplier for all its rows). Rows of equal nonzero weights (nearest,
    area) are exact over the least common multiple of their counts when it is at most 127;
    else d = 2^F, F of FRAC_BITS with the smaller root-mean-square error (a copy row at 2^7 is
    127 + 1 with a neighbour: 1/128 off, the bound of any weight rounded at 2^6; at 2^6 it is
    exact)."""
    m = np.asarray(m, np.float64)
    counts = (m != 0).sum(axis=1)
    lcm = math.lcm(*(int(k) for k in counts))
    if lcm <= MAX_WINDOW and np.allclose(m, (m != 0) / counts[:, None], rtol=0, atol=1e-12):
        return (m != 0) * (lcm // counts[:, None]).astype(np.int64), lcm
    best = None
    for f in FRAC_BITS:
        rows = [_capped_row(r, f) for r in np.asarray(m, np.float64)]
        if any(r is None for r in rows):
            continue
        w = np.array(rows, np.int64).reshape(m.shape)
        err = float(np.sqrt(np.mean((w / (1 << f) - m) ** 2)))
        if best is None or err < best[0] - 1e-12:
            best = (err, w, 1 << f)
    return best[1], best[2]


def output_scales(scale_factors) -> tuple[float | None, float | None]:
    """(scale_h, scale_w) from aten's scale_factors argument (None, one or two values)."""
    if scale_factors is None:
        return (None, None)
    s = [float(v) for v in scale_factors]
    return (s[0], s[-1]) if s else (None, None)


def mid_encoding(inp: TensorQ, weight_w: np.ndarray, dens: np.ndarray) -> TensorQ:
    """The encoding of the values between the two stages (the module doc): the input's when no
    weight of the integer ``weight_w`` (over denominators ``dens``) is negative, else its range
    widened by the overshoot."""
    over = float(np.max(-np.clip(weight_w, None, 0).sum(axis=1) / dens))
    if over == 0:
        return inp
    lo, hi = (float(v) for v in inp.decode(np.array([inp.qmin, inp.qmax])))
    lo, hi = lo - over * (hi - lo), hi + over * (hi - lo)
    return fp_tensor(lo, hi, inp.fmt) if inp.is_fp else affine(lo, hi, inp.bits)
