"""Scale rules: how a block of reals (one row of ``granularity.to_blocks``) gets its scale.

``clip="minmax"`` (the default) uses the whole range:
- absmax (symmetric INT, minifloats, codebooks): ``scale = max|x| / fmt.max_value``, so the
  largest magnitude lands exactly on the format's largest value and nothing saturates;
- affine (asymmetric INT): the range [min(x, 0), max(x, 0)] spans [qmin, qmax]; real 0 keeps an
  exact code; ``zero_point = qmin - round(lo / scale)`` (as ``qasic.quant.observers.affine``).

``clip="mse"`` applies the same rule to the range shrunk by a ratio r in {1/grid, ..., 1},
choosing per block the r with the least squared error: clipping a few outliers buys finer
steps for the rest, which pays off at 2..4 bits.

An all-zero block has nothing to scale: it gets scale 1.0.

MX blocks (OCP Microscaling v1.0) have no choice: a power-of-two scale 2^shared_exp with
``shared_exp = floor(log2(max|x|)) - emax_elem``, clamped to the E8M0 range [-127, 127]. The
floor is read exactly from the float's exponent (``np.frexp``), never from a cast to
torch.float8_e8m0fnu, which rounds (3 -> 4). An all-zero block gets shared_exp = -127.
"""

from __future__ import annotations

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.formats.codebook import CodebookFormat
from qasic.quant.formats.granularity import Granularity, MXBlock
from qasic.quant.formats.integer import IntFormat
from qasic.quant.formats.minifloat import FloatFormat

ElementFormat = IntFormat | FloatFormat | CodebookFormat
CLIPS = ("minmax", "mse")
MSE_GRID = 100        # ratios tried by the mse search: 1/100, 2/100, ..., 1
EMPTY_SCALE = 1.0     # any positive scale encodes an all-zero block exactly
E8M0_BIAS = 127
E8M0_MIN, E8M0_MAX = -127, 127  # 0xFF (exponent 128) is E8M0's NaN


def absmax_scales(blocks: np.ndarray, fmt: ElementFormat, ratio: float = 1.0,
                  amax: np.ndarray | None = None) -> np.ndarray:
    """``amax``: the blocks' max |x| when already known (the mse search's 100 ratios)."""
    amax = (np.abs(blocks).max(axis=1) if amax is None else amax) * ratio
    return np.where(amax > 0, amax / fmt.max_value, EMPTY_SCALE)


