"""Integer row kernels of the transformer ops: the one definition of softmax and normalization.

The golden reference (qasic.quant.reference) and the simulator's SOFTMAX and NORM instructions
both call these functions, so the arithmetic has one source; the RTL (issue "whole accelerator")
will be the independent implementation. All arithmetic is int64 and exact; every constant that
depends on a float (the exp table, the epsilon) is computed once, at quantization, and travels as
an integer parameter.

softmax (I-BERT's scheme with a table for exp; Kim et al. 2021, "I-BERT: Integer-only BERT
Quantization"): input B-bit INT codes x of scale s (the zero point cancels), one row of T keys.
    valid[j]  key j takes part: not masked, j <= q_pos when causal, and its entry of a
              constant pattern (``pattern_valid``) is 1
    m         max of the valid codes;  d[j] = m - x[j] in [0, 2^B - 1]
    e[j]      EXP[d[j]] for valid keys, else 0;  EXP[d] = min(round(2^16 exp(-s d)), 2^16)
    S         sum of e (>= 2^16 when any key is valid);  R = floor(2^32 / S)  (one divide per row)
    y[j]      (e[j] * R * qmax + 2^31) >> 32,  qmax = 2^(Bo - 1) - 1
The output codes have scale 1 / qmax and zero point 0 (``softmax_encoding``): p = y / qmax.
A row with no valid key is all zeros.
An attention sink (GPT-OSS: a learned logit per head appended to each row of scores, its
probability dropped after the softmax) is one more valid key of constant code c (the row's
head's, in the codes' scale and range, ``sink_codes``) that takes part in m and S and has no
output: m = max(m, c), S += EXP[m - c].

norm (LayerNorm with ``center``, RMSNorm without; I-BERT's integer LayerNorm with an exact
integer square root): input INT codes x, v = x - zero_point, one row of D channels.
    c[i]      D v[i] - sum(v)   (center)        |  v[i]   (no center)
    V         sum(c^2) + E,  E = round(eps D^3 / s^2) (center) | round(eps D / s^2): the float
              epsilon in the same integer units (``norm_epsilon``)
    r         max(isqrt(V), 1)  (floor square root, exact)
    t[i]      (c[i] * floor(2^61 / r) + 2^(60 - F)) >> (61 - F),  F = NORM_FRAC_BITS
so t / 2^F = c / r ~ c / sqrt(V) = (x - mean) / sqrt(var + eps) / sqrt(D), and |t| <= 2^F.
The floor square root dominates the error: relative at most about 1 / r (below 0.3% for the
smallest rows of 8-bit codes, ~1e-5 for typical LayerNorm rows), then 2^-F absolute. The
per-channel affine part (gamma sqrt(D) / 2^F, beta) is a requantization: the post-processing
unit's POST with a signed multiplier (qasic.quant.reference ``norm``).
"""

from __future__ import annotations

import math

import numpy as np

EXP_FRAC_BITS = 16   # EXP table entries are round(2^16 exp(-s d)): 1.0 = 65536
NORM_FRAC_BITS = 20  # t = normalized value * 2^20 / sqrt(D): 22-bit signed accumulators
NORM_MAX_LEN = 4096  # keeps sum(c^2) inside int64 for 8-bit codes with center
_INV_BITS = 61       # floor(2^61 / r): |c * inv| <= 2^61 since |c| <= r


def norm_max_bits(length: int) -> int:
    """The widest INT codes NORM takes over rows of ``length`` values: sum(c^2) < D^3 2^(2B)
    must stay below 2^62 (int64), B the stored width (9..16-bit codes are int16 codes, which
    the instruction checks as 16 bits): 16 up to 1023 values, 8 up to 41,285."""
    return next((b for b in (16, 8, 7, 6, 5, 4, 3, 2) if length ** 3 << 2 * b < 1 << 62), 0)


def softmax_encoding(bits: int) -> tuple[float, int]:
    """(scale, zero_point) of softmax output codes of ``bits`` bits: p = code / qmax."""
    return 1.0 / ((1 << (bits - 1)) - 1), 0


