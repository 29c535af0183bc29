"""The golden model of a block-scaled fold, in plain Python integers (no int64 overflow)."""

from __future__ import annotations

import numpy as np

from qasic.isa.table import BSCALE_BYTES

SCALE_MAX = (1 << (8 * BSCALE_BYTES)) - 1


def scaled_fold(a, w, scale, mode: str, acc_bits: int) -> np.ndarray:
    """OUT[t, c] = the ``mode`` block scale s[c] applied to sum_k a[t, k] w[k, c]."""
    sums = [[sum(int(x) * int(y) for x, y in zip(row, col)) for col in np.transpose(w)]
            for row in a]
    return scale_sums(sums, scale, mode, acc_bits).reshape(len(a), np.shape(w)[1])


def scale_sums(sums, scale, mode: str, acc_bits: int) -> np.ndarray:
    """Column c of every row: p, p << s[c] or p * s[c] (none/shift/mul and mulzp), wrapped to
    acc_bits."""
    ops = {"none": lambda p, s: p, "shift": lambda p, s: p << s, "mul": lambda p, s: p * s,
           "mulzp": lambda p, s: p * s}  # mulzp: zero points subtracted before the array
    half, full = 1 << (acc_bits - 1), 1 << acc_bits
    return np.array([[(ops[mode](int(p), int(s)) + half) % full - half
                      for p, s in zip(row, scale)] for row in sums], dtype=np.int64)


def edge_scales(n: int, acc_bits: int, mode: str, rng) -> np.ndarray:
    """n column scales that hit the edges: 0, 1, the largest shift that keeps a bit
    (acc_bits - 1), the first that keeps none (acc_bits), the largest scale, then random ones
    (shifts below acc_bits, where they keep some bits)."""
    shift = mode == "shift"
    edges = [0, 1, acc_bits - 1, acc_bits, SCALE_MAX] if shift else [0, 1, 2, SCALE_MAX]
    top = acc_bits if shift else SCALE_MAX + 1
    rest = rng.integers(0, top, size=max(n - len(edges), 0))
    return np.concatenate([edges, rest])[:n].astype(np.int64)
