"""Activation codes out of scratchpad bytes, and FP8 codes (every minifloat of
``isa.table.ACT_FORMATS``: E4M3, E3M4) as fixed-point levels.

The stored layouts are ``isa.table.ACT_ENCODINGS`` (and ``isa.packing.pack_bits``): intB codes
(B = 8..2) packed little-endian, code j at bits ``[j*B, (j+1)*B)`` of the byte string (byte 0 =
lowest address, bit 0 of a byte its least significant), two's complement; fp8_* one code per
byte; int16 two bytes per code, little-endian. Every block that reads activation codes (GEMM,
POST, POOL, ADD, LUT) unpacks them here, so the bit order lives in one place.

API (stable; all combinational, no clock):

``Unpack(window_bytes, count)`` - a ``wiring.Component``:
    * ``window`` In(``ArrayLayout(8, window_bytes)``): the bytes of a row, byte 0 at the row's
      first (lowest) address; code 0 starts at bit 0 of byte 0.
    * ``enc`` In(``unsigned(FMT_BITS)``): the encoding, an index into ``ACT_ENCODINGS`` (any
      ``*fmt`` field of an instruction view: ``view.GEMM.afmt.as_value()``). 0..6 = int8..int2,
      7 = fp8_e4m3, 8 = int16, 9 = fp8_e3m4; others give codes 0.
    * ``raw`` Out(``ArrayLayout(unsigned(16), count)``): code j's stored bits, zero-extended
      (intB: B bits; fp8: the byte; int16: 16 bits). A table index ``x mod 2^B`` is ``raw``.
    * ``code`` Out(``ArrayLayout(signed(16), count)``): code j as a signed integer: intB and
      int16 sign-extended, fp8 the byte as a signed int8 (the scratchpads' convention for FP8
      codes; its *value* is ``Fp8Level``'s).
    Code j reads bits beyond ``8 * window_bytes`` as 0: size the window for the widest encoding
    the caller accepts (``window_bytes_for(count, encodings)``).

``FpLevel(fmt)`` - a ``wiring.Component``, one code of the FP activation format ``fmt`` (an
``ACT_FORMATS`` minifloat: sign bit 7, E exponent bits, M mantissa bits, no inf; NaN codes only
if ``nan_only`` like E4M3's 0x7F, 0xFF, which give 0) -> its level, exact, as
``qasic.quant.actformat.levels(fmt)`` (value / smallest subnormal: x 2^9 for E4M3, x 2^6 for
E3M4):
    * ``byte`` In(``unsigned(8)``): the code.
    * ``level`` Out(``signed(FP8_LEVEL_BITS)``) (19 bits: the widest format's, E4M3's
      |level| <= 229376 = 448 x 2^9; E3M4's <= 1984 = 31 x 2^6).
    * ``sig`` Out(``signed(FP8_SIG_BITS)``) (6 bits), ``sh`` Out(``unsigned(FP8_SHIFT_BITS)``)
      (4 bits): ``level == sig << sh`` with ``sig`` = +-(2^M + mantissa) (normal, sh = exponent
      - 1) or +-mantissa (subnormal, sh = 0): the natural pair of a shift-add PE (E4M3: |sig| <=
      15, sh <= 14; E3M4: |sig| <= 31, sh <= 6).

``Fp8Level()`` - the same ports plus ``enc`` In(``unsigned(FMT_BITS)``): one ``FpLevel`` per FP
encoding, the one ``enc`` names selected (a non-FP ``enc`` gives the first FP format's).
``is_fp_encoding(enc)``: 1 for an FP encoding index.

``split(m, sig, sh, sig_bits, shift_bits)`` -> ``(sig', sh')`` Amaranth values: the canonical
split ``qasic.arch.pe.split`` of the level ``sig << sh`` (``sh`` None for a plain integer) for a
PE operand of ``sig_bits`` + ``shift_bits``: ``sh'`` = the level's trailing zero bits capped at
``2**shift_bits - 1`` (0 for level 0), ``sig'`` = level >> ``sh'`` truncated to ``sig_bits``
(exact whenever the arch fits the level: ``qasic.flow.arch_for`` sizes PEs by this very split).

Widths: ``code_bits(enc)`` (a Value) is B for intB, 8 for fp8, 16 for int16, 0 otherwise.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from qasic.isa.table import ACT_ENCODINGS, FMT_BITS, encoding_bits, encoding_bytes, encoding_is_fp
from qasic.quant import actformat
from qasic.quant.formats import FloatFormat, get_format, signed_width

CODE_BITS = 16          # widest stored code (int16)
INT16 = ACT_ENCODINGS.index("int16")
FP_ENCODINGS = tuple(e for e in ACT_ENCODINGS if encoding_is_fp(e))


def minifloat(fmt: str) -> FloatFormat:
    """The element format of an FP activation encoding the RTL decodes and encodes."""
    f = get_format(fmt).element
    if not (isinstance(f, FloatFormat) and f.bits == 8 and f.specials in ("none", "nan_only")):
        raise ValueError(f"activation format {fmt!r}: the RTL takes 8-bit minifloats without inf "
                         "(specials 'none' or 'nan_only', like fp8_e4m3 and fp8_e3m4); use one "
                         "of those or extend rtl.unpack.FpLevel and rtl.pack.FpEncode")
    return f


def _top_exponent(fmt: str) -> int:
    """Exponent field of the largest finite code."""
    return actformat.max_code(fmt) >> minifloat(fmt).man_bits


FP8_LEVEL_BITS = max(signed_width(actformat.levels(e)) for e in FP_ENCODINGS)  # E4M3: 19
FP8_SIG_BITS = max(minifloat(e).man_bits + 2 for e in FP_ENCODINGS)  # E3M4: +-(16 + 15), 6
FP8_SHIFT_BITS = max((_top_exponent(e) - 1).bit_length() for e in FP_ENCODINGS)  # E4M3: 14, 4


def is_fp_encoding(enc):
    """1 where the runtime encoding index ``enc`` is an FP encoding."""
    value = Const(0, 1)
    for e in FP_ENCODINGS:
        value = value | (enc == ACT_ENCODINGS.index(e))
    return value


def window_bytes_for(count: int, encodings=ACT_ENCODINGS) -> int:
    """Bytes a window needs so ``count`` codes of every one of ``encodings`` fit."""
    return max(encoding_bytes(count, e) for e in encodings)


def code_bits(enc) -> Mux:
    """Bits per stored code of the runtime encoding index ``enc`` (0 for an unknown index)."""
    value = Const(0, 5)
    for i, name in enumerate(ACT_ENCODINGS):
        value = Mux(enc == i, encoding_bits(name), value)
    return value


class Unpack(wiring.Component):
    """``count`` codes of a runtime-selected encoding out of a window of bytes (module doc)."""

    def __init__(self, window_bytes: int, count: int) -> None:
        if window_bytes < 1 or count < 1:
            raise ValueError(f"Unpack: window_bytes = {window_bytes} and count = {count} must be "
                             ">= 1")
        self.window_bytes, self.count = window_bytes, count
        super().__init__({
            "window": In(data.ArrayLayout(8, window_bytes)),
            "enc": In(unsigned(FMT_BITS)),
            "raw": Out(data.ArrayLayout(unsigned(CODE_BITS), count)),
            "code": Out(data.ArrayLayout(signed(CODE_BITS), count)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        flat = self.window.as_value()
        width = len(flat)
        for j in range(self.count):
            raw = self.raw[j]
            with m.Switch(self.enc):
                for i, name in enumerate(ACT_ENCODINGS):
                    bits = encoding_bits(name)
                    lo = j * bits
                    with m.Case(i):
                        if lo < width:
                            m.d.comb += raw.eq(flat[lo:min(lo + bits, width)])
            signed_code = Const(0, 1)
            for i, name in enumerate(ACT_ENCODINGS):  # fp8: the byte as a signed int8
                signed_code = Mux(self.enc == i, raw[:encoding_bits(name)].as_signed(),
                                  signed_code)
            m.d.comb += self.code[j].eq(signed_code)
        return m


def _level_ports() -> dict:
    return {
        "byte": In(unsigned(8)),
        "level": Out(signed(FP8_LEVEL_BITS)),
        "sig": Out(signed(FP8_SIG_BITS)),
        "sh": Out(unsigned(FP8_SHIFT_BITS)),
    }


class FpLevel(wiring.Component):
    """One code of the FP activation format ``fmt`` -> its fixed-point level and natural
    ``sig << sh`` pair (module doc)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = minifloat(fmt)
        super().__init__(_level_ports())

    def elaborate(self, platform) -> Module:
        m = Module()
        b, e, mb = self.byte, self.fmt.exp_bits, self.fmt.man_bits
        neg, exp, man = b[7], b[mb:mb + e], b[0:mb]
        nan = Const(0, 1) if self.fmt.specials == "none" else b[0:7] == 0x7F
        mant = Signal(mb + 1)
        m.d.comb += [
            mant.eq(Mux(nan, 0, Mux(exp == 0, man, (1 << mb) | man))),
            self.sh.eq(Mux(nan | (exp == 0), 0, exp - 1)),
            self.sig.eq(Mux(neg, -mant, mant)),
            self.level.eq(self.sig << self.sh),
        ]
        return m


