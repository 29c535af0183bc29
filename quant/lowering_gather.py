"""Selections by a constant index. ``aten.gather`` along the last axis: a selection that differs
from row to row (DeBERTa's relative positions: score[q, k] = c2p[q, delta(q, k)]), lowered as
one matmul per row by a constant 0/1 selector. ``aten.repeat_interleave`` by an int along a
per-sample axis (Funnel's upsampling of the pooled tokens): one 0/1 selector along that axis
(``qasic.quant.lowering_seq.rows``).

Per sample, x (..., Q, R) and index (..., Q, K) give y (..., Q, K) with y[..., q, k] =
x[..., q, index[..., q, k]]. With the leading axes and Q merged into L rows: x as (L, 1, R), a
``constant`` P (L, R, K) with P[l, r, k] = (index[l, k] == r), y = x @ P as (L, 1, K), reshaped
back. The index must be the same for every sample (it is a constant of the model, not of the
input); a computed index, or a gather along another axis, is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_seq
from qasic.quant.lowering import Act, _act, _arg

aten = torch.ops.aten

SUPPORTED = ("gather along the last axis by a constant index (a 0/1 selector per row)",
             "repeat_interleave by an int along a per-sample axis (a 0/1 selector)")


def gather(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.gather(x, dim, index, sparse_grad)."""
    x = _act(b, node, args[0], "gather input")
    index = args[2]
    rank = node.meta["val"].dim()
    if int(args[1]) % rank != rank - 1:
        b.fail(node, f"gather along dim {args[1]} of a rank-{rank} tensor; only the last")
    if not isinstance(index, torch.Tensor):
        b.fail(node, "gather by computed indices; only by a constant index")
    per = lowering_seq.samples(b, node, index)
    if not (per == per[:1]).all():
        b.fail(node, "a gather index that differs between samples")
    idx = per[0].astype(np.int64)
    xs = b.shapes[x.name]
    if xs[:-1] != idx.shape[:-1]:
        b.fail(node, f"gather of per-sample {xs} by an index of {idx.shape}; only indices "
                     "as large as the input but along the last axis")
    rows, r, k = math.prod(idx.shape[:-1]), xs[-1], idx.shape[-1]
    select = (idx.reshape(rows, 1, k) == np.arange(r).reshape(1, r, 1)).astype(np.float64)
    xr = lowering_seq.reshaped(b, node, x, (rows, 1, r), suffix=".rows_in")
    sel = b.add(node, "constant", (), {}, {"value": select}, shape=select.shape,
                suffix=".select")
    y = b.add(node, "matmul", (xr.name, sel.name), {"transpose_b": False, "alpha": 1.0},
              shape=(rows, 1, k), suffix=".gathered")
    return lowering_seq.reshaped(b, node, y, idx.shape)


def repeat_interleave(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.repeat_interleave(x, repeats: int, dim, output_size)."""
    x = _act(b, node, args[0], "repeat_interleave input")
    repeats, dim = int(args[1]), _arg(args, kwargs, 2, "dim", None)
    if dim is None:
        b.fail(node, "repeat_interleave of the flattened tensor (no dim); only along an axis")
    rank = node.meta["val"].dim()
    axis = lowering_seq.axis_map(b, node.args[0])[int(dim) % rank]
    if axis is None or int(dim) % rank == lowering_seq.digit(b, node.args[0])[0]:
        b.fail(node, f"repeat_interleave along dim {dim}, the batch axis; only per-sample axes")
    n = b.shapes[x.name][axis]
    return lowering_seq.rows(b, node, x, np.eye(n)[np.arange(n * repeats) // repeats], axis)


HANDLERS = {aten.gather.default: gather, aten.repeat_interleave.self_int: repeat_interleave}
