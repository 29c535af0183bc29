"""Relative shifts at capture: views that re-factor the last two axes of attention scores,
slices and constant index selections of them, followed as one constant map of each (batch,
head) plane (Transformer-XL / XLNet's ``rel_shift``).

XLNet shifts its position scores bd (B, N, I, J), J the relative positions, so that entry
(i, j) reads relative position j - i:

    x = bd.reshape(B, N, J, I)[:, :, 1:, :].reshape(B, N, I, J - 1)
    x = torch.index_select(x, 3, torch.arange(klen))

The chain starts at a view of the scores (..., I, J) as (..., J, I) read only by a slice of its
rows (the shift's signature). Per (batch, head) plane each output element is one element of the
input plane at a known place: a view of the plane as (P, Q) with the same element count re-
factors the flat index, a slice or an ``index_select`` by a constant index along either of its
two axes selects from it. Capture follows the chain symbolically (``PlaneMap``: the source
activation and, per output element, its flat index in the source plane) and makes it when
anything else reads it (``materialize``): element (p, q) reads source row r = idx // J, column
idx % J; for each row offset d = r - p one 0/1 row selection (none for offset 0 with as many
rows) and one per-row gather along the last axis (a matmul (planes, P, 1, J) @ (planes, P, J,
Q) by a constant 0/1 selector per row, columns of the other offsets zero, as DeBERTa's gather
in ``lowering_gather``), the parts added.
XLNet's bidirectional shift reads each row's own source row (one gather); the causal one also
reads the next row in its masked upper triangle (two parts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from qasic.quant import lowering_seq
from qasic.quant.lowering import Act, _arg

aten = torch.ops.aten
_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)
_SAME = (aten.alias.default, aten.clone.default, aten.contiguous.default,
         aten.lift_fresh_copy.default)


@dataclass(frozen=True, eq=False)
class PlaneMap:
    """``src`` (per-sample (..., I, J)) read per plane at the flat indices ``index`` (P, Q):
    element (..., p, q) of this value is plane element ``index[p, q]`` of src."""

    src: Act
    plane: tuple[int, int]
    index: np.ndarray


def _refactors(b: Any, node: Any, x: Any) -> bool:
    """The shift's first view: of an activation (sequence mode) (..., I, J) as (..., J, I),
    every other axis kept, the batch among them and the plane the last two per-sample axes,
    read only by a slice along its rows (other views that swap the sizes, a chunked scan's,
    stay views)."""
    if not b.sequence or not isinstance(x, Act):
        return False
    src, out = tuple(node.args[0].meta["val"].shape), tuple(node.meta["val"].shape)
    if len(src) != len(out) or len(src) < 3 or src[:-2] != out[:-2] or src[-2:] == out[-2:] \
            or out[-2:] != src[-2:][::-1]:
        return False
    users = list(node.users)
    if len(users) != 1 or users[0].target is not aten.slice.Tensor \
            or int(users[0].args[1]) % len(out) != len(out) - 2:
        return False
    return lowering_seq.digit(b, node.args[0])[0] < len(src) - 2 \
        and b.shapes[x.name][-2:] == src[-2:]


def viewed(handler: Any) -> Any:
    """The view handler, taking over a view that re-factors the last two axes (a PlaneMap)."""
    def wrapped(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        if _refactors(b, node, args[0]):
            i, j = (int(s) for s in node.args[0].meta["val"].shape[-2:])
            p, q = (int(s) for s in node.meta["val"].shape[-2:])
            return PlaneMap(args[0], (i, j), np.arange(i * j).reshape(p, q))
        return handler(b, node, args, kwargs)
    return wrapped


def apply(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """An op reading a PlaneMap: views, slices and constant index selections of its plane
    follow it; anything else gets it made (``materialize``) and None back (the caller goes
    on with the made activation in ``args``)."""
    x, t = args[0], node.target
    rank = node.meta["val"].dim() if hasattr(node.meta.get("val"), "dim") else -1
    if isinstance(x, PlaneMap) and rank >= 3:
        out = tuple(int(s) for s in node.meta["val"].shape)
        src = tuple(int(s) for s in node.args[0].meta["val"].shape)
        if t in _SAME or (t in _VIEWS and out == src):
            return x
        if t in _VIEWS and len(src) == rank and src[:-2] == out[:-2]:
            return replace(x, index=x.index.reshape(out[-2:]))
        dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank if t in (
            aten.slice.Tensor, aten.index_select.default) else None
        if t is aten.slice.Tensor and dim is not None and dim >= rank - 2:
            start, end = _arg(args, kwargs, 2, "start", None), _arg(args, kwargs, 3, "end", None)
            step = int(_arg(args, kwargs, 4, "step", 1))
            sel = [slice(None)] * 2
            sel[dim - rank + 2] = slice(start, end, step)
            return replace(x, index=x.index[tuple(sel)])
        if t is aten.index_select.default and dim is not None and dim >= rank - 2 \
                and isinstance(args[2], torch.Tensor):
            idx = args[2].detach().to(torch.int64).numpy()
            return replace(x, index=np.take(x.index, idx, axis=dim - rank + 2))
    for i, a in enumerate(args):
        if isinstance(a, PlaneMap):
            args[i] = materialize(b, node, a)
        elif isinstance(a, (list, tuple)) and any(isinstance(v, PlaneMap) for v in a):
            args[i] = type(a)(materialize(b, node, v) if isinstance(v, PlaneMap) else v
                              for v in a)
    for k, a in list(kwargs.items()):
        if isinstance(a, PlaneMap):
            kwargs[k] = materialize(b, node, a)
    return None


def materialize(b: Any, node: Any, v: PlaneMap) -> Act:
    """The activation (..., P, Q) of ``v``: per row offset a row selection and a per-row
    gather along the last axis, the parts added (the module doc)."""
    lead = b.shapes[v.src.name][:-2]
    (i, j), (p, q) = v.plane, v.index.shape
    a = math.prod(lead)
    rows, cols = v.index // j, v.index % j
    offsets = rows - np.arange(p)[:, None]
    out = None
    for d in np.unique(offsets):
        d = int(d)
        tag = f".plane{d}".replace("-", "m")
        x = v.src
        if d != 0 or p != i:
            select = np.zeros((p, i))
            keep = (np.arange(p) + d >= 0) & (np.arange(p) + d < i)
            select[np.arange(p)[keep], np.arange(p)[keep] + d] = 1.0
            x = lowering_seq.rows(b, node, x, select, axis=len(lead), suffix=tag + ".rows",
                                  out_shape=lead + (p, j))
        # the rows (queries) stay an axis of their own, so a generation step reads its row of
        # the selector (by position) and a prefill its first rows and columns
        x = lowering_seq.reshaped(b, node, x, (a, p, 1, j), suffix=tag + ".rows_in")
        idx = np.where(offsets == d, cols, -1)
        onehot = (idx[..., None] == np.arange(j)).astype(np.float64)  # (p, q, j)
        value = np.broadcast_to(np.swapaxes(onehot, 1, 2), (a, p, j, q))
        sel = b.add(node, "constant", (), {}, {"value": value.copy()}, shape=value.shape,
                    suffix=tag + ".select")
        y = b.add(node, "matmul", (x.name, sel.name), {"transpose_b": False, "alpha": 1.0},
                  shape=(a, p, 1, q), suffix=tag + ".gathered")
        y = lowering_seq.reshaped(b, node, y, lead + (p, q), suffix=tag + ".out")
        out = y if out is None else b.add(node, "add", (out.name, y.name), shape=lead + (p, q),
                                          suffix=tag + ".sum")
    return out
