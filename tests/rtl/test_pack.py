"""Fast tier: qasic.rtl.pack in Amaranth's simulator — the FP8 encoder against
sim.kernels.fp_encode, the row packer against sim.kernels._put for every encoding."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.sim import Simulator

from qasic.isa.table import ACT_ENCODINGS, encoding_bits
from qasic.quant import actformat
from qasic.quant.fixedpoint import FINE_BITS
from qasic.rtl.pack import Fp8Encode, RowPacker, port_bytes
from qasic.rtl.unpack import FP_ENCODINGS
from qasic.sim import kernels as K
from qasic.sim.machine import _positive_levels

from .spads import Spad


@pytest.mark.parametrize("fmt", FP_ENCODINGS)
def test_fp8_encode_every_boundary(fmt):
    """Fp8Encode with enc = fmt == kernels.fp_encode on every level, every midpoint (ties to
    even), a quarter step around them, saturation and random quarter levels of the encoder's
    input range."""
    pos = _positive_levels(fmt)
    lv = actformat.levels(fmt)[:actformat.max_code(fmt) + 1] << FINE_BITS
    mids = (lv[1:] + lv[:-1]) // 2
    ys = set()
    for v in np.concatenate([lv, mids, [lv[-1] + 5000, (1 << 21) - 1]]):
        for d in (-1, 0, 1):
            ys.update({int(v) + d, -(int(v) + d)})
    rng = np.random.default_rng(0)
    ys.update(int(y) for y in rng.integers(-(1 << 21) + 1, 1 << 21, size=500))
    ys.update(int(y) for y in rng.integers(-2 * int(lv[-1]), 2 * int(lv[-1]), size=500))
    ys = sorted(y for y in ys if abs(y) < 1 << 21)  # the encoder's input range
    enc = Fp8Encode()
    got = []

    async def bench(ctx):
        ctx.set(enc.enc, ACT_ENCODINGS.index(fmt))
        for y in ys:
            ctx.set(enc.z, y)
            got.append(ctx.get(enc.code))

    sim = Simulator(enc)
    sim.add_testbench(bench)
    sim.run()
    want = [int(K.fp_encode(np.int64(y), pos)) for y in ys]
    bad = [(y, g, w) for y, g, w in zip(ys, got, want) if g != w]
    assert not bad, f"{len(bad)} of {len(ys)} differ, first (quarter level, rtl, sim): {bad[0]}"
    assert max(got) == 0x80 | actformat.max_code(fmt)  # saturated negatives were checked


def test_port_bytes_covers_the_widest_group():
    assert port_bytes(4, 8) == 5 and port_bytes(16, 8) == 16 and port_bytes(4, 16) == 8
    assert port_bytes(1, 8) == 2  # 7 carried bits + a 7-bit code: a whole byte and a partial


def test_row_packer_matches_put():
    lanes, size = 4, 96
    packer = RowPacker(lanes, addr_bits=7, widest=16)
    rng = np.random.default_rng(3)
    init = rng.integers(0, 256, size=size)
    spad = Spad(init)
    want = init.copy().astype(np.uint8)[None, :]
    rows = []
    for enc, name in enumerate(ACT_ENCODINGS):
        for n in (1, 3, 4, 7, 9):
            bits = encoding_bits(name)
            codes = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=n)
            addr = int(rng.integers(0, size - 2 * n - 1))
            rows.append((enc, bits, addr, codes))
            for j, c in enumerate(codes):
                K._put(want, 0, addr, j, bits, int(c))

    async def bench(ctx):
        for enc, bits, addr, codes in rows:
            n = len(codes)
            ctx.set(packer.enc, enc)
            ctx.set(packer.row_addr, addr)
            for g in range(0, n, lanes):
                group = codes[g:g + lanes]
                ctx.set(packer.valid, 1)
                ctx.set(packer.first, g == 0)
                ctx.set(packer.last, g + lanes >= n)
                ctx.set(packer.count, len(group))
                ctx.set(packer.codes, [int(c) & 0xFFFF for c in group]
                        + [0xFFFF] * (lanes - len(group)))  # junk beyond count is ignored
                ctx.set(packer.tail, int(spad.mem[addr + (n * bits >> 3)]))
                await ctx.tick()
            ctx.set(packer.valid, 0)
            for _ in range(int(rng.integers(0, 2))):
                await ctx.tick()
        await ctx.tick()

    m = Module()
    m.submodules.packer = packer
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_process(spad.writer(packer.port, packer.port_bytes))
    sim.add_testbench(bench)
    sim.run()
    np.testing.assert_array_equal(spad.mem, want[0])
