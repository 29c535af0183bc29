"""In-place writes: a buffer filled by ``copy_`` into slices of its last axis.

torch.export keeps in-place ops: MiniCPM3 builds its key states as
``k = kv.new_empty(...); k[..., :n].copy_(k_nope); k[..., n:].copy_(k_rot)``. The copies have no
readers, so a walk of the values the output reads would skip them and read the empty buffer.
A fill (``fill_of``) is a buffer made by new_empty / new_zeros / empty / zeros whose other
readers all come after the last copy, written by copies into slices of its last axis (step 1)
that tile it: the buffer is the concat of the copied values, made at the last copy (``copy_``).
Any other in-place write into a value the output reads is refused (qasic.quant.torch_export).

In-place views (``unsqueeze_``, ``squeeze_``, ``transpose_``, ``t_``: BigBird's block-sparse
attention unsqueezes each block's context in place before a cat) change only the shape: the
functional view, when nothing reads the input after (``view_``); else refused (the reader would
see the new shape).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.lowering_pointwise import materialize

aten = torch.ops.aten

BUFFERS = (aten.new_empty.default, aten.new_zeros.default, aten.empty.memory_format,
           aten.zeros.default)


def fill_of(copy: fx.Node) -> list[tuple[fx.Node, int, int]] | None:
    """The copies (node, start, end) in graph order that fill the buffer ``copy`` writes, or
    None when it is no such fill."""
    view = copy.args[0] if copy.args else None
    base = view.args[0] if isinstance(view, fx.Node) and view.args else None
    if copy.target is not aten.copy_.default or not isinstance(base, fx.Node) \
            or base.target not in BUFFERS:
        return None
    order = {n: i for i, n in enumerate(copy.graph.nodes)}
    rank, n = base.meta["val"].dim(), int(base.meta["val"].shape[-1])
    copies, readers = [], []
    for user in base.users:
        part = _part(user, rank, n)
        writes = [u for u in user.users if u.target is aten.copy_.default and u.args[0] is user]
        if part is None or len(user.users) != 1 or len(writes) != 1:
            readers.append(user)
            continue
        copies.append((writes[0], *part))
    copies.sort(key=lambda c: order[c[0]])
    spans = sorted((s, e) for _, s, e in copies)
    tiles = [s for s, _ in spans] == [0] + [e for _, e in spans[:-1]] and spans[-1][1] == n \
        if spans else False
    if not tiles or any(order[r] < order[copies[-1][0]] for r in readers):
        return None
    return copies


def _part(view: fx.Node, rank: int, n: int) -> tuple[int, int] | None:
    """(start, end) of a step-1 slice of the last axis, or None."""
    if view.target is not aten.slice.Tensor or int(view.args[1]) % rank != rank - 1:
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
        b.fail(node, "an in-place copy_ other than into slices of the last axis of a new buffer "
                     "that tile it, read only after; build the tensor with torch.cat")
    base = node.args[0].args[0]
    parts = b.fills.setdefault(base.name, {})
    parts[node.name] = materialize(b, args[1])
    if node is not copies[-1][0]:
        return
    values = [parts[c.name] for c, _, _ in sorted(copies, key=lambda c: c[1])]
    if not all(hasattr(v, "name") and v.name in b.shapes for v in values):
        b.fail(node, "a buffer filled in place with a constant part; only with activations")
    b.env[base.name] = b.add(node, "concat", tuple(v.name for v in values),
                             shape=b.per_sample(base), suffix=".filled")
    return
