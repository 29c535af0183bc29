"""The fold controller: turns ``start`` into the per-cycle phase signals of ``timing.py``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from qasic.rtl.timing import first_write_cycle, fold_cycles


def buffer_depth(entries: int) -> int:
    """Depth of a tile buffer holding ``entries`` rows; at least 2 so its address has a bit."""
    return max(entries, 2)


def addr_width(entries: int) -> int:
    return ceil_log2(buffer_depth(entries))


class FoldSequencer(wiring.Component):
    """Counts the cycles of one fold and decodes them into buffer and array controls.

    * ``start`` in: launch a fold when idle (the launch cycle is fold cycle 0 and already works).
    * ``t`` in: streamed rows T (1..max_t), sampled in the launch cycle.
    * ``launch`` out: ``start`` is accepted this cycle (fold cycle 0); sample fold operands now.
    * ``busy`` out: high in fold cycles 1..N-1 (N = fold_cycles); ``start`` is ignored then.
    * ``done`` out: high for one cycle, fold cycle N.
    * ``load`` out: preload cycle; the array takes the weight row on the weight read port.
    * ``w_addr`` out: weight-buffer row to read for the next cycle (rows R-1 down to 0).
    * ``a_addr`` out / ``a_valid`` out: input row to read for the next cycle / the input read
      port holds a real row this cycle (else the array is fed zeros).
    * ``o_en``, ``o_addr`` out: write the de-skewed output row ``o_addr`` this cycle.
    """

    def __init__(self, rows: int, cols: int, max_t: int) -> None:
        self.rows, self.cols = rows, cols
        t_width = max_t.bit_length()
        # Wide enough for any value on the ``t`` port, so an out-of-range T still terminates.
        self._count_range = range(fold_cycles(rows, cols, 2 ** t_width - 1))
        super().__init__({
            "start": In(1),
            "t": In(t_width),
            "launch": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "load": Out(1),
            "w_addr": Out(addr_width(rows)),
            "a_addr": Out(addr_width(max_t)),
            "a_valid": Out(1),
            "o_en": Out(1),
            "o_addr": Out(addr_width(max_t)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        count, t_reg = Signal(self._count_range), Signal.like(self.t)
        active, i, t = Signal(), Signal(self._count_range), Signal.like(self.t)
        # i is the fold cycle index; in the launch cycle the registers are not loaded yet.
        m.d.comb += [
            self.launch.eq(self.start & ~self.busy),
            active.eq(self.busy | self.launch),
            i.eq(Mux(self.busy, count, 0)),
            t.eq(Mux(self.busy, t_reg, self.t)),
        ]
        with m.If(self.launch):
            m.d.sync += t_reg.eq(self.t)
        last = first_write_cycle(self.rows, self.cols) - 1 + t
        m.d.sync += [
            count.eq(i + 1),
            self.busy.eq(active & (i != last)),
            self.done.eq(active & (i == last)),
        ]
        self._decode_preload(m, active, i)
        self._decode_feed(m, active, i, t)
        self._decode_drain(m, active, i, t)
        return m

    def _decode_preload(self, m: Module, active, i) -> None:
        r = self.rows
        m.d.comb += [
            self.load.eq(active & (i < r)),
            # A synchronous read port: issue row R-2-i now for preload cycle i+1. When idle the
            # address rests on R-1, so row R-1 is already on the port in the launch cycle.
            self.w_addr.eq(Mux(active & (i < r - 1), r - 2 - i, r - 1)),
        ]

    def _decode_feed(self, m: Module, active, i, t) -> None:
        k = i - (self.rows - 1)  # input row read now, entering the array next cycle
        feeding = active & (k >= 0) & (k < t)
        m.d.comb += self.a_addr.eq(Mux(feeding, k, 0))
        m.d.sync += self.a_valid.eq(feeding)

    def _decode_drain(self, m: Module, active, i, t) -> None:
        row = i - first_write_cycle(self.rows, self.cols)
        m.d.comb += [
            self.o_en.eq(active & (row >= 0) & (row < t)),
            self.o_addr.eq(row),
        ]