class Fp8Level(wiring.Component):
    """One code of the FP encoding ``enc`` -> its level and ``sig << sh`` (module doc)."""

    def __init__(self) -> None:
        super().__init__({"enc": In(unsigned(FMT_BITS)), **_level_ports()})

    def elaborate(self, platform) -> Module:
        m = Module()
        outs = []
        for e in FP_ENCODINGS:
            m.submodules[e] = dec = FpLevel(e)
            m.d.comb += dec.byte.eq(self.byte)
            outs.append((ACT_ENCODINGS.index(e), dec))
        for name in ("level", "sig", "sh"):
            value = getattr(outs[0][1], name)
            for i, dec in outs[1:]:
                value = Mux(self.enc == i, getattr(dec, name), value)
            m.d.comb += getattr(self, name).eq(value)
        return m


def trailing_zeros(m: Module, value, limit: int):
    """min(trailing zero bits of ``value``, ``limit``) as an unsigned Signal (``limit`` for 0)."""
    out = Signal(range(limit + 1))
    m.d.comb += out.eq(limit)
    for i in reversed(range(min(limit, len(value)))):
        with m.If(value[i]):
            m.d.comb += out.eq(i)
    return out


def split(m: Module, sig, sh, sig_bits: int, shift_bits: int):
    """Canonical ``(sig', sh')`` of the level ``sig << sh`` for a ``sig_bits`` + ``shift_bits``
    operand (module doc). ``sh`` None: the level is ``sig``. ``shift_bits`` 0: ``(level, None)``
    truncated to ``sig_bits``."""
    level = sig if sh is None else sig << sh
    out_sig = Signal(signed(sig_bits))
    if not shift_bits:
        m.d.comb += out_sig.eq(level)
        return out_sig, None
    cap = (1 << shift_bits) - 1
    tz = trailing_zeros(m, level, cap)
    out_sh = Signal(unsigned(shift_bits))
    m.d.comb += [
        out_sh.eq(Mux(level == 0, 0, tz)),
        out_sig.eq(level >> out_sh),
    ]
    return out_sig, out_sh
