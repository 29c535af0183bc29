"""One processing element (PE) of the weight-stationary array, and the grid of them.

A PE multiplies two operands (:class:`Operand`): plain signed integers, or, for a shift-add PE
(``qasic.arch.pe``), ``(sig, sh)`` pairs meaning ``sig << sh``. The significands go through the
multiplier and the summed shift moves the product into the accumulator adder.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qasic.arch.config import ArchConfig


@dataclass(frozen=True)
class Operand:
    """The wire format of one PE operand: a ``bits``-wide two's-complement significand ``sig``
    and, if ``shift_bits`` > 0, an unsigned ``shift_bits``-wide shift ``sh``: the value
    ``sig << sh``. With ``shift_bits`` = 0 it is a plain signed integer.

    As a bus element a pair is ``sig`` in the low ``bits`` bits and ``sh`` above them.
    """

    bits: int
    shift_bits: int = 0

    @property
    def shape(self):
        if not self.shift_bits:
            return signed(self.bits)
        return data.StructLayout({"sig": signed(self.bits), "sh": unsigned(self.shift_bits)})

    def parts(self, value) -> tuple:
        """(significand, shift) of a ``value`` of this shape; shift None when there is none."""
        return (value, None) if not self.shift_bits else (value.sig, value.sh)


def arch_operands(arch: ArchConfig) -> tuple[Operand, Operand]:
    """(activation, weight) operands of the PEs ``arch`` describes."""
    return (Operand(arch.input_bits, arch.input_shift_bits),
            Operand(arch.weight_bits, arch.weight_shift_bits))


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell holding one stationary weight.

    Ports (operands in their :class:`Operand` shapes; sums signed two's complement):
    * ``load`` in: shift ``w_in`` into the weight register this cycle (preload phase).
    * ``w_in`` in / ``w`` out: weight from the PE above / the stationary weight (to the PE below).
    * ``a_in`` in / ``a_out`` out: activation from the left / registered copy for the right.
    * ``psum_in`` in / ``psum_out`` out: partial sum from above / registered ``sum`` for below.
    * ``sum`` out: ``psum_in + a_in * w`` this cycle (combinational), wrapped to acc_bits; for
      shift-add operands ``psum_in + ((a_sig * w_sig) << (a_sh + w_sh))``.
    """

    def __init__(self, a: Operand, w: Operand, acc_bits: int) -> None:
        self.a_op, self.w_op = a, w
        super().__init__({
            "load": In(1),
            "w_in": In(w.shape),
            "w": Out(w.shape),
            "a_in": In(a.shape),
            "a_out": Out(a.shape),
            "psum_in": In(signed(acc_bits)),
            "psum_out": Out(signed(acc_bits)),
            "sum": Out(signed(acc_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # Assigning the full-width sum to an acc_bits signal keeps the low bits: a wrapping adder.
        m.d.comb += self.sum.eq(self.psum_in + self.product())
        m.d.sync += [self.a_out.eq(self.a_in), self.psum_out.eq(self.sum)]
        with m.If(self.load):
            m.d.sync += self.w.eq(self.w_in)
        return m

    def product(self):
        """``a_in`` times the stationary weight, at full width (the adder keeps acc_bits)."""
        a_sig, a_sh = self.a_op.parts(self.a_in)
        w_sig, w_sh = self.w_op.parts(self.w)
        shifts = [sh for sh in (a_sh, w_sh) if sh is not None]
        if not shifts:
            return a_sig * w_sig
        # One shifter over the summed shift (not an adder of width 0 for a missing side).
        return (a_sig * w_sig) << (shifts[0] if len(shifts) == 1 else shifts[0] + shifts[1])


class PEArray(wiring.Component):
    """An R x C grid of PEs: weights shift down, activations move right, partial sums move down.

    * ``load`` in: preload enable; every PE takes the weight of the PE above (row 0: ``w_top``).
    * ``w_top`` in: C weights entering the top row during preload.
    * ``a_left`` in: R activations entering column 0 (the caller skews row r by r cycles).
    * ``sums`` out: C combinational sums leaving the bottom row (column c lags column 0 by c).
    """

    def __init__(self, rows: int, cols: int, a: Operand, w: Operand, acc_bits: int) -> None:
        self.rows, self.cols = rows, cols
        self._pe = (a, w, acc_bits)
        super().__init__({
            "load": In(1),
            "w_top": In(data.ArrayLayout(w.shape, cols)),
            "a_left": In(data.ArrayLayout(a.shape, rows)),
            "sums": Out(data.ArrayLayout(signed(acc_bits), cols)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        grid = [[self._place(m, r, c) for c in range(self.cols)] for r in range(self.rows)]
        for r, row in enumerate(grid):
            for c, pe in enumerate(row):
                m.d.comb += [
                    pe.load.eq(self.load),
                    pe.w_in.eq(self.w_top[c] if r == 0 else grid[r - 1][c].w),
                    pe.a_in.eq(self.a_left[r] if c == 0 else row[c - 1].a_out),
                    pe.psum_in.eq(0 if r == 0 else grid[r - 1][c].psum_out),
                ]
        for c, pe in enumerate(grid[-1]):
            m.d.comb += self.sums[c].eq(pe.sum)
        return m

    def _place(self, m: Module, r: int, c: int) -> ProcessingElement:
        pe = ProcessingElement(*self._pe)
        m.submodules[f"pe_{r}_{c}"] = pe
        return pe
