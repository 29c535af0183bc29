"""Fast tier: the requantization lane (qasic.rtl.requant) in Amaranth's simulator, bit-exact
against qasic.quant.fixedpoint.requantize and requantize_fine (and sim.kernels.requant,
requant_fine) over its whole domain: accumulators up to +-2^55, every shift, both signs of the
multiplier, ties, exact and inexact quarters, and saturation."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from qasic.quant.fixedpoint import FINE_LIMIT, MAX_SHIFT, MIN_SHIFT, requantize, requantize_fine
from qasic.rtl.requant import LATENCY, RequantLane
from qasic.sim import kernels as K


def cases(seed: int = 0, n: int = 400) -> list[tuple[int, int, int]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mag = int(rng.integers(0, 56))
        x = int(rng.integers(-(1 << mag), 1 << mag)) if mag else 0
        q = int(rng.integers(1 << 30, 1 << 31))
        if i % 5 == 0:
            q = -q  # NORM's POST multiplies by a negative gamma
        if i % 7 == 0:
            q = int(rng.integers(-(1 << 31), 1 << 31))
        shift = int(rng.integers(MIN_SHIFT, MAX_SHIFT + 1))
        out.append((x, q, shift))
    # ties (x * q an odd multiple of 2^(total - 1)), the extremes, saturation
    out += [(3, 1 << 30, 0), (-3, 1 << 30, 0), (5, 1 << 30, -1), (-5, 1 << 30, -1),
            ((1 << 55) - 1, (1 << 31) - 1, MAX_SHIFT), (-(1 << 55), (1 << 31) - 1, MAX_SHIFT),
            ((1 << 55) - 1, -(1 << 31), MIN_SHIFT), (-(1 << 55), -(1 << 31), MIN_SHIFT),
            (1 << 40, 1 << 30, 30), (-(1 << 40), 1 << 30, 30), (1 << 24, 1 << 30, 7),
            (0, 0, 0), (-1, 1, MIN_SHIFT), (1, 1 << 30, MIN_SHIFT)]
    # requantize_fine: quarters exact (x * q a multiple of 2^(total - 2)) and just off them,
    # and |y| on either side of FINE_LIMIT (2^60) without saturating
    out += [(1, 1 << 30, 30), (-1, 1 << 30, 30), (3, 1 << 30, 29), (-3, 1 << 30, 29),
            (7, (1 << 30) + 1, 28), (-7, (1 << 30) + 1, 28),
            (1 << 29, 1 << 30, 30), (-(1 << 29), 1 << 30, 30),
            (1 << 31, 1 << 30, 30), (-(1 << 31), 1 << 30, 30),
            ((1 << 31) - 1, 1 << 30, 30), (-(1 << 31) + 1, 1 << 30, 30)]
    return out


def run_lane(items, port: str = "y") -> list[int]:
    lane = RequantLane()
    got = []

    async def bench(ctx):
        for i in range(len(items) + LATENCY):
            if i < len(items):
                x, q, shift = items[i]
                ctx.set(lane.x, x)
                ctx.set(lane.q, q)
                ctx.set(lane.shift, shift)
            await ctx.tick()
            if i + 1 >= LATENCY:
                got.append(ctx.get(getattr(lane, port)))

    sim = Simulator(lane)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return got


def test_lane_equals_reference():
    items = cases()
    want = [int(requantize(np.int64(x), np.int64(q), np.int64(s))) for x, q, s in items]
    kern = [int(K.requant(np.int64(x), np.int64(q), np.int64(s))) for x, q, s in items]
    assert want == kern  # the two software definitions agree on these cases
    got = run_lane(items)
    bad = [(it, g, w) for it, g, w in zip(items, got, want) if g != w]
    assert not bad, f"{len(bad)} mismatches, first (x, q, shift), rtl, reference: {bad[0]}"
    assert any(abs(w) == 1 << 62 for w in want), "no case reached saturation"


def test_fine_output_equals_reference():
    items = cases(seed=1)
    want = [int(requantize_fine(np.int64(x), np.int64(q), np.int64(s))) for x, q, s in items]
    kern = [int(K.requant_fine(np.int64(x), np.int64(q), np.int64(s))) for x, q, s in items]
    assert want == kern
    got = run_lane(items, "z")
    bad = [(it, g, w) for it, g, w in zip(items, got, want) if g != w]
    assert not bad, f"{len(bad)} mismatches, first (x, q, shift), rtl, reference: {bad[0]}"
    assert any(w % 2 for w in want) and any(w % 4 == 2 for w in want)  # sticky, half
    assert sum(abs(w) == 1 << 62 for w in want) > sum(abs(y) == 1 << 62 for y in (
        requantize(np.int64(x), np.int64(q), np.int64(s)) for x, q, s in items))  # |y| >= 2^60
    assert any(FINE_LIMIT // 2 < abs(w) >> 2 < FINE_LIMIT for w in want)  # just below the limit
