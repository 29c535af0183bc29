"""In-place writes: a buffer filled by ``copy_`` into slices of one axis.

torch.export keeps in-place ops: MiniCPM3 builds its key states as
``k = kv.new_empty(...); k[..., :n].copy_(k_nope); k[..., n:].copy_(k_rot)``. The copies have no
readers, so a walk of the values the output reads would skip them and read the empty buffer.
A fill (``fill_of``) is a buffer made by new_empty / new_zeros / empty / zeros / zeros_like /
empty_like whose other readers all come after the last copy, written by copies into slices
(step 1) or single indices (``select``: RecurrentGemma's scan writes ``out[:, t] = h_t`` token
by token) of one axis that tile it: the buffer is the concat of the copied values, made at the
last copy (``copy_``): along the last axis a ``concat``, along another per-sample axis the
values placed by 0/1 selectors and summed (``lowering_seq.rows``). Any other in-place write into
a value the output reads is refused (qasic.quant.torch_export).

In-place views (``unsqueeze_``, ``squeeze_``, ``transpose_``, ``t_``: BigBird's block-sparse
attention unsqueezes each block's context in place before a cat) change only the shape: the
functional view, when nothing reads the input after (``view_``); else refused (the reader would
see the new shape).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant.lowering_pointwise import materialize

aten = torch.ops.aten

BUFFERS = (aten.new_empty.default, aten.new_zeros.default, aten.empty.memory_format,
           aten.zeros.default, aten.zeros_like.default, aten.empty_like.default)
ZEROS = (aten.new_zeros.default, aten.zeros.default, aten.zeros_like.default)


def fill_of(copy: fx.Node) -> list[tuple[fx.Node, int, int]] | None:
    """The copies (node, start, end) in graph order that fill the buffer ``copy`` writes along
    its axis ``fill_axis``, or None when it is no such fill."""
    view = copy.args[0] if copy.args else None
    base = view.args[0] if isinstance(view, fx.Node) and view.args else None
    if copy.target is not aten.copy_.default or not isinstance(base, fx.Node) \
            or base.target not in BUFFERS:
        return None
    order = {n: i for i, n in enumerate(copy.graph.nodes)}
    rank, axis = base.meta["val"].dim(), fill_axis(copy)
    n = int(base.meta["val"].shape[axis])
    copies, readers = [], []
    for user in base.users:
        part = _part(user, rank, n, axis)
        writes = [u for u in user.users if u.target is aten.copy_.default and u.args[0] is user]
        if part is None or len(user.users) != 1 or len(writes) != 1:
            readers.append(user)
            continue
        copies.append((writes[0], *part))
    copies.sort(key=lambda c: order[c[0]])
    spans = sorted((s, e) for _, s, e in copies)
    tiles = tile(copies, n)
    gaps = base.target in ZEROS and axis != rank - 1 and bool(spans) \
        and all(s >= e for (s, _), (_, e) in zip(spans[1:], spans[:-1], strict=True))
    if not (tiles or gaps) or any(order[r] < order[copies[-1][0]] for r in readers):
        return None
    return copies


def tile(copies: list[tuple[fx.Node, int, int]], n: int) -> bool:
    """Whether the copies' spans tile [0, n) (no gap: a zero buffer's fill may keep gaps)."""
    spans = sorted((s, e) for _, s, e in copies)
    return bool(spans) and [s for s, _ in spans] == [0] + [e for _, e in spans[:-1]] \
        and spans[-1][1] == n


def fill_axis(copy: fx.Node) -> int:
    """The axis (of the buffer, >= 0) that the view ``copy`` writes into slices or selects."""
    view = copy.args[0]
    rank = view.args[0].meta["val"].dim()
    dim = view.args[1] if len(view.args) > 1 else 0
    return int(dim) % rank if view.target in (aten.slice.Tensor, aten.select.int) else rank - 1


def _part(view: fx.Node, rank: int, n: int, axis: int) -> tuple[int, int] | None:
    """(start, end) of a step-1 slice (or one index) of ``axis``, or None."""
    if view.target is aten.select.int and int(view.args[1]) % rank == axis:
        i = int(view.args[2]) % n
        return i, i + 1
    if view.target is not aten.slice.Tensor or int(view.args[1]) % rank != axis:
        return None
    args = list(view.args) + [None] * (5 - len(view.args))
    start, end, step = args[2], args[3], args[4] or 1
    r = range(*slice(start, end, step).indices(n))
    return (r.start, r.stop) if step == 1 and len(r) else None


VIEWS = {aten.unsqueeze_.default: aten.unsqueeze.default, aten.squeeze_.dim: aten.squeeze.dim,
         aten.squeeze_.default: aten.squeeze.default, aten.transpose_.default: aten.transpose.int,
         aten.t_.default: aten.t.default}


def view_(handlers: dict) -> Any:
    """The handler of an in-place view: ``handlers``' of its functional form."""
    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        after, n = set(), node.next
        while n.op != "root":
            after.add(n)
            n = n.next
        if any(u in after for u in node.args[0].users):
            b.fail(node, f"an in-place {node.target} of a tensor read again after it; only "
                         "of one read by nothing else after (use the functional view)")
        return handlers[VIEWS[node.target]](b, node, args, kwargs)
    return handler


def copy_(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """One copy of a fill: its value kept; at the last, the buffer becomes the concat of the
    values in slice order."""
    copies = fill_of(node)
    if copies is None:
        b.fail(node, "an in-place copy_ other than into slices of one axis of a new buffer "
                     "that tile it, read only after, or over a whole value no view of which "
                     "is read after; build the tensor with torch.cat")
    base = node.args[0].args[0]
    parts = b.fills.setdefault(base.name, {})
    parts[node.name] = materialize(b, args[1])
    if node is not copies[-1][0]:
        return
    ordered = sorted(copies, key=lambda c: c[1])
    values = [parts[c.name] for c, _, _ in ordered]
    if not all(hasattr(v, "name") and v.name in b.shapes for v in values):
        b.fail(node, "a buffer filled in place with a constant part; only with activations")
    axis, full = fill_axis(node), b.per_sample(base)
    if axis == base.meta["val"].dim() - 1:
        b.env[base.name] = b.add(node, "concat", tuple(v.name for v in values), shape=full,
                                 suffix=".filled")
        return
    if axis == 0 or len(full) != base.meta["val"].dim() - 1:
        b.fail(node, f"an in-place fill along axis {axis} of a buffer of shape "
                     f"{tuple(base.meta['val'].shape)}; only along a per-sample axis (the "
                     "batch first)")
    b.env[base.name] = _placed(b, node, values, ordered, axis - 1, full)


def _placed(b: Any, node: Any, values: list, ordered: list, axis: int, full: tuple) -> Any:
    """The values (each its part of ``axis``, or the part without it: a select) placed along
    per-sample ``axis`` of ``full`` by 0/1 selectors and summed."""
    from qasic.quant.lowering_seq import reshaped, rows

    out = None
    for k, (v, (_, start, end)) in enumerate(zip(values, ordered, strict=True)):
        part = full[:axis] + (end - start,) + full[axis + 1:]
        if b.shapes[v.name] != part:
            v = reshaped(b, node, v, part, suffix=f".part{k}")
        place = np.zeros((full[axis], end - start))
        place[start + np.arange(end - start), np.arange(end - start)] = 1.0
        y = rows(b, node, v, place, axis, suffix=f".fill{k}", out_shape=full)
        out = y if out is None else b.add(node, "add", (out.name, y.name), shape=full,
                                           suffix=f".filled{k}")
    return out
