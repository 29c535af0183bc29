"""Codes -> scratchpad bytes: the FP8 encoders and the streaming row packer.

The stored layouts are ``isa.table.ACT_ENCODINGS`` (``isa.packing.pack_bits``; the inverse of
``qasic.rtl.unpack``): intB codes (B = 8..2) packed little-endian, code j of a row at bits
``[j*B, (j+1)*B)`` from the row's first byte, two's complement; fp8_* one code per byte;
int16 two bytes per code, little-endian. Rows start on bytes.

``FpEncode(fmt)`` - combinational, ``sim.kernels.fp_encode`` over the levels of the FP
activation format ``fmt`` (``rtl.unpack.minifloat``: E4M3, E3M4):
    * ``z`` In(signed(FINE_IN_BITS)): a level in quarter steps (``FINE_BITS`` = 2 fraction bits;
      a level is the value / the smallest subnormal: x 2^9 for E4M3, x 2^6 for E3M4), as
      ``qasic.quant.fixedpoint.requantize_fine`` gives it (round to odd), |z| < 2^21.
    * ``code`` Out(unsigned(8)): the nearest code, ties to the even code, saturating at the
      largest finite code (E4M3: 0x7E = 448; E3M4: 0x7F = 31); negative: 0x80 | code unless the
      code is 0 (so -0 is never produced). One rounding: the bits below the code's spacing
      against half of it (above: up; equal: to the even code).

``fine_clamp(m, z, lo, hi)`` - ``z`` clamped to the quarter levels of two code levels.

``Fp8Encode()`` - the same ports plus ``enc`` In(unsigned(FMT_BITS)): one ``FpEncode`` per FP
encoding, the one ``enc`` names selected (a non-FP ``enc`` gives the first FP format's).

``RowPacker(lanes, addr_bits, widest)`` - one write port's worth of a stream of code groups.
    Per cycle with ``valid``: ``count`` (1..lanes) codes ``codes[0..count-1]`` of encoding
    ``enc`` (an ACT_ENCODINGS index; code j's low B bits are stored) follow the previous group
    of the row, or start a row at byte ``row_addr`` when ``first``. Whole bytes go out on
    ``port`` (a ``rtl.ports.write_port``, ``port_bytes(lanes, widest)`` bytes) in the same cycle
    (combinational); the bits of a byte the group does not complete wait in a register for the
    next group. With ``last`` the row ends: a last partial byte is written too, its bits beyond
    the row's last code taken from ``tail`` (the byte's old value, read by the user), so a row
    ending mid-byte keeps the bits after it (``sim.kernels._put``'s read-modify-write).
    ``widest``: 8 (codes of int2..int8 and fp8) or 16 (also int16).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qasic.isa.table import ACT_ENCODINGS, FMT_BITS, encoding_bits
from qasic.quant import actformat
from qasic.quant.fixedpoint import FINE_BITS
from qasic.rtl.ports import write_port
from qasic.rtl.unpack import CODE_BITS, FP8_LEVEL_BITS, FP_ENCODINGS, code_bits, minifloat

LEVEL_IN_BITS = FP8_LEVEL_BITS + 1     # a clamped level, one bit over the widest code's
FINE_IN_BITS = LEVEL_IN_BITS + FINE_BITS  # the same in quarter steps (requantize_fine)


def port_bytes(lanes: int, widest: int) -> int:
    """Bytes a RowPacker's write port needs: ``lanes`` codes plus up to 7 carried bits and the
    partial byte of a row's end (int16 and 8-bit codes never carry)."""
    sub_byte = (7 + lanes * 7) // 8 + 1
    return max(lanes * widest // 8, sub_byte)


class FpEncode(wiring.Component):
    """Quarter level -> nearest code of the FP activation format ``fmt`` (module doc)."""

    def __init__(self, fmt: str) -> None:
        self.man_bits = minifloat(fmt).man_bits
        self.max_code = actformat.max_code(fmt)
        self.max_level = int(actformat.levels(fmt)[self.max_code])
        super().__init__({"z": In(signed(FINE_IN_BITS)), "code": Out(unsigned(8))})

    def elaborate(self, platform) -> Module:
        m = Module()
        mb, fb = self.man_bits, FINE_BITS
        mag = Signal(unsigned(FINE_IN_BITS))
        mag_code = Signal(unsigned(7))
        m.d.comb += mag.eq(Mux(self.z < 0, -self.z, self.z))

        def rounded(code0, s):  # level spacing 2^s: mag's low s + fb bits against half of it
            rest, half = mag[:s + fb], 1 << (s + fb - 1)
            return code0 + ((rest > half) | ((rest == half) & code0[0]))

        # level (2^M + m) << (e - 1) for code (e << M) + m (e >= 1); codes below 2^(M+1) (the
        # subnormals and exponent 1) are their own level (spacing 1)
        with m.If(mag >= self.max_level << fb):
            m.d.comb += mag_code.eq(self.max_code)
        with m.Elif(mag < 1 << (mb + 1 + fb)):
            m.d.comb += mag_code.eq(rounded(mag[fb:fb + mb + 1], 0))
        for p in range(mb + 1, self.max_level.bit_length()):  # level's top bit p: e = p - M + 1
            s = p - mb  # spacing 2^s
            with m.Elif(mag[p + fb:] == 1):
                code0 = Const((p - mb + 1) << mb, 7) | mag[s + fb:s + fb + mb]
                m.d.comb += mag_code.eq(rounded(code0, s))
        m.d.comb += self.code.eq(Mux((self.z < 0) & (mag_code != 0), 0x80 | mag_code, mag_code))
        return m


def fine_clamp(m: Module, z, lo_level, hi_level) -> Signal:
    """``z`` (a RequantLane's quarter levels) clamped to 4 lo_level .. 4 hi_level (levels of FP8
    codes, lo <= hi), as FpEncode's input: exact (a quarter level below 4 L is a value below L)."""
    lo4, hi4 = lo_level << FINE_BITS, hi_level << FINE_BITS
    low = Signal(signed(len(z)))
    out = Signal(signed(FINE_IN_BITS))
    m.d.comb += [low.eq(Mux(z < lo4, lo4, z)), out.eq(Mux(low > hi4, hi4, low))]
    return out


class Fp8Encode(wiring.Component):
    """Quarter level -> nearest code of the FP encoding ``enc`` (module doc)."""

    def __init__(self) -> None:
        super().__init__({"enc": In(unsigned(FMT_BITS)), "z": In(signed(FINE_IN_BITS)),
                          "code": Out(unsigned(8))})

    def elaborate(self, platform) -> Module:
        m = Module()
        code = None
        for e in FP_ENCODINGS:
            m.submodules[e] = enc = FpEncode(e)
            m.d.comb += enc.z.eq(self.z)
            code = enc.code if code is None else Mux(self.enc == ACT_ENCODINGS.index(e),
                                                     enc.code, code)
        m.d.comb += self.code.eq(code)
        return m


class RowPacker(wiring.Component):
    """A stream of code groups -> whole-byte writes (module doc)."""

    def __init__(self, lanes: int, addr_bits: int, widest: int = 8) -> None:
        if widest not in (8, 16):
            raise ValueError(f"RowPacker: widest = {widest}; use 8 (int2..int8, fp8) or 16 "
                             "(also int16)")
        self.lanes, self.widest = lanes, widest
        self.port_bytes = port_bytes(lanes, widest)
        super().__init__({
            "valid": In(1),
            "first": In(1),
            "last": In(1),
            "row_addr": In(addr_bits),
            "codes": In(data.ArrayLayout(unsigned(CODE_BITS), lanes)),
            "count": In(range(lanes + 1)),
            "enc": In(unsigned(FMT_BITS)),
            "tail": In(8),
            "port": Out(write_port(addr_bits, self.port_bytes)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes = self.lanes
        addr = Signal.like(self.row_addr)
        left = Signal(8)       # the carried bits of an incomplete byte (above them: 0)
        nleft = Signal(3)
        kept = [Mux(j < self.count, self.codes[j], 0) for j in range(lanes)]
        packed = Signal(lanes * self.widest)
        with m.Switch(self.enc):
            for i, name in enumerate(ACT_ENCODINGS):
                b = encoding_bits(name)
                if b <= self.widest:
                    with m.Case(i):
                        m.d.comb += packed.eq(Cat(*(k[:b] for k in kept)))
        nb = Mux(self.first, 0, nleft)
        base = Mux(self.first, self.row_addr, addr)
        stream = Signal(len(packed) + 8)
        total = Signal(range(len(stream) + 1))
        m.d.comb += [
            stream.eq((packed << nb) | Mux(self.first, 0, left)),
            total.eq(nb + self.count * code_bits(self.enc)),
        ]
        full, rem = total[3:], total[:3]
        flush = self.last & (rem != 0)
        low = Signal(8)
        m.d.comb += low.eq((Const(1, 9) << rem) - 1)
        for i in range(self.port_bytes):
            byte = stream[8 * i:8 * i + 8]
            at_tail = flush & (full == i)
            m.d.comb += [
                self.port.data[i].eq(Mux(at_tail, (byte & low) | (self.tail & ~low), byte)),
                self.port.mask[i].eq((full > i) | at_tail),
            ]
        m.d.comb += [
            self.port.en.eq(self.valid & ((full != 0) | flush)),
            self.port.addr.eq(base),
        ]
        with m.If(self.valid):
            m.d.sync += [
                addr.eq(base + full),
                left.eq((stream >> Cat(Const(0, 3), full))[:8]),
                nleft.eq(rem),
            ]
        return m
