"""Host-side helpers: pack signed rows into the core's data buses and pad tiles to the array."""

from __future__ import annotations

import numpy as np

from qasic.arch.pe import split


def pack_row(values, bits: int) -> int:
    """Pack signed integers into one bus word, element j at bits ``[j*bits, (j+1)*bits)``."""
    mask = (1 << bits) - 1
    word = 0
    for j, v in enumerate(values):
        word |= (int(v) & mask) << (j * bits)
    return word


def operand_codes(values, bits: int, shift_bits: int) -> np.ndarray:
    """Bus elements of integer operands for a PE operand of ``bits`` + ``shift_bits``
    (``pe.Operand``): each value split canonically (``qasic.arch.pe.split``) into ``sig << sh``,
    then ``sig`` in the low ``bits`` bits (two's complement) and ``sh`` above them.
    With ``shift_bits`` = 0 these are the plain two's-complement codes.
    """
    bad = operand_misfit(values, bits, shift_bits)
    if bad is not None:
        value, sig, sh = bad
        raise ValueError(f"{value} = {sig} << {sh}: the significand does not fit {bits} bits "
                         f"({shift_bits} shift bits)")
    sig, sh = split(values, shift_bits)
    return (sig & ((1 << bits) - 1)) | (sh << bits)


def operand_misfit(values, bits: int, shift_bits: int) -> tuple[int, int, int] | None:
    """The first value whose significand does not fit ``bits`` signed bits, as
    ``(value, sig, sh)``; None when every value fits."""
    v = np.asarray(values, dtype=np.int64).ravel()
    sig, sh = split(v, shift_bits)
    bad = np.flatnonzero((sig < -(1 << (bits - 1))) | (sig >= 1 << (bits - 1)))
    return None if not bad.size else (int(v[bad[0]]), int(sig[bad[0]]), int(sh[bad[0]]))


def unpack_row(word: int, bits: int, count: int) -> list[int]:
    """Inverse of :func:`pack_row`: ``count`` two's-complement elements of ``bits`` each."""
    mask, sign = (1 << bits) - 1, 1 << (bits - 1)
    out = []
    for j in range(count):
        v = (word >> (j * bits)) & mask
        out.append(v - (1 << bits) if v & sign else v)
    return out


def pad_tile(a: np.ndarray, w: np.ndarray, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Zero-pad A (T x K) to T x rows and W (K x N) to rows x cols; K <= rows, N <= cols."""
    t, k = a.shape
    k2, n = w.shape
    if k != k2 or k > rows or n > cols or not 1 <= t:
        raise ValueError(f"tile A {a.shape} @ W {w.shape} does not fit a {rows}x{cols} array")
    a_pad = np.zeros((t, rows), dtype=np.int64)
    w_pad = np.zeros((rows, cols), dtype=np.int64)
    a_pad[:, :k] = a
    w_pad[:k, :n] = w
    return a_pad, w_pad


def wrap(x: np.ndarray, bits: int) -> np.ndarray:
    """Reduce int64 values to ``bits``-bit two's complement, as the accumulator does."""
    x = np.asarray(x, dtype=np.int64)
    half = 1 << (bits - 1)
    return ((x + half) & ((1 << bits) - 1)) - half
