"""State-space models' ops in sequence mode: Mamba2's chunked scan (HF's ``segment_sum``).

- ``cumsum(x, dim)`` of an activation along a per-sample axis is linear in x: a selection by the
  constant lower-triangular matrix of ones (``lowering_seq.rows``: a ``constant`` and a
  ``matmul``), one rounding.
- ``masked_fill(x, mask, 0)`` with a constant mask is ``x`` times the constant 0/1 ``~mask`` (a
  ``constant`` node and a ``mul``, as RoPE's tables).
- ``exp(masked_fill(x, mask, -inf))`` (the decay matrix ``exp(segsum)``) is ``exp(x)`` (a
  ``lut``) times the constant 0/1 ``~mask``: exp(-inf) = 0 exactly, so no code stands for -inf;
  ``sigmoid`` of causally masked scores (sigmoid attention) likewise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_pointwise, masks
from qasic.quant.lowering import Act, _arg
from qasic.quant.lowering_seq import axis_map, digit, reshaped, rows

aten = torch.ops.aten
_MUL = lowering_pointwise.HANDLERS[aten.mul.Tensor]


def cumsum(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.cumsum(x, dim): y[i] = sum of x[k], k <= i, along per-sample axis ``dim``."""
    x = lowering_pointwise.materialize(b, args[0])
    if not isinstance(x, Act):
        b.fail(node, "a cumsum of a non-activation")
    rank = node.args[0].meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    axis = axis_map(b, node.args[0])[dim]
    if axis is None or dim == digit(b, node.args[0])[0]:
        b.fail(node, f"a cumsum along axis {dim}, the batch axis; only along per-sample axes")
    n = int(node.args[0].meta["val"].shape[dim])
    shape = b.shapes[x.name]
    if axis == 0 and len(shape) > 2:  # over the first axis (the tokens: linear attention's
        # running K V^T sums): one (n, rest) matrix, so a decode step reads it as a token shift
        x = reshaped(b, node, x, (n, math.prod(shape[1:])), suffix=".rows_in")
    return rows(b, node, x, np.tril(np.ones((n, n))), axis)


def masked_fill(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.masked_fill(x, constant mask, 0): x times ~mask; a very negative fill: attention
    scores to mask (qasic.quant.masks), or the -inf of a decay matrix that exp reads."""
    fill = args[2].item() if isinstance(args[2], torch.Tensor) else args[2]
    if fill == 0 and isinstance(args[1], torch.Tensor) and not isinstance(args[0], torch.Tensor):
        return _MUL(b, node, [args[0], (~args[1].bool()).float()], {})
    return masks.masked_fill(b, node, args, kwargs)


def _zero_at_minus_inf(f: Any) -> Any:
    """A handler of pointwise ``f`` with f(-inf) = 0 exactly: of values masked with -inf by a
    constant mask (no key mask), ``f`` of the values times the 0/1 mask; else ``f``."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        m = args[0]
        if isinstance(m, masks.Masked) and m.key is None:
            y = lowering_pointwise.materialize(b, f(b, node, [m.scores], {}))
            return _MUL(b, node, [y, m.allowed.float()], {})
        return f(b, node, args, kwargs)
    return handler


# exp: Mamba2's decay matrix exp(segsum); sigmoid: sigmoid attention's causal scores (Apple's
# sigmoid(q k^T / sqrt(d) + b) after masked_fill(-inf)); both are 0 at -inf
ZERO_AT_MINUS_INF = (aten.exp.default, aten.sigmoid.default)
HANDLERS = {aten.cumsum.default: cumsum, aten.masked_fill.Scalar: masked_fill,
            **{t: _zero_at_minus_inf(lowering_pointwise.HANDLERS[t]) for t in ZERO_AT_MINUS_INF}}
SUPPORTED = (("sequence models: cumsum along a per-sample axis (a lower-triangular matmul), "
              "masked_fill of an activation with 0 (a product by the constant mask), exp or "
              "sigmoid of values masked with -inf (Mamba2's decay matrix, sigmoid attention's "
              "causal scores: the function times the mask)"),)
