"""Affine integer encoding of real values: q = clamp(floor(x / scale + 0.5) + zero_point)."""

from __future__ import annotations

import numpy as np


def quantize_codes(x: np.ndarray, scale: float, zero_point: int, bits: int = 8) -> np.ndarray:
    """Round half up, then saturate to signed ``bits``; int64 out."""
    q = np.floor(np.asarray(x, dtype=np.float64) / scale + 0.5) + zero_point
    return np.clip(q, -(1 << (bits - 1)), (1 << (bits - 1)) - 1).astype(np.int64)


def dequantize_codes(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    return (np.asarray(q, dtype=np.float64) - zero_point) * scale
