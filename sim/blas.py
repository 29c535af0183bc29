"""BLAS's dgemm called from the Numba interpreter directly (scipy's cython_blas symbol), without
numpy's np.dot wrapper: the interpreter runs with Numba's reference counting off (fastkernels),
and np.dot needs it. A fold of a 16 x 16 tile over 4 vectors costs 60 ns this way, 190 ns
through np.dot and 230 ns as a Numba loop. The symbol is resolved by name at link time, so the
interpreter stays in Numba's on-disk cache.

``matmul`` sums in float64, so it returns exact integers only while every product and partial
sum stays below 2^53 (the caller's bound: fastkernels._gemm).
"""

from __future__ import annotations

import llvmlite.binding as ll
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

SYMBOL = "qasic_cython_dgemm"
ll.add_symbol(SYMBOL, get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
# dgemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc): every argument a pointer
_dgemm = types.ExternalFunction(SYMBOL, types.void(*([types.voidptr] * 13)))


def scratch() -> tuple[np.ndarray, np.ndarray]:
    """matmul's argument memory: int32 [m, n, k, 'N'] and float64 [alpha 1, beta 0]."""
    return np.array([0, 0, 0, ord("N")], dtype=np.int32), np.array([1.0, 0.0])


@njit(cache=True, _nrt=False)
def matmul(a, w, out, t, k, n, ints, consts):
    """out[:t * n] = a[:t * k] (row-major t x k) @ w[:k * n] (row-major k x n), float64 (all
    three contiguous). Row-major C = A B is column-major C^T = B^T A^T: dgemm's m = n, n = t."""
    ints[0], ints[1], ints[2] = n, t, k
    tr = ints[3:4].ctypes
    _dgemm(tr, tr, ints[0:1].ctypes, ints[1:2].ctypes, ints[2:3].ctypes, consts[0:1].ctypes,
           w.ctypes, ints[0:1].ctypes, a.ctypes, ints[2:3].ctypes, consts[1:2].ctypes,
           out.ctypes, ints[0:1].ctypes)
