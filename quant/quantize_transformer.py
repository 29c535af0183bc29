"""Quantizing the transformer ops: FNode -> QNode with integer parameters (quant.graph OPS).

- matmul: one multiplier M = alpha * s_a * s_b / s_out (alpha: a constant scale of the product
  folded at capture, e.g. 1/sqrt(d)); operands are symmetric INT (qasic.quant.encodings).
- softmax: the exp table ``intops.exp_table(s_in, B_in)``; attrs causal; its constant
  attention pattern ``valid`` (uint8) when it has one; its attention sinks' float logits as
  codes of its input (``intops.sink_codes``) when it has them.
- norm: t = intops.norm_rows(x) = (x - mean) / sqrt(var + eps) * 2^F / sqrt(D) (center; RMS
  without the mean), so y = gamma n + beta is y_codes = requantize(t + bias, q, shift) per
  channel with M = gamma sqrt(D) / (2^F s_out) (signed: gamma < 0 gives q < 0) and bias =
  round(beta / (s_out M)). A |gamma| below max(|beta| 2^F / (sqrt(D) 2^54), 2^-30 s_out /
  sqrt(D)) is raised to that bound (sign kept, + for 0): the bias then stays below 2^54, inside
  requantize's exact range (|acc| < 2^55), and M stays above 2^-50, where its 31-bit q keeps
  its precision; the change moves an output by at most the bound times |n| <= sqrt(D), i.e.
  max(|beta| 2^-34, 2^-30 s_out): far below half a code. eps = ``intops.norm_epsilon``.
- embedding: the table quantized to the output's encoding (a key mask's 0/1 codes as they are).
- constant: the value quantized to the output's encoding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from qasic.errors import ConfigError, UnsupportedOpError
from qasic.quant import intops
from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.fixedpoint import MAX_SHIFT, SATURATING, saturating_multipliers
from qasic.quant.graph import QNode, TensorQ

BIAS_BITS = 54   # |norm bias| < 2^54: t + bias inside requantize's exact range (< 2^55)
MIN_MULTIPLIER_BITS = 50   # norm multipliers >= 2^-50


def _multiplier(m: np.ndarray) -> dict[str, np.ndarray]:
    """Signed real multipliers -> {multiplier: q (int32, sign of m), shift (int32)}."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    q, shift = saturating_multipliers(np.abs(m))
    return {"multiplier": (np.sign(m) * q).astype(np.int32), "shift": shift.astype(np.int32)}


def check_product(node: FNode, m: float, s_a: float, s_b: float, s_out: float) -> None:
    """A product of two activations whose output steps are more than 2^30 times finer than a
    step of the operands' product: every nonzero product of codes saturates, so the calibrated
    values, which lay inside the output's range, all came from operand codes of 0 (a product
    with ``1 / (d + eps)`` whose range holds 1 / eps where d was 0): one line, not a program
    that outputs only 0 and saturation. (A sum or a layer there is a cancellation, values ~0
    where any nonzero one saturates: quant.fixedpoint.SATURATING caps its multiplier.)"""
    if abs(m) > 2.0 ** MAX_SHIFT:
        raise UnsupportedOpError(
            f"{node.op} {node.name}: its output was calibrated to steps of {s_out:.3g}, "
            f"{abs(m):.3g} times finer than a step of its operands' product ({s_a:.3g} x "
            f"{s_b:.3g}), so every nonzero product would saturate; calibrate on data where "
            "its operands' product is not ~0, or bound the operand of huge range (a divisor "
            "near 0 makes 1 / (d + eps) huge)")


def _int_input(node: FNode, t: TensorQ, what: str) -> TensorQ:
    if t.is_fp:
        raise ValueError(f"node {node.name}: {what} must be INT codes, not {t.fmt}")
    return t


