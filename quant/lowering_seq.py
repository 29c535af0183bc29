"""Sequence layout: capture of token and sequence models, whose graph layout is torch's own.

A model whose input is integer token ids (batch, S), or a float sequence (batch, S, D) run by
linear, normalization, softmax or attention ops and no convolution, is captured in *sequence
mode*: every per-sample shape is the torch shape without the batch axis ((S, D) sequences,
(H, S, Dh) heads), already channels last, so no layout conversion happens. A torch tensor whose
axis 0 merges the batch with another axis ((batch * S, D), as GPT-2's Conv1D views its input,
or (batch * H, S, Dh) for bmm) has per-sample shape (S, D) / (H, S, Dh): the batch is the
outermost factor of memory, so the samples stay contiguous.

Shape ops then are: a reshape (memory order is row-major on both sides, so any view of one
sample is a ``reshape``, a no-op when the shape does not change), a ``permute`` of the
per-sample axes (transposes that move only size-1 axes are reshapes), an expand that repeats
nothing, a slice or split of a linear layer's output features (a linear of the selected weight
rows; GPT-2's fused QKV), a select, slice or mean of sequence positions (x[:, 0], x[:, -1],
x.mean(1): a matmul by a constant selector, ``rows``), and a cat that only drops empty
constants (an empty KV cache) or joins along the last axis. This module holds those handlers
and the constants derived from activations' shapes; qasic.quant.lowering_transformer joins
them into the handler table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from qasic.quant.graph import SEQUENCE, TOKENS
from qasic.quant.lowering import Act, _act, _arg

aten = torch.ops.aten

# ops whose presence makes a float (batch, S, D) input a sequence; convolutions and pools keep
# the NCL layout of 1-D conv nets
_SEQUENCE_OPS = {aten.linear.default, aten.layer_norm.default, aten.native_layer_norm.default,
                 aten.rms_norm.default, aten.softmax.int, aten._softmax.default,
                 aten.matmul.default, aten.bmm.default, aten.scaled_dot_product_attention.default,
                 aten.embedding.default}
_SPATIAL_OPS = ("conv", "pool", "upsample", "batch_norm", "convolution")


def input_layout(ep: Any, user_input: Any) -> str | None:
    """TOKENS for integer ids, SEQUENCE for a float (batch, S, D) input of a graph with
    sequence ops and no spatial ones, else None (the NCHW / NCL layouts)."""
    val = user_input.meta["val"]
    if not val.dtype.is_floating_point and val.dtype != torch.bool:
        return TOKENS
    if val.dim() != 3:
        return None
    targets = [n.target for n in ep.graph.nodes if n.op == "call_function"]
    spatial = any(any(k in getattr(t, "__name__", "") for k in _SPATIAL_OPS) for t in targets)
    return SEQUENCE if not spatial and any(t in _SEQUENCE_OPS for t in targets) else None


def per_sample(b: Any, node: Any) -> tuple[int, ...]:
    """The fx node's shape without the batch: axis 0 is the batch, or batch * k (merged)."""
    val = node.meta["val"]
    val = val[0] if isinstance(val, (tuple, list)) else val
    shape = tuple(int(d) for d in val.shape)
    if not shape or shape[0] % b.batch:
        b.fail(node, f"a tensor of shape {shape} whose axis 0 is not a multiple of the batch "
                     f"{b.batch} (the op mixes samples)")
    return shape[1:] if shape[0] == b.batch else (shape[0] // b.batch,) + shape[1:]


def batch_offset(b: Any, arg: Any, x: Act) -> int:
    """1 when torch's axis 0 of ``arg`` is the batch alone, 0 when it merges batch * k."""
    return arg.meta["val"].dim() - len(b.shapes[x.name])


def reshape(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """view/reshape/flatten/unsqueeze/squeeze: memory order is unchanged, so the output is its
    input (same shape) or a reshape of the tensor before any reshape."""
    x = _act(b, node, args[0], "reshape input")
    out = per_sample(b, node)
    if math.prod(out) != math.prod(b.shapes[x.name]):
        b.fail(node, f"reshape of {b.shapes[x.name]} to {out} per sample mixes samples")
    prev = b.nodes.get(x.name)
    src = Act(prev.inputs[0]) if prev is not None and prev.op == "reshape" else x
    if out == b.shapes[src.name]:
        return src
    return b.add(node, "reshape", (src.name,), {"shape": out})


def transpose(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.transpose(x, d0, d1) (and t): a permute of two axes."""
    rank = node.args[0].meta["val"].dim()
    d0 = int(_arg(args, kwargs, 1, "dim0", 0)) % rank
    d1 = int(_arg(args, kwargs, 2, "dim1", 1)) % rank
    dims = list(range(rank))
    dims[d0], dims[d1] = d1, d0
    return _permuted(b, node, args[0], dims)


def permute(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    rank = node.args[0].meta["val"].dim()
    return _permuted(b, node, args[0], [int(d) % rank for d in args[1]])


def _permuted(b: Any, node: Any, x: Any, dims: list[int]) -> Act:
    x = _act(b, node, x, "permute input")
    if dims[0] != 0:
        b.fail(node, f"permute {dims} moves the batch axis")
    off = batch_offset(b, node.args[0], x)
    perm = tuple(d - off for d in dims[off:])
    if perm == tuple(range(len(perm))):
        return x
    shape = b.shapes[x.name]
    moved = [p for p in perm if shape[p] != 1]
    if moved == sorted(moved):  # only size-1 axes move: memory order is unchanged
        return reshape(b, node, [x], {})
    return b.add(node, "permute", (x.name,), {"perm": perm})


def expand(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """An expand that repeats nothing per sample (e.g. of the batch axis) is the input."""
    x = _act(b, node, args[0], "expand input")
    if per_sample(b, node) != b.shapes[x.name]:
        b.fail(node, f"expand of {b.shapes[x.name]} to {per_sample(b, node)} per sample "
                     "repeats an activation (e.g. grouped-query heads); only equal head counts")
    return x


def slice_(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.slice(x, dim, start, end, step): the whole axis is the input; a part of a linear
    layer's output features is a linear of those weight rows."""
    x = _act(b, node, args[0], "slice input")
    dim = int(_arg(args, kwargs, 1, "dim", 0))
    start, end = _arg(args, kwargs, 2, "start", None), _arg(args, kwargs, 3, "end", None)
    step = int(_arg(args, kwargs, 4, "step", 1))
    return _part(b, node, x, dim, range(*slice(start, end, step).indices(
        int(node.args[0].meta["val"].shape[dim]))))


def split(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten.split(x, size, dim) / split_with_sizes(x, sizes, dim): a tuple of slices."""
    x = _act(b, node, args[0], "split input")
    dim = int(_arg(args, kwargs, 2, "dim", 0))
    n = int(node.args[0].meta["val"].shape[dim])
    sizes = args[1] if isinstance(args[1], (list, tuple)) else \
        [min(int(args[1]), n - s) for s in range(0, n, int(args[1]))]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    return tuple(_part(b, node, x, dim, range(s, s + int(k)), i)
                 for i, (s, k) in enumerate(zip(starts, sizes)))


def select(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.select(x, dim, index) of a sequence position (x[:, 0], x[:, -1])."""
    x = _act(b, node, args[0], "select input")
    rank = node.args[0].meta["val"].dim()
    dim, size = int(args[1]) % rank, int(node.args[0].meta["val"].shape[int(args[1])])
    if dim != rank - 2 or dim < batch_offset(b, node.args[0], x):
        b.fail(node, f"a select of axis {dim} of an activation; only of sequence positions "
                     "(the second-to-last axis)")
    weights = np.zeros((1, size))
    weights[0, int(args[2]) % size] = 1.0
    return rows(b, node, x, weights)


def rows(b: Any, node: Any, x: Act, weights: np.ndarray) -> Act:
    """y = weights @ x over the sequence axis (the second-to-last): a ``constant`` selector
    (k, S) and a ``matmul`` (selection, slicing or averaging of positions), then a reshape to
    the node's shape."""
    shape = b.shapes[x.name]
    value = np.broadcast_to(weights, shape[:-2] + weights.shape).copy()
    sel = b.add(node, "constant", (), {}, {"value": value}, shape=value.shape, suffix=".rows")
    out = shape[:-2] + (len(weights), shape[-1])
    y = b.add(node, "matmul", (sel.name, x.name), {"transpose_b": False, "alpha": 1.0},
              shape=out)
    return y if per_sample(b, node) == out else reshape(b, node, [y], {})


def _part(b: Any, node: Any, x: Act, dim: int, sel: range, piece: int | None = None) -> Act:
    rank = node.args[0].meta["val"].dim()
    dim %= rank
    size = int(node.args[0].meta["val"].shape[dim])
    if sel == range(size):
        return x
    prev = b.nodes.get(x.name)
    if dim == rank - 2 and dim >= batch_offset(b, node.args[0], x):
        return rows(b, node, x, np.eye(size)[list(sel)])
    if dim != rank - 1 or prev is None or prev.op != "linear":
        b.fail(node, f"a slice of axis {dim} of an activation; only of sequence positions or "
                     "of a linear layer's output features (the last axis)")
    w, bias = prev.params["weight"], prev.params["bias"]
    tag = f".{piece}" if piece is not None else f".{sel.start}_{sel.stop}"
    shape = b.shapes[x.name][:-1] + (len(sel),)
    return b.add(node, "linear", prev.inputs, dict(prev.attrs),
                 {"weight": w[list(sel)], "bias": bias[list(sel)]}, shape=shape,
                 name=prev.name + tag)


def cat(b: Any, node: Any, args: list, kwargs: dict, fallback: Any = None) -> Act:
    """aten.cat: empty constants (an empty KV cache) drop out; activations join along the last
    axis (a concat)."""
    xs = [x for x in args[0] if isinstance(x, Act) or x.numel() > 0]
    if len(xs) == 1:
        return _act(b, node, xs[0], "cat input")
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    if not all(isinstance(x, Act) for x in xs) or dim != rank - 1:
        b.fail(node, f"cat along dim {dim} of a rank-{rank} tensor, or of a constant; only "
                     "activations along the last axis")
    return b.add(node, "concat", tuple(x.name for x in xs))


def identity(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """dropout (eval), clone, contiguous, alias, detach, casts to the same dtype: the value
    (an activation, or a symbolic one: a pointwise chain, a mask) passes through."""
    if node.target is aten.dropout.default and _arg(args, kwargs, 2, "train", False):
        b.fail(node, "dropout in training mode (call model.eval())")
    src, out = node.args[0].meta["val"], node.meta["val"]
    if src.dtype != out.dtype:
        b.fail(node, f"a cast from {src.dtype} to {out.dtype}; the model must stay in "
                     f"{src.dtype}")
    return args[0]


def stand_in(arg: Any) -> torch.Tensor:
    """A tensor of the fx argument's shape and dtype (for ops that read only those)."""
    val = arg.meta["val"]
    return torch.zeros(tuple(val.shape), dtype=val.dtype)


def like(node: Any, args: list, kwargs: dict) -> torch.Tensor:
    """ones_like(x), new_zeros(x, size), full_like(...): constants whatever x holds."""
    return node.target(stand_in(node.args[0]), *args[1:], **kwargs)


LIKE_OPS = {aten.ones_like.default, aten.zeros_like.default, aten.full_like.default,
            aten.empty_like.default, aten.new_ones.default, aten.new_zeros.default,
            aten.new_full.default, aten.new_empty.default}


HANDLERS = {
    aten.view.default: reshape,
    aten.reshape.default: reshape,
    aten._unsafe_view.default: reshape,
    aten.flatten.using_ints: reshape,
    aten.unsqueeze.default: reshape,
    aten.squeeze.dim: reshape,
    aten.squeeze.dims: reshape,
    aten.squeeze.default: reshape,
    aten.transpose.int: transpose,
    aten.t.default: transpose,
    aten.permute.default: permute,
    aten.expand.default: expand,
    aten.slice.Tensor: slice_,
    aten.select.int: select,
    aten.split.Tensor: split,
    aten.split_with_sizes.default: split,
    aten.cat.default: cat,
    aten.concat.default: cat,
    aten.dropout.default: identity,
    aten.feature_dropout.default: identity,
    aten.clone.default: identity,
    aten.alias.default: identity,
    aten.contiguous.default: identity,
    aten.detach.default: identity,
    aten.lift_fresh_copy.default: identity,
    aten._to_copy.default: identity,
    aten.to.dtype: identity,
    aten.to.dtype_layout: identity,
    aten.to.device: identity,
    aten.type_as.default: identity,
}
