"""C functions the Numba interpreter calls directly: BLAS's dgemm (scipy's cython_blas symbol)
and libc's memcpy and memset. The interpreter runs with Numba's reference counting off
(fastkernels), and numpy's wrappers (np.dot, slice assignment) need it; these cost less anyway:
a fold of a 16 x 16 tile over 4 vectors takes 60 ns through dgemm, 190 ns through np.dot and
230 ns as a Numba loop, and a 6 KB row copy 0.14 us through memcpy against 4.8 us as a byte
loop. The symbols are resolved by name at link time, so the interpreter stays in Numba's
on-disk cache.

``matmul`` sums in float64, so it returns exact integers only while every product and partial
sum stays below 2^53; ``matmul32`` (sgemm) below 2^24 (the caller's bounds: fastkernels._gemm).
"""

from __future__ import annotations

import ctypes

import llvmlite.binding as ll
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

SYMBOL = "qasic_cython_dgemm"
ll.add_symbol(SYMBOL, get_cython_function_address("scipy.linalg.cython_blas", "dgemm"))
ll.add_symbol("qasic_cython_sgemm", get_cython_function_address("scipy.linalg.cython_blas",
                                                                "sgemm"))
# ?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc): every argument a pointer
_dgemm = types.ExternalFunction(SYMBOL, types.void(*([types.voidptr] * 13)))
_sgemm = types.ExternalFunction("qasic_cython_sgemm", types.void(*([types.voidptr] * 13)))
_LIBC = ctypes.CDLL(None)
for _name in ("memcpy", "memset"):
    ll.add_symbol(f"qasic_{_name}", ctypes.cast(getattr(_LIBC, _name), ctypes.c_void_p).value)
# pointers passed as integers (the same registers in the C calling convention)
_memcpy = types.ExternalFunction("qasic_memcpy", types.uintp(types.uintp, types.uintp, types.uintp))
_memset = types.ExternalFunction("qasic_memset", types.uintp(types.uintp, types.intc, types.uintp))


def scratch() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """matmul's argument memory: int32 [m, n, k, 'N', lda, ldb], float64 and float32
    [alpha 1, beta 0]."""
    return (np.array([0, 0, 0, ord("N"), 0, 0], dtype=np.int32), np.array([1.0, 0.0]),
            np.array([1.0, 0.0], dtype=np.float32))


@njit(cache=True, _nrt=False)
def matmul(a, w, out, t, k, n, ints, consts):
    """out[:t * n] = a[:t * k] (row-major t x k) @ w[:k * n] (row-major k x n), float64 (all
    three contiguous). Row-major C = A B is column-major C^T = B^T A^T: dgemm's m = n, n = t."""
    ints[0], ints[1], ints[2] = n, t, k
    tr = ints[3:4].ctypes
    _dgemm(tr, tr, ints[0:1].ctypes, ints[1:2].ctypes, ints[2:3].ctypes, consts[0:1].ctypes,
           w.ctypes, ints[0:1].ctypes, a.ctypes, ints[2:3].ctypes, consts[1:2].ctypes,
           out.ctypes, ints[0:1].ctypes)


@njit(cache=True, _nrt=False)
def matmul32(a, w, out, t, k, n, ints, consts32):
    """``matmul`` in float32 (sgemm): exact while every product and partial sum stays below
    2^24 (the caller's bound)."""
    matmul32_strided(a, k, w, n, out, t, k, n, ints, consts32)


@njit(cache=True, _nrt=False)
def address(mem, b, offset):
    """The address of byte ``offset`` of batch row ``b`` of a (batch, bytes) uint8 memory
    (a row shared by the batch has stride 0: every b is row 0)."""
    return mem.ctypes.data + b * mem.strides[0] + offset


@njit(cache=True, _nrt=False)
def copy(dst, b_dst, d0, src, b_src, s0, count):
    """dst[b_dst, d0:d0 + count] = src[b_src, s0:s0 + count] (uint8 memories that do not overlap:
    the caller checked both ranges)."""
    _memcpy(address(dst, b_dst, d0), address(src, b_src, s0), count)


@njit(cache=True, _nrt=False)
def fill(dst, b, d0, value, count):
    """dst[b, d0:d0 + count] = value (the caller checked the range)."""
    _memset(address(dst, b, d0), value, count)


@njit(cache=True, _nrt=False)
def matmul32_strided(a, lda, w, ldw, out, t, k, n, ints, consts32):
    """out[:t * n] = A @ W in float32 (sgemm; exact under ``matmul32``'s bound), row i of the
    t x k A at a[i * lda:], row j of the k x n W at w[j * ldw:] (lda >= k, ldw >= n: BLAS
    refuses less), out row-major t x n."""
    ints[0], ints[1], ints[2], ints[4], ints[5] = n, t, k, ldw, lda
    tr = ints[3:4].ctypes
    _sgemm(tr, tr, ints[0:1].ctypes, ints[1:2].ctypes, ints[2:3].ctypes, consts32[0:1].ctypes,
           w.ctypes, ints[4:5].ctypes, a.ctypes, ints[5:6].ctypes, consts32[1:2].ctypes,
           out.ctypes, ints[0:1].ctypes)