def matmul(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ], config: Any) -> QNode:
    a, b = (_int_input(node, tensors[t], "matmul operands") for t in node.inputs)
    if a.zero_point or b.zero_point:
        raise ValueError(f"node {node.name}: matmul operands need zero point 0")
    m = node.attrs.get("alpha", 1.0) * a.unit * b.unit / tensors[node.output].unit
    check_product(node, m, a.unit, b.unit, tensors[node.output].unit)
    return QNode(node.name, "matmul", node.inputs, node.output,
                 {"transpose_b": bool(node.attrs.get("transpose_b", False))}, _multiplier(m))


def softmax(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ], config: Any) -> QNode:
    x = _int_input(node, tensors[node.inputs[0]], "softmax input")
    pattern = {"valid": np.asarray(node.params["valid"], np.uint8)} \
        if "valid" in node.params else {}
    if "sink" in node.params:  # attention sinks: the float logits as codes of the scores
        pattern["sink"] = intops.sink_codes(node.params["sink"], x.scale, x.zero_point, x.qmin,
                                            x.qmax)
    return QNode(node.name, "softmax", node.inputs, node.output,
                 {"causal": bool(node.attrs.get("causal", False))},
                 {"table": intops.exp_table(x.scale, x.bits), **pattern})


def norm(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ], config: Any) -> QNode:
    x = _int_input(node, tensors[node.inputs[0]], "normalization input")
    out = tensors[node.output]
    gamma, beta = node.params["gamma"], node.params["beta"]
    d = gamma.shape[-1]
    if x.bits > intops.norm_max_bits(d):  # sum((D v - sum v)^2) < D^3 2^(2B) must fit int64
        raise ConfigError(f"node {node.name}: normalization over {d} channels of {x.bits}-bit "
                          f"codes (int16 above 8 bits) can overflow the kernel's int64 sums; use "
                          f"norm_input_bits <= {intops.norm_max_bits(d)}")
    root = math.sqrt(d)
    unit = float(1 << intops.NORM_FRAC_BITS)
    low = max(float(np.abs(beta).max(initial=0.0)) * unit / (root * 2.0 ** BIAS_BITS),
              2.0 ** (intops.NORM_FRAC_BITS - MIN_MULTIPLIER_BITS) * out.unit / root)
    g = np.where(np.abs(gamma) < low, np.where(gamma < 0, -low, low), gamma)
    # an output calibrated at zero (a LayerNorm of an all-zero input, as in random-weight
    # MobileViT) has a vanishing unit: the multiplier is capped at the largest one, where any
    # nonzero value saturates as it would at the exact one
    m = np.clip(g * root / (unit * out.unit), -SATURATING, SATURATING)
    params = _multiplier(m)
    params["bias"] = np.rint(beta / (out.unit * m)).astype(np.int64)
    center = bool(node.attrs.get("center", True))
    params["eps"] = np.array([intops.norm_epsilon(node.attrs["eps"], x.scale, d, center)],
                             dtype=np.int64)
    return QNode(node.name, "norm", node.inputs, node.output, {"center": center}, params)


def _codes(values: np.ndarray, t: TensorQ) -> np.ndarray:
    """``values`` in ``t``'s codes, in the narrowest signed integer type that holds them."""
    q = t.encode(values)
    for dtype in (np.int8, np.int16, np.int32):
        info = np.iinfo(dtype)
        if q.size == 0 or (info.min <= q.min() and q.max() <= info.max):
            return q.astype(dtype)
    return q


def embedding(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ], config: Any
              ) -> QNode:
    # a slice of the ids (offset, rows); what they index (a hash of them: the error message)
    ids = {k: v for k, v in node.attrs.items() if k in ("offset", "rows", "index_is")}
    return QNode(node.name, "embedding", node.inputs, node.output, ids,
                 {"table": _codes(node.params["table"], tensors[node.output])})


def constant(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ], config: Any) -> QNode:
    return QNode(node.name, "constant", node.inputs, node.output, {},
                 {"value": _codes(node.params["value"], tensors[node.output])})


QUANTIZERS = {"matmul": matmul, "softmax": softmax, "norm": norm, "embedding": embedding,
              "constant": constant}
