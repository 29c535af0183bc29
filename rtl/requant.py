"""One requantization lane: ``qasic.quant.fixedpoint.requantize`` bit for bit, pipelined.

``y = floor((x * q + 2^(total - 1)) / 2^total)`` with ``total = 31 - shift``: one wide product,
one rounding right shift (ties toward +infinity). The product is formed as the reference forms
it, in two partial products of ``x = hi * 2^24 + lo`` (``0 <= lo < 2^24``): ``lq = lo * q`` and
``hq = hi * q``, joined as ``hq * 2^24 + lq`` (96 bits, no int64 overflow here). Where the
reference saturates (total right shift <= 24 and ``|hq| >= 2^(38 + total)``, only with
multipliers above 2^7) the lane returns ``+-2^62`` as it does.

The same product also gives ``z`` = ``qasic.quant.fixedpoint.requantize_fine`` (the FP8
outputs' value: 2 floor(2 v) + sticky for the exact v = x q / 2^total): the product shifted
right by ``total - 1`` bits, doubled, its lowest bit the OR of the bits shifted out;
``+-2^62`` where ``|y| >= 2^60`` (``y`` saturated included), as the reference.

Exact (equal to ``sim.kernels.requant`` and ``requant_fine``) over the reference's domain:
``|x| < 2^55``, ``q`` any int32, ``MIN_SHIFT <= shift <= MAX_SHIFT`` (-55..30, total right
shift 1..86). ``shift`` is read as its low 8 bits (two's complement), which holds every legal value.

Ports (``RequantLane()``, a ``wiring.Component``; inputs combinational, outputs registered):
    * ``x`` In(signed(64)), ``q`` In(signed(32)), ``shift`` In(signed(32)): sampled in cycle k.
    * ``y`` Out(signed(64)): the result, valid in cycle k + ``LATENCY`` (``LATENCY`` = 2:
      partial products registered, then the sum, rounding shift and saturation registered).
    * ``z`` Out(signed(64)): ``requantize_fine``'s quarter levels, valid with ``y``.
The lane has no valid bit: it computes every cycle; its user tracks which cycles matter.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qasic.quant.fixedpoint import FINE_LIMIT, SATURATE, SPLIT

LATENCY = 2
X_BITS = 64
Q_BITS = 32
TOTAL_BITS = 7  # total right shift 1..86 (and the saturation threshold's exponent 38 + total)


class RequantLane(wiring.Component):
    """``requantize(x, q, shift)`` in ``LATENCY`` cycles (module doc)."""

    def __init__(self) -> None:
        super().__init__({
            "x": In(signed(X_BITS)),
            "q": In(signed(Q_BITS)),
            "shift": In(signed(Q_BITS)),
            "y": Out(signed(X_BITS)),
            "z": Out(signed(X_BITS)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        # stage 1: the two partial products, the total right shift
        hi = self.x[SPLIT:].as_signed()             # x >> 24: 40 bits
        lo = self.x[:SPLIT]                         # x mod 2^24, unsigned
        hq = Signal(signed(X_BITS - SPLIT + Q_BITS))
        lq = Signal(signed(SPLIT + Q_BITS + 1))
        total = Signal(unsigned(TOTAL_BITS))
        total_m1 = Signal(unsigned(TOTAL_BITS))
        shift = self.shift[:8].as_signed()
        m.d.sync += [
            hq.eq(hi * self.q),
            lq.eq(lo * self.q),
            total.eq(31 - shift),
            total_m1.eq(30 - shift),
        ]
        # stage 2: one rounding shift of the joined product; saturation as the reference's
        wide = Signal(signed(len(hq) + SPLIT + 2))
        half = Signal(unsigned(len(wide) - 1))
        m.d.comb += [
            half.eq((Const(1, 1) << total_m1)[:len(half)]),
            wide.eq((hq << SPLIT) + lq + half),
        ]
        limit = Signal(unsigned(64))  # 2^(38 + total), used when total <= 24 (<= 2^62)
        m.d.comb += limit.eq((Const(1, 1) << (total + 38)[:TOTAL_BITS])[:64])
        saturate = (total <= SPLIT) & ((hq >= limit) | (hq <= -limit))
        shifted = wide >> total
        sat = Mux(hq[-1], -SATURATE, SATURATE)
        m.d.sync += self.y.eq(Mux(saturate, sat, shifted[:X_BITS]))
        # z: floor(2 x) = product >> (total - 1), sticky = the bits shifted out
        product = Signal(signed(len(wide)))
        m.d.comb += product.eq((hq << SPLIT) + lq)
        below = ((Const(1, 1) << total_m1) - 1)[:len(product)]
        sticky = (product.as_unsigned() & below).any()
        fine = Cat(sticky, (product >> total_m1)[:X_BITS - 1]).as_signed()
        big = (shifted >= FINE_LIMIT) | (shifted <= -FINE_LIMIT)
        m.d.sync += self.z.eq(Mux(saturate, sat,
                                  Mux(big, Mux(shifted[-1], -SATURATE, SATURATE), fine)))
        return m