def affine_params(blocks: np.ndarray, fmt: IntFormat, ratio: float = 1.0,
                  bounds: tuple[np.ndarray, np.ndarray] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(scales, zero points) of the asymmetric rule, per block; ``bounds``: the blocks'
    (min(x, 0), max(x, 0)) when already known."""
    lo, hi = _bounds(blocks) if bounds is None else bounds
    lo, hi = lo * ratio, hi * ratio
    scale = np.where(hi > lo, (hi - lo) / (fmt.qmax - fmt.qmin), EMPTY_SCALE)
    zp = np.clip(fmt.qmin - np.rint(lo / scale), fmt.qmin, fmt.qmax).astype(np.int64)
    return scale, zp


def _bounds(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.minimum(blocks.min(axis=1), 0.0), np.maximum(blocks.max(axis=1), 0.0)


def mx_shared_exponent(blocks: np.ndarray, fmt: FloatFormat) -> np.ndarray:
    """int64 shared exponent per block (module docstring); E8M0 code = exponent + 127."""
    amax = np.abs(blocks).max(axis=1)
    _, e = np.frexp(amax)  # amax = f * 2^e with f in [0.5, 1): floor(log2(amax)) = e - 1
    shared = np.where(amax > 0, e.astype(np.int64) - 1 - fmt.emax, E8M0_MIN)
    return np.clip(shared, E8M0_MIN, E8M0_MAX)


def e8m0_codes(scales: np.ndarray) -> np.ndarray:
    """The E8M0 byte the hardware stores for each MX scale 2^e: e + 127, uint8."""
    frac, e = np.frexp(np.asarray(scales, dtype=np.float64))
    if np.any(frac != 0.5):  # frexp(2^e) = (0.5, e + 1)
        raise ValueError("MX scales must be powers of two")
    return (e - 1 + E8M0_BIAS).astype(np.uint8)


def choose_scales(blocks: np.ndarray, fmt: ElementFormat, gran: Granularity, clip: str,
                  grid: int = MSE_GRID) -> tuple[np.ndarray, np.ndarray | None]:
    """(scales, zero points or None) per block for ``clip`` in CLIPS."""
    if clip not in CLIPS:
        raise ConfigError(f"clip = {clip!r} is unknown: allowed {', '.join(map(repr, CLIPS))}")
    if isinstance(gran, MXBlock):
        return _mx_scales(blocks, fmt, clip), None
    if clip == "minmax":
        return _rule(blocks, fmt, 1.0)
    return _mse_search(blocks, fmt, grid)


def encode_blocks(blocks: np.ndarray, fmt: ElementFormat, scales: np.ndarray,
                  zps: np.ndarray | None) -> np.ndarray:
    x = blocks / scales[:, None]
    return fmt.encode(x if zps is None else x + zps[:, None])


def decode_blocks(codes: np.ndarray, fmt: ElementFormat, scales: np.ndarray,
                  zps: np.ndarray | None) -> np.ndarray:
    q = fmt.decode(codes)
    return (q if zps is None else q - zps[:, None]) * scales[:, None]


def _rule(blocks: np.ndarray, fmt: ElementFormat, ratio: float,
          stats: dict | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``stats``: the blocks' range, computed once for every ratio (``_stats``)."""
    stats = _stats(blocks, fmt) if stats is None else stats
    if "bounds" in stats:
        return affine_params(blocks, fmt, ratio, stats["bounds"])
    return absmax_scales(blocks, fmt, ratio, stats["amax"]), None


def _stats(blocks: np.ndarray, fmt: ElementFormat) -> dict:
    if isinstance(fmt, IntFormat) and fmt.has_zero_point:
        return {"bounds": _bounds(blocks)}
    return {"amax": np.abs(blocks).max(axis=1)}


def _mse_search(blocks: np.ndarray, fmt: ElementFormat,
                grid: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Per block the ratio of least error, from 1 down, a smaller one only when strictly
    better. A block that ratio 1 encodes exactly (error 0: a 0/1 placement matrix's blocks,
    an all-zero block) keeps it, as no error is below 0: the smaller ratios run on the other
    blocks only (DepthPro's 9216 x 4096 im2col matrix: none)."""
    stats = _stats(blocks, fmt)  # the range once, not once a ratio
    best_s, best_zp = _rule(blocks, fmt, 1.0, stats)
    best_err = _error(blocks, fmt, best_s, best_zp)
    live = np.flatnonzero(best_err > 0)
    if len(live) < len(blocks):
        sub = {k: tuple(a[live] for a in v) if isinstance(v, tuple) else v[live]
               for k, v in stats.items()}
        s, zp = _search(blocks[live], fmt, grid, sub, best_err[live])
        best_s = best_s.copy()
        best_s[live] = s
        if zp is not None:
            best_zp = best_zp.copy()
            best_zp[live] = zp
        return best_s, best_zp
    return _search(blocks, fmt, grid, stats, best_err)


def _error(blocks: np.ndarray, fmt: ElementFormat, s: np.ndarray,
           zp: np.ndarray | None) -> np.ndarray:
    x = blocks / s[:, None] + (0 if zp is None else zp[:, None])
    return ((fmt.snap(x) - x) ** 2).sum(axis=1) * s**2  # error in real units


def _search(blocks: np.ndarray, fmt: ElementFormat, grid: int, stats: dict,
            best_err: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The ratios below 1 (1's error ``best_err`` known): ties keep the larger range."""
    best_s, best_zp = _rule(blocks, fmt, 1.0, stats)
    for ratio in np.arange(grid - 1, 0, -1) / grid:
        s, zp = _rule(blocks, fmt, ratio, stats)
        err = _error(blocks, fmt, s, zp)
        better = err < best_err
        best_err, best_s = np.where(better, err, best_err), np.where(better, s, best_s)
        if zp is not None:
            best_zp = np.where(better, zp, best_zp)
    return best_s, best_zp


def _mx_scales(blocks: np.ndarray, fmt: ElementFormat, clip: str) -> np.ndarray:
    if not isinstance(fmt, FloatFormat):
        raise ConfigError(f"MX blocks need a minifloat element format, got {fmt.name} "
                          "(MXINT8 is not implemented)")
    if clip != "minmax":
        raise ConfigError(f"clip = {clip!r} does not apply to MX blocks: their scale is fixed "
                          "by the OCP rule; use clip='minmax'")
    return np.ldexp(1.0, mx_shared_exponent(blocks, fmt))
