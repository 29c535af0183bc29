"""The cycle schedule of one fold on the systolic core: the one truth for RTL and simulator.

A *fold* computes OUT[T x C] = A[T x R] @ W[R x C] on an R x C weight-stationary array.
Cycles are numbered from the *launch cycle* 0, the cycle in which ``start`` is sampled high:

* ``0 .. R-1``          preload: one weight row per cycle shifts down into the PE grid
                        (row R-1 first, so after R cycles PE row r holds W[r]).
* ``R .. R+T+R+C-3``    stream and drain: activation row t enters PE row r at cycle R+t+r
                        (skewed by r), moves right one PE per cycle; partial sums move down one
                        PE per cycle; the sum of vector t leaves the bottom of column c at cycle
                        2R-1+t+c and, de-skewed, output row t is written at cycle 2R+C-2+t.
* ``N = fold_cycles``   ``done`` is high: every output row is in the output buffer.

So ``done`` is high exactly ``fold_cycles(R, C, T)`` cycles after the launch cycle.
"""

from __future__ import annotations


def fold_cycles(rows: int, cols: int, t: int) -> int:
    """Cycles of one fold: R preload + (T + R + C - 2) stream/drain = 2R + C + T - 2.

    Measured on the RTL as: ``start`` high in cycle s, ``done`` first high in cycle s + result.
    """
    _check_positive(rows=rows, cols=cols, t=t)
    return preload_cycles(rows) + stream_cycles(rows, cols, t)


def preload_cycles(rows: int) -> int:
    """Cycles to shift an R x C weight tile into the PEs, one row per cycle."""
    return rows


def stream_cycles(rows: int, cols: int, t: int) -> int:
    """Cycles from the first activation entering PE(0, 0) to the last output row written."""
    return t + rows + cols - 2


def first_write_cycle(rows: int, cols: int) -> int:
    """Fold cycle (from launch) in which output row 0 is written; row t is written t later."""
    return 2 * rows + cols - 2


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"fold_cycles: {name} = {value} must be >= 1")


# The GEMM unit (qasic.rtl.gemm_unit) runs one fold straight out of the scratchpads: a few
# *prologue* cycles that fetch what the weight load needs before its first row (the decode table,
# the zero-point row, the stored rows of a transposed tile), one cycle of scratchpad read latency,
# then the fold schedule above, fold cycle f being unit cycle pre + 1 + f. Its last accumulator
# row is written in fold cycle fold_cycles - 1 and ``done`` is high in that same cycle.


def lut_read_cycles(cols: int, wbits):
    """Cycles to read a 2^wbits-entry GEMM decode table, ``cols`` 32-bit entries per read."""
    return -(-(1 << wbits) // cols)


def gemm_prologue_cycles(cols: int, n, wbits, lut, wtrans, mulzp):
    """Unit cycles before the first weight row is read: max(table reads, weight-port reads).

    The param port reads the decode table (lut = 1: ``lut_read_cycles``) while the weight port
    reads the zero-point row (bscale = mulzp: 1 cycle) and then, with wtrans = 1, the n stored
    rows into the transposer (n cycles). Works on ints and on numpy arrays of fields alike.
    """
    table = lut * lut_read_cycles(cols, wbits)
    weight = mulzp + wtrans * n
    return table + (weight - table) * (weight > table)


def gemm_unit_cycles(rows: int, cols: int, t, pre):
    """(busy = done) duration d of one GEMM on the unit: pre + fold_cycles(R, C, T) + 1
    = pre + 2R + C + T - 1 (``start`` in cycle s, ``done`` high in cycle s + d - 1, ``busy`` high
    in cycles s+1 .. s+d-1). ``pre`` = ``gemm_prologue_cycles``; the + 1 is the scratchpad's read
    latency before the first weight row reaches the array."""
    return pre + preload_cycles(rows) + stream_cycles(rows, cols, t) + 1
