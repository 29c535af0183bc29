"""Selections by a constant index. ``aten.gather`` along any per-sample axis: a selection that
may differ from row to row (DeBERTa's relative positions: score[q, k] = c2p[q, delta(q, k)];
BigBird's block-sparse attention: the key blocks each query block reads, key[h, j] =
key[h, rand[h, j]]), lowered as matmuls by constant 0/1 selectors.
``aten.repeat_interleave`` by an int along a per-sample axis (Funnel's upsampling of the pooled
tokens): one 0/1 selector along that axis (``qasic.quant.lowering_seq.rows``).

Per sample, x (A, N, T) and index (A, K, T) around the gathered axis (A, T: the products of the
axes before and after it) give y (A, K, T) with y[a, k, t] = x[a, index[a, k, t], t]:

- along the last axis (T = 1; DeBERTa): x as (A, 1, N), a ``constant`` P (A, N, K) with
  P[a, n, k] = (index[a, k] == n), y = x @ P as (A, 1, K); an index (..., Q, K) the same for
  every head (the axes before Q: a relative position gather's) shares one P (Q, N, K) among
  them, x as (Q, heads, N) (``_along_last_shared``);
- along another axis, by an index that is the same for every t (BigBird's blocks): a
  ``constant`` S (A, K, N) with S[a, k, n] = (index[a, k, 0] == n), y = S @ x (``rows``);
- otherwise: x permuted to (A, T, N) (a data move), gathered along its last axis as above, and
  permuted back.

The index must be the same for every sample (it is a constant of the model, not of the
input) and as large as the input along every axis but the gathered one; a computed index, or a
gather along the batch axis, is refused.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_seq
from qasic.quant.lowering import Act, _act, _arg

aten = torch.ops.aten

SUPPORTED = ("gather along any per-sample axis by a constant index (0/1 selector matmuls)",
             ("x[..., idx] by one constant 1-D index along a per-sample axis (Qwen2.5-VL's "
              "window order): a 0/1 selector"),
             ("repeat_interleave by an int along a per-sample axis, or the batch's (each "
              "sample's rows together: GCViT's global query over its windows; a 0/1 selector)"),
             ("index_add into zeros by a constant index along a per-sample axis (a scatter "
              "selector)"),
             ("index_put of an activation into a constant by one constant 1-D index along its "
              "first axis, a per-sample one (a scatter selector plus the kept constant)"))


def gather(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.gather(x, dim, index, sparse_grad)."""
    x = _act(b, node, args[0], "gather input")
    index = args[2]
    rank = node.meta["val"].dim()
    dim = int(args[1]) % rank
    axis = lowering_seq.axis_map(b, node.args[0])[dim]
    if axis is None or dim == lowering_seq.digit(b, node.args[0])[0]:
        b.fail(node, f"gather along dim {dim}, the batch axis; only along per-sample axes")
    if not isinstance(index, torch.Tensor):
        b.fail(node, "gather by computed indices; only by a constant index")
    b.batch_axes[node.name] = lowering_seq.digit(b, node.args[0])  # the index's shape is x's
    per = lowering_seq.samples(b, node, index)
    if not (per == per[:1]).all():
        b.fail(node, "a gather index that differs between samples")
    idx, xs = per[0].astype(np.int64), b.shapes[x.name]
    if xs[:axis] + xs[axis + 1:] != idx.shape[:axis] + idx.shape[axis + 1:]:
        b.fail(node, f"gather of per-sample {xs} by an index of {idx.shape}; only indices "
                     f"as large as the input but along the gathered axis {axis}")
    a, n, t, k = math.prod(xs[:axis]), xs[axis], math.prod(xs[axis + 1:]), idx.shape[axis]
    idx = idx.reshape(a, k, t)
    if t == 1 and axis >= 2 and _shared(idx[:, :, 0].reshape(xs[:axis] + (k,))):
        y = _along_last_shared(b, node, x, idx[:, :, 0].reshape(xs[:axis] + (k,)), n)
    elif t == 1:  # the axes before kept (a decode step reads its query's row of the selector)
        lead = tuple(xs[:axis]) or (1,)
        y = _along_last(b, node, lowering_seq.reshaped(b, node, x, lead + (1, n), ".rows_in"),
                        idx[:, :, 0].reshape(lead + (k,)), n)
    elif (idx == idx[:, :, :1]).all():
        y = _selected(b, node, lowering_seq.reshaped(b, node, x, (a, n, t), ".rows_in"),
                      idx[:, :, 0], n)
    else:
        y = _transposed(b, node, lowering_seq.reshaped(b, node, x, (a, n, t), ".rows_in"), idx)
    return lowering_seq.reshaped(b, node, y, b.per_sample(node))


