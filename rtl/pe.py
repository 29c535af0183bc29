"""One processing element (PE) of the weight-stationary array, and the grid of them."""

from __future__ import annotations

from amaranth.hdl import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class ProcessingElement(wiring.Component):
    """A multiply-accumulate cell holding one stationary weight.

    Ports (all signed two's complement):
    * ``load`` in: shift ``w_in`` into the weight register this cycle (preload phase).
    * ``w_in`` in / ``w`` out: weight from the PE above / the stationary weight (to the PE below).
    * ``a_in`` in / ``a_out`` out: activation from the left / registered copy for the right.
    * ``psum_in`` in / ``psum_out`` out: partial sum from above / registered ``sum`` for below.
    * ``sum`` out: ``psum_in + a_in * w`` this cycle (combinational), wrapped to acc_bits.
    """

    def __init__(self, input_bits: int, weight_bits: int, acc_bits: int) -> None:
        super().__init__({
            "load": In(1),
            "w_in": In(signed(weight_bits)),
            "w": Out(signed(weight_bits)),
            "a_in": In(signed(input_bits)),
            "a_out": Out(signed(input_bits)),
            "psum_in": In(signed(acc_bits)),
            "psum_out": Out(signed(acc_bits)),
            "sum": Out(signed(acc_bits)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # Assigning the full-width sum to an acc_bits signal keeps the low bits: a wrapping adder.
        m.d.comb += self.sum.eq(self.psum_in + self.a_in * self.w)
        m.d.sync += [self.a_out.eq(self.a_in), self.psum_out.eq(self.sum)]
        with m.If(self.load):
            m.d.sync += self.w.eq(self.w_in)
        return m


class PEArray(wiring.Component):
    """An R x C grid of PEs: weights shift down, activations move right, partial sums move down.

    * ``load`` in: preload enable; every PE takes the weight of the PE above (row 0: ``w_top``).
    * ``w_top`` in: C weights entering the top row during preload.
    * ``a_left`` in: R activations entering column 0 (the caller skews row r by r cycles).
    * ``sums`` out: C combinational sums leaving the bottom row (column c lags column 0 by c).
    """

    def __init__(self, rows: int, cols: int, input_bits: int, weight_bits: int,
                 acc_bits: int) -> None:
        self.rows, self.cols = rows, cols
        self._bits = (input_bits, weight_bits, acc_bits)
        super().__init__({
            "load": In(1),
            "w_top": In(data.ArrayLayout(signed(weight_bits), cols)),
            "a_left": In(data.ArrayLayout(signed(input_bits), rows)),
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
        pe = ProcessingElement(*self._bits)
        m.submodules[f"pe_{r}_{c}"] = pe
        return pe
