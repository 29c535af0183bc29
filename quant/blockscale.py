"""Block-scaled weights (MX blocks, per-group INT/FP, NF4 blocks) on the integer array.

A block-scaled format gives each run of ``g`` consecutive reduction-axis weights of one output
channel its own scale, so the scale cannot fold into the per-channel requantization multiplier.
The accelerator does *block fixed-point accumulation*: the PEs multiply the element levels L (an
INT code, or a minifloat/codebook level decoded through the GEMM LUT) and every fold's partial
sums enter the accumulator scaled by one unsigned byte per (block, channel), the GEMM's
``bscale`` (isa.table). A fold never spans two blocks. Two modes:

- ``shift`` (MX, E8M0 power-of-two scales). Block b of channel c has shared exponent e[b, c]
  (the OCP rule, ``formats.scales.mx_shared_exponent``); the byte is e[b, c] - min_b e[b, c] and
  the partial sums are shifted left by it, so w = L * 2^byte * (2^min_e * lsb): exact, and the
  per-channel factor folds into requantization. The byte is at most ``MAX_SHIFT``: a block more
  than 2^MAX_SHIFT below its channel's largest is encoded with the exponent max_e - MAX_SHIFT
  (still a valid MX encoding, only coarser for that block) so the accumulator stays bounded.
- ``mul`` (per-group INT or minifloat scales, NF4 absmax blocks). The float group scales are
  quantized against the channel's largest: byte m = ceil(MULT_MAX * s[b, c] / s_max[c]) in
  1..MULT_MAX, and the block is encoded with the scale s_max[c] * m / MULT_MAX >= s[b, c] (so
  rounding the scale up never clips). Double quantization of the scales, as bitsandbytes and
  llama.cpp's k-quants do; w = L * m * (s_max[c] / MULT_MAX * lsb).
- ``mulzp`` (asymmetric INT groups, as GPTQ/AWQ store them, and asymmetric per-channel INT as
  one group spanning K): ``mul`` scales plus a signed zero point z per (block, channel), stored
  in a second row and subtracted from the codes as the weights load, so L = q - z (bits + 1
  signed bits); the zero point is re-derived for the rounded-up scale from the block's low end.

Blocks run along the reduction axis in the array's order (``(kh, kw, ic)`` for a conv, memory
order of the input vector for a linear after a flatten); the caller passes that order. A last
block shorter than ``g`` is allowed (as if zero-padded, as MX hardware pads K to a multiple of 32).

Golden semantics (``effective_weight``): the array's integer weight is L * factor[c, block(k)]
with factor = 1 << byte (shift) or byte (mul); integer sums are exact, so summing per block and
scaling equals one sum over these effective weights, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.formats import integer_levels
from qasic.quant.formats.codebook import CodebookFormat
from qasic.quant.formats.granularity import MXBlock, PerGroup
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.minifloat import FloatFormat
from qasic.quant.formats.registry import FormatSpec
from qasic.quant.formats.scales import choose_scales, encode_blocks, mx_shared_exponent

MODES = ("shift", "mul", "mulzp")  # the non-"none" values of isa.table.BSCALE_MODES
SCALE_BYTE_BITS = 8       # one unsigned byte per (block, channel): isa.table.BSCALE_BYTES
MAX_SHIFT = 8             # largest MX exponent spread within one channel
MULT_MAX = (1 << SCALE_BYTE_BITS) - 1


@dataclass(frozen=True, eq=False)
class BlockedWeights:
    """A (OC, K) weight in block fixed point, K in the order the caller passed."""

    levels: np.ndarray        # (OC, K) int64: what the PEs multiply
    codes: np.ndarray | None  # (OC, K) stored codes when levels decode through ``lut``
    lut: np.ndarray | None    # (2**bits,) code -> level
    scale: np.ndarray         # (OC,) real value of one effective-weight step per channel
    block_scale: np.ndarray   # (OC, NB) the stored bytes (shift amount or multiplier)
    mode: str                 # "shift" | "mul" | "mulzp"
    block_size: int
    bits: int                 # stored element code bits
    block_zero: np.ndarray | None = None  # (OC, NB) signed zero points (mulzp)


def block_size(spec: FormatSpec) -> int | None:
    """Elements per scale for a block-scaled format, None for per-channel/per-tensor ones."""
    g = spec.granularity
    if isinstance(g, MXBlock):
        return g.block_size
    if isinstance(g, PerGroup):
        return g.group_size
    return None


def quantize_blocked(w2: np.ndarray, spec: FormatSpec, clip: str,
                     codebook_frac_bits: int) -> BlockedWeights:
    """Quantize a (OC, K) weight whose blocks run along axis 1 in the given order."""
    g = block_size(spec)
    if g is None:
        raise ValueError(f"{spec.name} is not block-scaled")
    elem = spec.element
    oc, k = w2.shape
    nb = -(-k // g)
    blocks = np.pad(np.asarray(w2, dtype=np.float64), ((0, 0), (0, nb * g - k))).reshape(-1, g)
    if isinstance(spec.granularity, MXBlock):
        scales, byte, unit = _shift_scales(blocks, elem, oc, nb)
        mode = "shift"
    elif isinstance(elem, IntFormat) and elem.has_zero_point:
        return _asymmetric(blocks, elem, spec, clip, oc, nb, g, k)
    else:
        scales, byte, unit = _mul_scales(blocks, elem, spec, clip, oc, nb)
        mode = "mul"
    codes = encode_blocks(blocks, elem, scales.reshape(-1), None).reshape(oc, nb * g)[:, :k]
    frac = codebook_frac_bits if isinstance(elem, CodebookFormat) else None
    lv = integer_levels(elem, frac)
    codes = codes.astype(np.int64)
    levels = lv.levels[codes]
    decoded = not isinstance(elem, IntFormat)
    return BlockedWeights(levels, codes if decoded else None, lv.levels if decoded else None,
                          unit * lv.lsb, byte, mode, g, elem.bits)


def _asymmetric(blocks: np.ndarray, elem: IntFormat, spec: FormatSpec, clip: str, oc: int,
                nb: int, g: int, k: int) -> BlockedWeights:
    """mulzp: 8-bit scales as ``mul``, and per block a zero point re-derived for the rounded-up
    scale from the block's original low end; levels = q - z (bits + 1 signed bits)."""
    s, zp = choose_scales(blocks, elem, spec.granularity, clip)
    low = s * (elem.qmin - zp)  # the real value of the lowest code before rounding the scale
    scales, byte, unit = _mul_scales(blocks, elem, spec, clip, oc, nb, chosen=s)
    s2 = scales.reshape(-1)
    z2 = np.clip(np.rint(elem.qmin - low / s2), elem.qmin, elem.qmax).astype(np.int64)
    codes = encode_blocks(blocks, elem, s2, z2)
    q = elem.decode(codes).astype(np.int64)
    levels = (q - z2[:, None]).reshape(oc, nb * g)[:, :k]
    q = q.reshape(oc, nb * g)[:, :k]
    return BlockedWeights(levels, q, None, unit, byte, "mulzp", g, elem.bits,
                          z2.reshape(oc, nb))


