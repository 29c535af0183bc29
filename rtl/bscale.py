"""Block scaling of a fold's column sums: the GEMM ``bscale`` field in hardware.

Modes and scale width come from ``isa.table`` (``BSCALE_MODES``, ``BSCALE_BYTES``); the mode
port is the ISA field's own shaped enum, so host code and gateware name the same values.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qasic.isa.encoding import opcode
from qasic.isa.layouts import field_shape
from qasic.isa.table import BSCALE_BYTES

Bscale = field_shape(opcode("GEMM").field("bscale"))  # shaped enum: none, shift, mul
SCALE_BITS = 8 * BSCALE_BYTES  # one unsigned scale per output column


class BlockScale(wiring.Component):
    """Scales each of C column sums by its own unsigned block scale, combinationally.

    * ``i`` in: C signed ``acc_bits`` sums.
    * ``scale`` in: C unsigned ``SCALE_BITS`` scales s.
    * ``mode`` in (``Bscale``): none: ``o = i``; shift: ``o = i << s``; mul, mulzp: ``o = i * s``.
    * ``o`` out: C signed ``acc_bits`` values, wrapped to two's complement (low bits kept).

    mulzp multiplies like mul: its zero points are subtracted from the weights on the load path,
    before the array.
    """

    def __init__(self, cols: int, acc_bits: int) -> None:
        self.cols, self.acc_bits = cols, acc_bits
        sums = data.ArrayLayout(signed(acc_bits), cols)
        super().__init__({
            "i": In(sums),
            "scale": In(data.ArrayLayout(unsigned(SCALE_BITS), cols)),
            "mode": In(Bscale),
            "o": Out(sums),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        for c in range(self.cols):
            x, s, y = self.i[c], self.scale[c], self.o[c]
            m.d.comb += y.eq(x)
            with m.Switch(self.mode):
                with m.Case(Bscale.shift):
                    m.d.comb += y.eq(self._shift_left(x, s))
                with m.Case(Bscale.mul, Bscale.mulzp):  # mulzp's zero points: load path
                    m.d.comb += y.eq(x * s)
        return m

    def _shift_left(self, x, s):
        """``x << s`` wrapped to acc_bits: a barrel shifter over the shifts that keep a bit.

        Shifting by acc_bits or more leaves no bit of x, so only ``ceil(log2(acc_bits))`` bits of
        s steer the shifter and the rest select zero (a full-width ``x << s`` would be
        acc_bits + 2^SCALE_BITS - 1 bits wide).
        """
        steer = min((self.acc_bits - 1).bit_length(), SCALE_BITS)
        return Mux(s < self.acc_bits, x << s[:steer], 0)