def exp_table(scale: float, bits: int) -> np.ndarray:
    """EXP[d] = min(round_half_up(2^16 exp(-scale d)), 2^16) for d in [0, 2^bits): int64."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"softmax input scale {scale} must be finite and > 0")
    d = np.arange(1 << bits, dtype=np.float64)
    e = np.floor(np.exp(-scale * d) * (1 << EXP_FRAC_BITS) + 0.5)
    return np.minimum(e, 1 << EXP_FRAC_BITS).astype(np.int64)


def softmax_rows(x: np.ndarray, table: np.ndarray, out_bits: int,
                 valid: np.ndarray | None = None, sink: np.ndarray | None = None
                 ) -> np.ndarray:
    """Integer softmax over the last axis of INT codes ``x`` (any leading shape). ``valid``
    (broadcastable bool) marks the keys that take part; None: all. ``sink``: each row's sink
    code (broadcastable to x's shape with a last axis of 1), or None. Returns int64 codes."""
    x = np.asarray(x, dtype=np.int64)
    table = np.asarray(table, dtype=np.int64)
    valid = np.ones(x.shape, dtype=bool) if valid is None else np.broadcast_to(valid, x.shape)
    lowest = np.iinfo(np.int64).min
    m = np.where(valid, x, lowest).max(axis=-1, keepdims=True)
    if sink is not None:
        sink = np.broadcast_to(np.asarray(sink, np.int64), x.shape[:-1] + (1,))
        m = np.maximum(m, sink)
    d = np.clip(m - x, 0, len(table) - 1)
    e = np.where(valid, table[d], 0)
    s = e.sum(axis=-1, keepdims=True)
    if sink is not None:
        s = s + table[np.clip(m - sink, 0, len(table) - 1)]
    r = np.where(s > 0, (np.int64(1) << 32) // np.maximum(s, 1), 0)
    qmax = (1 << (out_bits - 1)) - 1
    return (e * r * qmax + (np.int64(1) << 31)) >> 32


def sink_codes(logits: np.ndarray, scale: float, zero_point: int, qmin: int, qmax: int
               ) -> np.ndarray:
    """The sinks' codes: each logit quantized as a score (round half up, clamped to the
    codes' range), int64."""
    q = np.floor(np.asarray(logits, np.float64) / scale + 0.5) + zero_point
    return np.clip(q, qmin, qmax).astype(np.int64)


def sink_rows(sink: np.ndarray, shape: tuple) -> np.ndarray:
    """A softmax's sink codes (H,), one per head (H the product of the per-sample axes before
    the last two; 1 for (S, T) scores), as a (batch, *heads, S or 1, 1) array for scores of
    ``shape`` (batch first)."""
    per = tuple(shape[1:])
    heads = per[:-2] if len(per) > 2 else ()
    s = np.asarray(sink, np.int64).reshape(-1)
    if s.size != math.prod(heads):
        raise ValueError(f"softmax sinks of {s.size} heads for scores of per-sample shape "
                         f"{per}; one per head")
    return s.reshape((1,) + heads + (1,) * (len(per) - len(heads)))


def mask_valid(mask: np.ndarray, shape: tuple) -> np.ndarray:
    """A softmax's mask input as bool broadcastable to scores of ``shape`` (batch, ..., T): a
    key mask (batch, T) is every row's; a row mask of the scores' shape is each row's own."""
    m = np.asarray(mask)
    if m.shape == tuple(shape):
        return m != 0
    return m.reshape((m.shape[0],) + (1,) * (len(shape) - 2) + (shape[-1],)) != 0


def topk_rank(x: np.ndarray) -> np.ndarray:
    """Per element of the last axis, how many elements of its row beat it: larger, or equal at
    a lower index (a stable descending sort's order; torch.topk picks the same values, but
    among equal ones not always the lower indices). (E, E) comparisons per row."""
    a, b = x[..., :, None], x[..., None, :]  # a: the element i, b: the competitor j
    n = x.shape[-1]
    lower = np.arange(n)[None, :] < np.arange(n)[:, None]  # [i, j]: j < i
    return ((b > a) | ((b == a) & lower)).sum(axis=-1)


def causal_valid(rows: int, keys: int, q_pos: int = 0) -> np.ndarray:
    """(rows, keys) bool: key j is visible to query row i iff j <= q_pos + i."""
    return np.arange(keys)[None, :] <= (q_pos + np.arange(rows))[:, None]


def pattern_valid(valid: np.ndarray, shape: tuple) -> np.ndarray:
    """A softmax's constant attention pattern ``valid`` (P, S, T) 0/1, P = 1 (every head) or
    H, as bool broadcastable to scores of ``shape`` (batch, *per-sample shape)."""
    per = tuple(shape[1:])
    heads = math.prod(per[:-2])
    v = np.asarray(valid) != 0
    rows_keys = per[-2:] if len(per) > 1 else (1,) + per
    if v.ndim != 3 or v.shape[0] not in (1, heads) or v.shape[1:] != rows_keys:
        raise ValueError(f"softmax pattern of shape {v.shape} for scores of per-sample shape "
                         f"{per}; it must be (1 or {heads}, S, T)")
    return np.broadcast_to(v, (heads,) + v.shape[1:]).reshape(per)


def norm_epsilon(eps: float, scale: float, length: int, center: bool) -> int:
    """The float epsilon in the integer units of V (see the module docstring), capped at 2^60."""
    if not (eps >= 0 and math.isfinite(eps)):
        raise ValueError(f"normalization epsilon {eps} must be finite and >= 0")
    units = eps * (length ** 3 if center else length) / (scale * scale)
    return int(min(math.floor(units + 0.5), 1 << 60))


def isqrt(v: np.ndarray) -> np.ndarray:
    """Exact floor square root of non-negative int64 values (elementwise)."""
    v = np.asarray(v, dtype=np.int64)
    r = np.floor(np.sqrt(v.astype(np.float64))).astype(np.int64)
    r = np.where(r * r > v, r - 1, r)          # float sqrt may be one too high ...
    r = np.where(r * r > v, r - 1, r)
    r = np.where((r + 1) * (r + 1) <= v, r + 1, r)  # ... or one too low
    return r


def norm_rows(v: np.ndarray, eps_int: int, center: bool) -> np.ndarray:
    """The normalized fixed-point values t (int64, same shape) of integer values v = x - zp,
    normalized over the last axis (module docstring)."""
    v = np.asarray(v, dtype=np.int64)
    length = v.shape[-1]
    if length > NORM_MAX_LEN:
        raise ValueError(f"normalization over {length} channels; at most {NORM_MAX_LEN}")
    c = length * v - v.sum(axis=-1, keepdims=True) if center else v
    big = (c * c).sum(axis=-1, keepdims=True) + np.int64(eps_int)
    r = np.maximum(isqrt(big), 1)
    inv = (np.int64(1) << _INV_BITS) // r
    shift = _INV_BITS - NORM_FRAC_BITS
    return (c * inv + (np.int64(1) << (shift - 1))) >> shift