def _shift_scales(blocks: np.ndarray, elem, oc: int, nb: int):
    if not isinstance(elem, FloatFormat):
        raise ConfigError(f"MX blocks need a minifloat element format, got {elem.name}")
    e = mx_shared_exponent(blocks, elem).reshape(oc, nb)
    e = np.maximum(e, e.max(axis=1, keepdims=True) - MAX_SHIFT)
    low = e.min(axis=1, keepdims=True)
    return np.ldexp(1.0, e), (e - low).astype(np.int64), np.ldexp(1.0, low[:, 0])


def _mul_scales(blocks: np.ndarray, elem, spec: FormatSpec, clip: str, oc: int, nb: int,
                chosen: np.ndarray | None = None):
    s = choose_scales(blocks, elem, spec.granularity, clip)[0] if chosen is None else chosen
    s = s.reshape(oc, nb)
    empty = (np.abs(blocks).max(axis=1) == 0).reshape(oc, nb)
    s = np.where(empty, 0.0, s)  # any scale encodes an all-zero block: don't let it set s_max
    s_max = s.max(axis=1, keepdims=True)
    s_max = np.where(s_max > 0, s_max, 1.0)
    m = np.clip(np.ceil(np.round(MULT_MAX * s / s_max, 9)), 1, MULT_MAX).astype(np.int64)
    return s_max * m / MULT_MAX, m, s_max[:, 0] / MULT_MAX


def factors(block_scale: np.ndarray, mode: str) -> np.ndarray:
    """(OC, NB) integer factor each block's partial sums are multiplied by."""
    b = np.asarray(block_scale, dtype=np.int64)
    if mode == "shift":
        return np.left_shift(np.int64(1), b)
    if mode in ("mul", "mulzp"):
        return b
    raise ValueError(f"block mode {mode!r} not in {MODES}")


def effective_weight(levels: np.ndarray, block_scale: np.ndarray, block_of: np.ndarray,
                     mode: str) -> np.ndarray:
    """(OC, ...) int64 weight the golden reference multiplies: levels * factor[c, block(k)],
    with ``block_of`` the block of every flattened reduction index."""
    lv = np.asarray(levels, dtype=np.int64)
    f = factors(block_scale, mode)
    return (lv.reshape(lv.shape[0], -1) * f[:, np.asarray(block_of)]).reshape(lv.shape)


def check_block_params(name: str, levels: np.ndarray, block_scale: np.ndarray,
                       block_of: np.ndarray, mode: str) -> None:
    """ValueError naming the node when block parameters are inconsistent."""
    k = int(np.prod(levels.shape[1:]))
    bo = np.asarray(block_of)
    if mode not in MODES:
        raise ValueError(f"node {name}: block_mode {mode!r} not in {MODES}")
    if bo.shape != (k,) or bo.min(initial=0) < 0 or bo.max(initial=0) >= block_scale.shape[1] \
            or block_scale.shape[0] != levels.shape[0]:
        raise ValueError(f"node {name}: block_of must give each of the {k} reduction indices a "
                         f"block in 0..{block_scale.shape[1] - 1} and block_scale must be "
                         f"(out channels, blocks)")
    hi = MAX_SHIFT if mode == "shift" else MULT_MAX
    if block_scale.min(initial=0) < 0 or block_scale.max(initial=0) > hi:
        raise ValueError(f"node {name}: {mode} block scales must lie in 0..{hi}")
