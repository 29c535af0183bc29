"""Per-lane delay lines: the input skew and output de-skew triangles of a systolic array."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out


class Skew(wiring.Component):
    """Delays lane j of a vector by ``delays[j]`` cycles (0 = combinational pass-through).

    * ``i`` in, ``o`` out: ``ArrayLayout(elem_shape, len(delays))``.
    The registers start at zero; stale lanes only ever meet lanes of other (unwritten) vectors.
    """

    def __init__(self, elem_shape, delays: list[int]) -> None:
        self.delays = list(delays)
        self._elem = elem_shape
        layout = data.ArrayLayout(elem_shape, len(self.delays))
        super().__init__({"i": In(layout), "o": Out(layout)})

    def elaborate(self, platform) -> Module:
        m = Module()
        for lane, delay in enumerate(self.delays):
            value = self.i[lane]
            for stage in range(delay):
                reg = Signal(self._elem, name=f"lane{lane}_d{stage + 1}")
                m.d.sync += reg.eq(value)
                value = reg
            m.d.comb += self.o[lane].eq(value)
        return m
