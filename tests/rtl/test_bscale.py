"""The block-scale stage alone in Amaranth's simulator, against the plain-integer model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from qasic.isa.table import BSCALE_MODES
from qasic.rtl.bscale import SCALE_BITS, BlockScale, Bscale
from tests.rtl.bscale_model import SCALE_MAX, scale_sums

LANES = 8


def test_enum_is_the_isa_field():
    assert [m.name for m in Bscale] == list(BSCALE_MODES)
    assert [m.value for m in Bscale] == list(range(len(BSCALE_MODES)))
    assert SCALE_MAX == (1 << SCALE_BITS) - 1 == 255


@pytest.mark.parametrize("acc_bits", [16, 20, 32])
def test_every_scale_on_edge_sums(acc_bits):
    """All 256 scales in every mode, on the extreme and small sums of an acc_bits accumulator."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    sums = [lo, lo + 1, -3, -1, 0, 1, 5, hi, 0x5A5A & hi]
    dut = BlockScale(LANES, acc_bits)
    got, want = [], []

    async def bench(ctx):
        for mode in BSCALE_MODES:
            ctx.set(dut.mode, Bscale[mode])
            for p in sums:
                for first in range(0, SCALE_MAX + 1, LANES):
                    scale = list(range(first, first + LANES))
                    ctx.set(dut.i, [p] * LANES)
                    ctx.set(dut.scale, scale)
                    got.append([int(v) for v in ctx.get(dut.o)])
                    want.append(scale_sums([[p] * LANES], scale, mode, acc_bits)[0])

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()
    assert len(got) == len(BSCALE_MODES) * len(sums) * (SCALE_MAX + 1) // LANES
    np.testing.assert_array_equal(np.array(got), np.array(want))


def test_model_wraps_like_an_accumulator():
    """Raw integers the hardware must produce, written out by hand."""
    rows = scale_sums([[1, 1, 1, 3, -1, 40000]], [15, 16, 255, 15, 15, 2], "shift", 16)
    np.testing.assert_array_equal(rows, [[-32768, 0, 0, -32768, -32768, 28928]])
    rows = scale_sums([[200, -200, 32767]], [255, 255, 2], "mul", 16)
    np.testing.assert_array_equal(rows, [[-14536, 14536, -2]])
