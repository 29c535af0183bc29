"""Codes -> scratchpad bytes: the FP8 E4M3 encoder and the streaming row packer.

The stored layouts are ``isa.table.ACT_ENCODINGS`` (``isa.packing.pack_bits``; the inverse of
``qasic.rtl.unpack``): intB codes (B = 8..2) packed little-endian, code j of a row at bits
``[j*B, (j+1)*B)`` from the row's first byte, two's complement; fp8_e4m3 one code per byte;
int16 two bytes per code, little-endian. Rows start on bytes.

``Fp8Encode()`` - combinational, ``sim.kernels.fp_encode`` over the E4M3 levels:
    * ``y`` In(signed(LEVEL_IN_BITS)): an integer level (value x 2^9), |y| < 2^19.
    * ``code`` Out(unsigned(8)): the nearest FP8 E4M3 code, ties to the even code, saturating at
      0x7E (448); negative: 0x80 | code unless the code is 0 (so -0 is never produced).

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
from qasic.rtl.ports import write_port
from qasic.rtl.unpack import CODE_BITS, FP8_LEVEL_BITS, code_bits

LEVEL_IN_BITS = FP8_LEVEL_BITS + 1
FP8_MAX_CODE = 0x7E
FP8_MAX_LEVEL = 14 << 14  # 448 x 2^9, the level of 0x7E


def port_bytes(lanes: int, widest: int) -> int:
    """Bytes a RowPacker's write port needs: ``lanes`` codes plus up to 7 carried bits and the
    partial byte of a row's end (int16 and 8-bit codes never carry)."""
    sub_byte = (7 + lanes * 7) // 8 + 1
    return max(lanes * widest // 8, sub_byte)


class Fp8Encode(wiring.Component):
    """Integer level -> nearest FP8 E4M3 code (module doc)."""

    def __init__(self) -> None:
        super().__init__({"y": In(signed(LEVEL_IN_BITS)), "code": Out(unsigned(8))})

    def elaborate(self, platform) -> Module:
        m = Module()
        mag = Signal(unsigned(LEVEL_IN_BITS))
        mag_code = Signal(unsigned(7))
        m.d.comb += mag.eq(Mux(self.y < 0, -self.y, self.y))
        # level (8 + m) << (e - 1) for code 8e + m (e >= 1); codes 0..15 are their own level
        with m.If(mag >= FP8_MAX_LEVEL):
            m.d.comb += mag_code.eq(FP8_MAX_CODE)
        with m.Elif(mag < 16):
            m.d.comb += mag_code.eq(mag[:4])
        for p in range(4, 18):  # the top bit of mag is bit p: e = p - 2, spacing 2^(p - 3)
            s = p - 3
            with m.Elif(mag[p:] == 1):
                code0 = Const((p - 2) << 3, 7) | mag[s:s + 3]
                rest, half = mag[:s], 1 << (s - 1)
                up = (rest > half) | ((rest == half) & code0[0])
                m.d.comb += mag_code.eq(code0 + up)
        m.d.comb += self.code.eq(Mux((self.y < 0) & (mag_code != 0), 0x80 | mag_code, mag_code))
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
