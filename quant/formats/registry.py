"""Formats by name: each name resolves to an element format and its default granularity.

Names: int2..int8 (symmetric, per channel), int2_asym..int8_asym (affine, per tensor),
fp8_e4m3, fp8_e5m2, fp6_e3m2, fp6_e2m3, fp4_e2m1 (absmax per channel), nf4 (absmax per block of
64), nupes4 (power grid, per channel), mxfp8_e4m3, mxfp8_e5m2, mxfp6_e3m2, mxfp6_e2m3, mxfp4 (MX
blocks of 32). A suffix ``_g<N>`` sets the group size (the block size for MX names):
``int4_g32`` is INT4 with one scale per 32 inputs.

Minifloat splits (the candidates of ``qasic.quant.fpsearch``, per channel, MX-style: no inf or
NaN, bias 2^(e-1) - 1): fp4_e1m2, fp4_e3m0, fp6_e1m4, fp6_e4m1, fp8_e1m6, fp8_e2m5, fp8_e3m4.
``get_format`` resolves them; ``format_names`` lists only the presets above (each measured in
docs/formats.md), ``split_names`` these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qasic.errors import ConfigError
from qasic.quant.formats.codebook import NF4, power_grid
from qasic.quant.formats.granularity import Granularity, MXBlock, PerChannel, PerGroup, PerTensor
from qasic.quant.formats.integer import INT_BITS, IntFormat
from qasic.quant.formats.minifloat import (
    FP4_E2M1,
    FP6_E2M3,
    FP6_E3M2,
    FP8_E4M3,
    FP8_E5M2,
    FloatFormat,
)
from qasic.quant.formats.scales import ElementFormat

NUPES4_ALPHA = 1.5  # best of {1.25, 1.5, 1.75, 2} by SQNR on Gaussian per-channel data
NF4_BLOCK = 64      # bitsandbytes' default blocksize
MX_BLOCK = 32       # OCP MX v1.0


@dataclass(frozen=True)
class FormatSpec:
    name: str
    element: ElementFormat
    granularity: Granularity


def _table() -> dict[str, tuple[ElementFormat, Granularity]]:
    lo, hi = INT_BITS
    t: dict[str, tuple[ElementFormat, Granularity]] = {}
    for b in range(lo, hi + 1):
        t[f"int{b}"] = (IntFormat(b), PerChannel())
    for b in range(lo, hi + 1):
        t[f"int{b}_asym"] = (IntFormat(b, symmetric=False), PerTensor())
    for f in (FP8_E4M3, FP8_E5M2, FP6_E3M2, FP6_E2M3, FP4_E2M1):
        t[f.name] = (f, PerChannel())
    t["nf4"] = (NF4, PerGroup(NF4_BLOCK))
    t["nupes4"] = (power_grid(4, NUPES4_ALPHA, "nupes4"), PerChannel())
    for f in (FP8_E4M3, FP8_E5M2, FP6_E3M2, FP6_E2M3):
        t[f"mx{f.name}"] = (f, MXBlock(MX_BLOCK))
    t["mxfp4"] = (FP4_E2M1, MXBlock(MX_BLOCK))
    return t


FORMATS = _table()
# (exponent bits, mantissa bits) beyond the OCP presets. Every (e, m) of 4, 6 and 8 bits whose
# integer levels fit 24 bits is a preset or here. Wider ones: E5M2 (33 bits) is the fp8_e5m2
# preset, run as 24-bit significands shifted by up to 31 (qasic.isa.lut); fp6_e5m0 (32 bits)
# would fit the same way but is not offered; fp8_e6m1 and wider exponents fit no table entry.
SPLITS = ((1, 2), (3, 0), (1, 4), (4, 1), (1, 6), (2, 5), (3, 4))


def _split_table() -> dict[str, tuple[ElementFormat, Granularity]]:
    fmts = (FloatFormat(e, m, bias=(1 << (e - 1)) - 1) for e, m in SPLITS)
    return {f.name: (f, PerChannel()) for f in fmts}


SPLIT_FORMATS = _split_table()
_GROUP_SUFFIX = re.compile(r"^(?P<base>.+)_g(?P<size>\d+)$")
_INT_NAME = re.compile(r"^int(?P<bits>\d+)(_asym)?$")


def format_names() -> tuple[str, ...]:
    return tuple(FORMATS)


def split_names() -> tuple[str, ...]:
    return tuple(SPLIT_FORMATS)


def get_format(name: str) -> FormatSpec:
    """FormatSpec for ``name`` (module docstring); ConfigError naming it and the allowed names."""
    m = _GROUP_SUFFIX.match(name) if isinstance(name, str) else None
    base = m["base"] if m else name
    if base not in FORMATS and base not in SPLIT_FORMATS:
        raise ConfigError(_unknown(name, base))
    element, gran = FORMATS[base] if base in FORMATS else SPLIT_FORMATS[base]
    if m:
        size = int(m["size"])
        gran = MXBlock(size) if isinstance(gran, MXBlock) else PerGroup(size)
    return FormatSpec(name, element, gran)


def _unknown(name: object, base: object) -> str:
    m = _INT_NAME.match(base) if isinstance(base, str) else None
    lo, hi = INT_BITS
    if m:
        return (f"number format {name!r}: {m['bits']} bits is out of range: integer formats "
                f"have {lo}..{hi} bits")
    return (f"unknown number format {name!r}: allowed {', '.join(_listed_names())}; each "
            "optionally with _g<group size> (e.g. int4_g32)")


def _listed_names() -> list[str]:
    """Every name, the splits right after the preset minifloats."""
    names = list(FORMATS)
    at = names.index(FP4_E2M1.name) + 1
    return names[:at] + list(SPLIT_FORMATS) + names[at:]