def _one_hot(idx: np.ndarray, n: int) -> np.ndarray:
    """(..., K) indices -> (..., K, n) 0/1 rows."""
    return (idx[..., None] == np.arange(n)).astype(np.float64)


def _along_last(b: Any, node: Any, x: Act, idx: np.ndarray, n: int) -> Act:
    """x (..., 1, n) times the constant P (..., n, K), P[..., r, k] = (idx[..., k] == r):
    (..., 1, K)."""
    select = np.swapaxes(_one_hot(idx, n), -1, -2)
    sel = b.add(node, "constant", (), {}, {"value": select}, shape=select.shape,
                suffix=".select")
    return b.add(node, "matmul", (x.name, sel.name), {"transpose_b": False, "alpha": 1.0},
                 shape=(*idx.shape[:-1], 1, idx.shape[-1]), suffix=".gathered")


def _shared(idx: np.ndarray) -> bool:
    """An index (..., Q, K) that is the same at every index of the axes before Q (the heads
    of a relative position gather: Inkling's, DeBERTa's), with more than one of them."""
    return math.prod(idx.shape[:-2]) > 1 and bool((idx == idx[(0,) * (idx.ndim - 2)]).all())


def _along_last_shared(b: Any, node: Any, x: Act, idx: np.ndarray, n: int) -> Act:
    """x (..., Q, n) gathered along its last axis by an index (..., Q, K) the same for every
    index of the axes before Q (``_shared``): those axes (A of them) become the rows of one
    matmul per q, x as (Q, A, n) times the constant P (Q, n, K), P[q, r, k] = (idx[q, k] ==
    r), as (A, Q, K): each product is the per-row gather's (one 1 per column), so the same
    codes, and the selector is A times smaller (a decode step gathers its query's row of it,
    not A copies)."""
    q, k = idx.shape[-2:]
    a = math.prod(idx.shape[:-2])
    rows = lowering_seq.reshaped(b, node, x, (a, q, n), ".rows_in")
    moved = b.add(node, "permute", (rows.name,), {"perm": (1, 0, 2)}, shape=(q, a, n),
                  suffix=".rows_in.queries")
    select = np.swapaxes(_one_hot(idx.reshape(a, q, k)[0], n), -1, -2)  # (Q, n, K)
    sel = b.add(node, "constant", (), {}, {"value": select}, shape=select.shape,
                suffix=".select")
    y = b.add(node, "matmul", (moved.name, sel.name), {"transpose_b": False, "alpha": 1.0},
              shape=(q, a, k), suffix=".gathered")
    return b.add(node, "permute", (y.name,), {"perm": (1, 0, 2)}, shape=(a, q, k),
                 suffix=".gathered.rows")


def _selected(b: Any, node: Any, x: Act, idx: np.ndarray, n: int) -> Act:
    """The constant S (A, K, n), S[a, k, r] = (idx[a, k] == r), times x (A, n, T): (A, K, T)."""
    select = _one_hot(idx, n)
    sel = b.add(node, "constant", (), {}, {"value": select}, shape=select.shape,
                suffix=".select")
    return b.add(node, "matmul", (sel.name, x.name), {"transpose_b": False, "alpha": 1.0},
                 shape=(idx.shape[0], idx.shape[1], b.shapes[x.name][-1]), suffix=".gathered")


def _transposed(b: Any, node: Any, x: Act, idx: np.ndarray) -> Act:
    """x (A, n, T) by idx (A, K, T) that differs along T: x permuted to (A, T, n), each of
    the A T rows gathered along its last axis, permuted back to (A, K, T)."""
    (a, n, t), k = b.shapes[x.name], idx.shape[1]
    xt = b.add(node, "permute", (x.name,), {"perm": (0, 2, 1)}, shape=(a, t, n),
               suffix=".last")
    rows = lowering_seq.reshaped(b, node, xt, (a * t, 1, n), ".rows_in")
    y = _along_last(b, node, rows, idx.transpose(0, 2, 1).reshape(a * t, k), n)
    y = lowering_seq.reshaped(b, node, y, (a, t, k), ".rows_out")
    return b.add(node, "permute", (y.name,), {"perm": (0, 2, 1)}, shape=(a, k, t),
                 suffix=".back")


