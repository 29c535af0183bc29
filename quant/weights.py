"""Weights in any per-channel format, as the integer hardware path needs them.

The array multiplies integers. An integer format's codes are those integers. Any other element
format (FP8/FP6/FP4 minifloats, NF4, power grids) is stored as its codes and decoded on the load
path through a table of fixed-point levels (ISA: GEMM lut=1): real weight =
levels[code] * lsb * scale[channel], and lsb * scale[channel] folds into the per-channel
requantization multiplier exactly as an INT weight scale does. Minifloat levels are exact; a
table entry holds a 24-bit significand and a shift (``qasic.isa.lut``), so every preset fits,
FP8 E5M2's 33-bit levels (up to 57344 x 2^16) included; wider-exponent splits are refused.
codebook levels are rounded to 2**-CODEBOOK_FRAC_BITS (the accelerator's NF4 is that fixed-point
codebook; error in docs/formats.md). Per-group and MX-block scales vary along the reduction axis
and cannot fold into one multiplier per channel: those formats run in block fixed point
(``qasic.quant.blockscale``), their blocks formed in the array's reduction order; a reduction no
longer than one block (a depthwise conv's taps) has one scale per channel and runs as a
per-channel format does (a grouped conv's longer ones run a dense block per group). Asymmetric INT
weights with one zero point per tensor decode through the table too (level = q - z, b + 1 bits);
per-channel or per-group zero points run as block fixed point with a zero-point row (mulzp).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import ConfigError
from qasic.isa import lut
from qasic.isa.table import LUT_MAX_SHIFT, LUT_SIG_BITS
from qasic.quant.blockscale import BlockedWeights, block_size, factors, quantize_blocked
from qasic.quant.formats import get_format, integer_levels, quantize_tensor
from qasic.quant.formats.codebook import CodebookFormat
from qasic.quant.formats.granularity import PerChannel, PerGroup, PerTensor
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.registry import FormatSpec

CODEBOOK_FRAC_BITS = 6  # NF4 levels in 8 signed bits, max error 6.9e-3 of the block scale
PER_CHANNEL_SUFFIX = "_pc"  # e.g. "nf4_pc": a group-scaled format with one scale per channel


@dataclass(frozen=True, eq=False)
class LayerWeights:
    levels: np.ndarray        # integers the array multiplies, weight-shaped
    scale: np.ndarray         # (OC,) real value of one level step per output channel
    bits: int                 # stored code bits
    fmt: str
    codes: np.ndarray | None = None  # stored codes when decoded through ``lut``
    lut: np.ndarray | None = None    # (2**bits,) code -> level
    block_scale: np.ndarray | None = None  # (OC, NB) bytes of a block-scaled format
    block_of: np.ndarray | None = None     # (K,) block of each flattened reduction index
    block_mode: str | None = None          # "shift" | "mul" | "mulzp"
    block_size: int = 0
    block_zero: np.ndarray | None = None   # (OC, NB) zero points of asymmetric INT (mulzp)


def hardware_format(name: str) -> FormatSpec:
    """The format ``name`` as the array runs it (per-channel, or block-scaled per group / MX
    block), or a ConfigError saying why not."""
    base = name.removesuffix(PER_CHANNEL_SUFFIX)
    spec = get_format(base)
    if name.endswith(PER_CHANNEL_SUFFIX):
        spec = FormatSpec(name, spec.element, PerChannel())
    if not isinstance(spec.granularity, PerChannel | PerTensor) and block_size(spec) is None:
        raise ConfigError(
            f"weight format {name!r} has {type(spec.granularity).__name__} scales; the array "
            "runs one scale per output channel or per block of the reduction axis. Use a "
            f"per-channel format, {base}{PER_CHANNEL_SUFFIX}, or a group format like "
            f"{base}_g32")
    if not isinstance(spec.element, IntFormat | CodebookFormat):
        bad = lut.misfit(integer_levels(spec.element).levels)
        if bad is not None:
            raise ConfigError(
                f"weight format {name!r} has fixed-point level {bad}, which no GEMM decode-table "
                f"entry holds (a {LUT_SIG_BITS}-bit significand shifted by 0..{LUT_MAX_SHIFT}), "
                "so it cannot run on the array: use fp8_e5m2 or a narrower minifloat "
                "(qasic.quant.formats still fake-quantizes it)")
    return spec


def quantize_weights(w: np.ndarray, name: str, clip: str,
                     order: np.ndarray | None = None) -> LayerWeights:
    """``w`` is (OC, ...) in the golden reference's layout. ``order`` lists its flattened
    reduction indices in the array's order (None: as stored); blocks of a block-scaled format
    are formed in that order."""
    spec = hardware_format(name)
    if isinstance(spec.element, IntFormat) and spec.element.has_zero_point \
            and isinstance(spec.granularity, PerChannel):  # one zero point per channel:
        k = int(np.prod(w.shape[1:]))                      # a group spanning the whole K
        spec = FormatSpec(name, spec.element, PerGroup(k))
    if block_size(spec) is not None:
        return _blocked(w, spec, name, clip, order)
    qt = quantize_tensor(w, spec, clip=clip)
    if qt.zero_points is not None:  # asymmetric per tensor: levels q - z through the table
        lut = spec.element.table.astype(np.int64) - int(qt.zero_points)
        scale = np.full(w.shape[0], float(qt.scales))
        codes = qt.codes.astype(np.int64)
        return LayerWeights(lut[codes], scale, spec.element.bits, name, codes, lut)
    frac = CODEBOOK_FRAC_BITS if isinstance(spec.element, CodebookFormat) else None
    lv = integer_levels(spec.element, frac)
    levels = lv.levels[qt.codes.astype(np.int64)]
    scale = np.asarray(qt.scales, dtype=np.float64).reshape(-1) * lv.lsb
    if isinstance(spec.element, IntFormat):
        return LayerWeights(levels, scale, spec.element.bits, name)
    return LayerWeights(levels, scale, spec.element.bits, name, qt.codes.astype(np.int64),
                        lv.levels)


def _blocked(w: np.ndarray, spec: FormatSpec, name: str, clip: str,
             order: np.ndarray | None) -> LayerWeights:
    w2 = np.asarray(w, dtype=np.float64).reshape(w.shape[0], -1)
    k = w2.shape[1]
    order = np.arange(k) if order is None else np.asarray(order)
    if sorted(order.tolist()) != list(range(k)):
        raise ValueError(f"order must be a permutation of the {k} reduction indices")
    bw = quantize_blocked(w2[:, order], spec, clip, CODEBOOK_FRAC_BITS)
    inverse = np.argsort(order)  # array order -> stored order
    levels = bw.levels[:, inverse].reshape(w.shape)
    codes = None if bw.codes is None else bw.codes[:, inverse].reshape(w.shape)
    if bw.block_scale.shape[1] == 1 and bw.mode != "mulzp":
        return _one_block(levels, codes, bw, name)
    block_of = (np.arange(k) // bw.block_size)[inverse]
    zero = bw.block_zero
    return LayerWeights(levels, bw.scale, bw.bits, name, codes, bw.lut, bw.block_scale,
                        block_of, bw.mode, bw.block_size, zero)


def _one_block(levels: np.ndarray, codes: np.ndarray | None, bw: BlockedWeights,
               name: str) -> LayerWeights:
    """A reduction no longer than one block: its one scale per channel folds into the channel's
    requantization multiplier, as a per-channel format's does (the same real weights: level *
    factor * unit), so the layer needs no block scales; a depthwise conv's groups then pack into
    dense blocks again."""
    scale = bw.scale * factors(bw.block_scale, bw.mode)[:, 0]
    return LayerWeights(levels, scale, bw.bits, name, codes, bw.lut)
