"""Window geometry shared by the golden reference and the float executor (any dtype).

Images are NHWC, batch first. Attribute forms (QGraph): pairs (h, w) for kernel, stride and
dilation; padding (top, left, bottom, right). ``pair`` and ``quad`` also accept the one-int form
older graphs carry (square, symmetric).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import numpy as np


def pair(v: Any) -> tuple[int, int]:
    """An int or a 1-/2-sequence -> (h, w)."""
    vals = [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
    return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])


def quad(v: Any) -> tuple[int, int, int, int]:
    """Padding as an int (all sides), (h, w) (symmetric) or (top, left, bottom, right)."""
    vals = [int(x) for x in (v if isinstance(v, (list, tuple)) else [v])]
    if len(vals) == 4:
        return (vals[0], vals[1], vals[2], vals[3])
    h, w = pair(vals)
    return (h, w, h, w)


def pad_nhwc(x: np.ndarray, pad: Any, value: Any) -> np.ndarray:
    """Pad H and W by ``pad`` (int or (t, l, b, r)) with the constant ``value``."""
    t, l, b, r = quad(pad)
    if t == l == b == r == 0:
        return x
    return np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)), constant_values=value)


def out_size(n: int, k: int, s: int, d: int = 1) -> int:
    """Windows of extent d*(k-1)+1 at stride s that fit in n (already padded) samples."""
    return (n - d * (k - 1) - 1) // s + 1


def taps(x: np.ndarray, kernel: Any, stride: Any,
         dilation: Any = 1) -> Iterator[tuple[int, int, np.ndarray]]:
    """(i, j, x[:, tap (i, j) of every window, :]) for each kernel tap of a padded image."""
    (kh, kw), (sh, sw), (dh, dw) = pair(kernel), pair(stride), pair(dilation)
    _, h, w, _ = x.shape
    oh, ow = out_size(h, kh, sh, dh), out_size(w, kw, sw, dw)
    for i in range(kh):
        for j in range(kw):
            y0, x0 = i * dh, j * dw
            yield i, j, x[:, y0:y0 + sh * (oh - 1) + 1:sh, x0:x0 + sw * (ow - 1) + 1:sw, :]


def im2col(x: np.ndarray, kh: int, kw: int, stride: Any, dilation: Any = 1) -> np.ndarray:
    """(N, H, W, C) padded -> (N, OH, OW, KH*KW*C), patch order (kh, kw, c)."""
    n, h, w, c = x.shape
    (sh, sw), (dh, dw) = pair(stride), pair(dilation)
    oh, ow = out_size(h, kh, sh, dh), out_size(w, kw, sw, dw)
    cols = np.empty((n, oh, ow, kh, kw, c), dtype=x.dtype)
    for i, j, tap in taps(x, (kh, kw), stride, dilation):
        cols[:, :, :, i, j, :] = tap
    return cols.reshape(n, oh, ow, kh * kw * c)


def conv(x: np.ndarray, w: np.ndarray, stride: Any, dilation: Any, groups: int) -> np.ndarray:
    """Sum of products of a padded image (N, H, W, C) and a weight (OC, KH, KW, C/groups): output
    channel o reads input channels of group o // (OC/groups). Exact for integers (int64)."""
    oc, kh, kw, icg = w.shape
    cols = im2col(x, kh, kw, stride, dilation)
    if groups == 1:
        return cols @ w.reshape(oc, -1).T
    n, oh, ow, _ = cols.shape
    cols = cols.reshape(n, oh, ow, kh * kw, groups, icg)
    wg = w.reshape(groups, oc // groups, kh * kw, icg)
    return np.einsum("nhwkgi,goki->nhwgo", cols, wg).reshape(n, oh, ow, oc)


def window_reduce(x: np.ndarray, kernel: Any, stride: Any, fn: Any) -> np.ndarray:
    """fn-fold (np.maximum, np.add) over the taps of every window of a padded image."""
    return functools.reduce(fn, (tap for _, _, tap in taps(x, kernel, stride)))


def upsample_nearest(x: np.ndarray, scale: Any) -> np.ndarray:
    fh, fw = pair(scale)
    return np.repeat(np.repeat(x, fh, axis=1), fw, axis=2)


def bilinear2x_weights(x: np.ndarray, axis: int) -> np.ndarray:
    """Double ``axis`` with weights (1, 3) / (3, 1) (sum 4, not divided): out[2i] = x[i-1] +
    3 x[i], out[2i+1] = 3 x[i] + x[i+1], indices clamped to [0, n-1] (torch's bilinear at
    scale 2, align_corners False, times 4)."""
    n = x.shape[axis]
    prev = np.take(x, np.clip(np.arange(n) - 1, 0, n - 1), axis=axis)
    nxt = np.take(x, np.clip(np.arange(n) + 1, 0, n - 1), axis=axis)
    even, odd = prev + 3 * x, 3 * x + nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(x.shape)
    shape[axis] = 2 * n
    return out.reshape(shape)


def bilinear2x(x: np.ndarray) -> np.ndarray:
    """Both spatial axes doubled: 16 times torch's bilinear upsample (integer weights)."""
    return bilinear2x_weights(bilinear2x_weights(x, 1), 2)