def repeat_interleave(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.repeat_interleave(x, repeats: int, dim, output_size). Along the batch's axis
    (GCViT's global query repeated over the windows folded into the batch,
    ``q_global.repeat_interleave(B * nW // B, dim=0)``) each sample's rows stay together:
    index o * (batch * inner) + s * inner + i goes to (o * (batch * inner) + s * inner + i) * r
    + j, so the batch's digit grows to inner * r and per sample it is the same repeat of the
    axis's own part, or, where the axis holds the batch alone, r copies on a new axis."""
    x = _act(b, node, args[0], "repeat_interleave input")
    repeats, dim = int(args[1]), _arg(args, kwargs, 2, "dim", None)
    if dim is None:
        b.fail(node, "repeat_interleave of the flattened tensor (no dim); only along an axis")
    rank = node.meta["val"].dim()
    dim = int(dim) % rank
    axis = lowering_seq.axis_map(b, node.args[0])[dim]
    p, inner = lowering_seq.digit(b, node.args[0])
    if dim == p:
        if repeats == 1:
            return x
        b.batch_axes[node.name] = (p, inner * repeats)
        if axis is None:  # the batch alone: a new per-sample axis of r copies
            axis = lowering_seq.axis_map(b, node)[dim]
            shape = b.shapes[x.name]
            x = lowering_seq.reshaped(b, node, x, shape[:axis] + (1,) + shape[axis:],
                                      suffix=".copies")
            return lowering_seq.rows(b, node, x, np.ones((repeats, 1)), axis)
    n = b.shapes[x.name][axis]
    return lowering_seq.rows(b, node, x, np.eye(n)[np.arange(n * repeats) // repeats], axis)


def index_add(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.index_add(base, dim, index, source, alpha) onto a constant zero base by a constant
    index along a per-sample axis (Kimi-K2.5's tower pools the frames of each merged token
    into zeros: ``pooled.index_add_(0, destination, patches * weight)``): a 0/1 scatter
    selector, S[index[j], j] = alpha, times the source along that axis (``rows``). The
    batch's own axis is per-sample only in a one-sample trace (``index_rows``)."""
    base, dim, index, source = args[0], int(args[1]), args[2], args[3]
    alpha = float(_arg(args, kwargs, 4, "alpha", 1))
    if not isinstance(base, torch.Tensor) or bool(base.any()) or not isinstance(
            index, torch.Tensor) or index.dim() != 1 or not isinstance(source, Act):
        b.fail(node, "index_add of an activation, or by a computed index, or onto a non-zero "
                     "base; only a constant index adding into zeros (a scatter selector)")
    rank = node.meta["val"].dim()
    dim %= rank
    axis = lowering_seq.axis_map(b, node.args[3])[dim]
    if axis is None or (dim == lowering_seq.digit(b, node.args[3])[0] and b.batch != 1):
        b.fail(node, f"index_add along dim {dim}, the batch axis; only along per-sample axes")
    n_out, n_src = int(base.shape[dim]), int(index.shape[0])
    scatter = np.zeros((n_out, n_src))
    np.add.at(scatter, (index.to(torch.int64).numpy() % n_out, np.arange(n_src)), alpha)
    if dim == lowering_seq.digit(b, node.args[3])[0]:
        b.batch_axes[node.name] = (dim, n_out)
    return lowering_seq.rows(b, node, source, scatter, axis)


def index_put(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.index_put(base, [idx], values) of an activation into a constant base by one
    constant 1-D index along its first axis, a per-sample axis (Inkling-2's tower places its
    patches between the class tokens of each image: ``embeddings[patch_index] = patches``):
    the values scattered by a 0/1 selector S[idx[j], j] = 1 (``rows``), plus the base with
    the written rows zeroed (a constant add). The batch's own axis is per-sample only in a
    one-sample trace (qasic.quant.grid_towers)."""
    base, indices, values = args[0], args[1], args[2]
    accumulate = bool(_arg(args, kwargs, 3, "accumulate", False))
    index = indices[0] if isinstance(indices, (list, tuple)) and len(indices) == 1 else None
    if not isinstance(base, torch.Tensor) or not isinstance(values, Act) or accumulate \
            or not isinstance(index, torch.Tensor) or index.dim() != 1 \
            or index.is_floating_point() or index.dtype == torch.bool:
        b.fail(node, "index_put of an activation into an activation, or by a computed or "
                     "boolean index, or accumulating; only an activation written into a "
                     "constant by one constant 1-D index along the first axis")
    value_node = node.args[2]
    axis = lowering_seq.axis_map(b, value_node)[0]
    if axis is None or (lowering_seq.digit(b, value_node)[0] == 0 and b.batch != 1) \
            or tuple(value_node.meta["val"].shape[1:]) != tuple(base.shape[1:]):
        b.fail(node, "index_put along the batch axis, or of values not the shape of the "
                     "base's rows; only rows of a per-sample axis")
    n_out, n_src = int(base.shape[0]), int(index.shape[0])
    picks = index.to(torch.int64).numpy() % n_out
    if len(set(picks.tolist())) != n_src:
        b.fail(node, "index_put writing one row twice; only distinct rows")
    scatter = np.zeros((n_out, n_src))
    scatter[picks, np.arange(n_src)] = 1.0
    if lowering_seq.digit(b, value_node)[0] == 0:
        b.batch_axes[node.name] = (0, n_out)
    y = lowering_seq.rows(b, node, values, scatter, axis)
    kept = base.detach().clone()
    kept[torch.from_numpy(picks)] = 0
    if not bool(kept.any()):
        return y
    from qasic.quant.lowering_pointwise import constant_add  # it imports this module

    return constant_add(b, node, y, kept)


HANDLERS = {aten.gather.default: gather, aten.repeat_interleave.self_int: repeat_interleave,
            aten.index_add_.default: index_add, aten.index_add.default: index_add,
            aten.index_put_.default: index_put, aten.index_put.default: index_put}


def index_rows(b: Any, node: Any, x: Any, indices: list) -> Act | None:
    """aten.index.Tensor(x, [None, ..., idx]) by one constant 1-D integer index along a
    per-sample axis (Qwen2.5-VL's ``hidden_states[window_index]``: the patches in window
    order): a 0/1 selector along that axis (``lowering_seq.rows``); None for any other
    indexing. The batch's own axis is per-sample only in a trace of one sample (a packing
    tower's, qasic.quant.grid_towers), where it holds that sample's rows."""
    at = [i for i, v in enumerate(indices) if v is not None]
    if not isinstance(x, Act) or len(at) != 1:
        return None
    d, idx = at[0], indices[at[0]]
    if not isinstance(idx, torch.Tensor) or idx.dim() != 1 or idx.is_floating_point() \
            or idx.dtype == torch.bool:
        return None
    axis = lowering_seq.axis_map(b, node.args[0])[d]
    if axis is None or (d == lowering_seq.digit(b, node.args[0])[0] and b.batch != 1):
        return None
    n = b.shapes[x.name][axis]
    picks = idx.to(torch.int64).numpy() % n
    if d == lowering_seq.digit(b, node.args[0])[0]:  # the sample's rows: as many as picked
        b.batch_axes[node.name] = (d, len(picks))  # (Inkling-2's patches without its class
        return lowering_seq.rows(b, node, x, np.eye(n)[picks], axis)  # tokens)
    # features of a view of a linear's output (Falcon's multi-query fused QKV viewed as
    # (S, H + 2, Dh), its key and value picked by [..., [-2], :] and [..., [-1], :]): a linear
    # of those weight rows, as a slice is, so generation caches the key and value alone
    shape = b.shapes[x.name]
    part = lowering_seq.feature_part(b, node, x, axis, np.eye(n)[picks],
                                     shape[:axis] + (len(picks),) + shape[axis + 1:],
                                     ".pick" + "_".join(map(str, picks)))
    return part if part is not None else lowering_seq.rows(b, node, x, np.eye(n)[picks], axis)
