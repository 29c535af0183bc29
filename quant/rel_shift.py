"""Transformer-XL's ``_rel_shift`` of relative scores rewritten, before capture, into the
relative scores it computes (kimiyoung/transformer-xl mem_transformer.py, transformers'
TransfoXL). ``x = einsum('ibnd,jnd->ijbn', q, r)``: q (queries q, ...) an activation, r (k
relative positions, ...) a constant (projected sinusoids); the shift pads a zero column before
x's keys, views the (q, k + 1) rows as (k + 1, q), drops the first and views back as x:

    shifted[i, j] = x[i, j + q - 1 - i]     for j <= i + k - q (the keys query i may see)
                    x[i + 1, ...] or 0      beyond (the next query's row: masked causally)

The views mix query i + 1's scores into query i's masked keys, so generation, which runs each
query on its own row, refused the model ('an operand that keeps the full model's positions').
The rewrite indexes the constant instead: ``einsum('ibnd,ijnd->ijbn', q, r[idx])`` with
idx[i, j] = j + q - 1 - i (clamped where masked), a constant per (query, key) as a relative
position bias: the same values at every key a causal softmax reads. It runs before the row
'einsum' (which then lowers the new einsum)."""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant.fxnodes import like, rebuild

aten = torch.ops.aten
ZEROS = (aten.zeros.default, aten.new_zeros.default, aten.zeros_like.default)
CATS = (aten.cat.default, aten.concat.default)
VIEWS = (aten.view.default, aten.reshape.default, aten.view_as.default,
         aten._unsafe_view.default)
EINSUM = aten.einsum.default


def indices(q: int, k: int) -> np.ndarray:
    """idx (q, k): shifted[i, j] reads x[i, idx[i, j]] (clamped to the last key beyond)."""
    i, j = np.ogrid[:q, :k]
    return np.minimum(j + q - 1 - i, k - 1).astype(np.int64)


def _shape(node: Any) -> tuple[int, ...] | None:
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return tuple(int(d) for d in val.shape) if val is not None else None


def _only_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _constant(node: Any, users: set[str], seen: dict) -> bool:
    if not isinstance(node, fx.Node):
        return True
    if node not in seen:
        seen[node] = (node.op != "placeholder" or node.target not in users) and all(
            _constant(a, users, seen) for a in node.all_input_nodes)
    return seen[node]


def _relative(x: Any, users: set[str], seen: dict) -> tuple[str, str, str] | None:
    """(a, b, out) of ``x = einsum('a,b->out', act, const)`` whose key index out[1] is the
    constant's alone and whose query index out[0] is not the constant's."""
    if not isinstance(x, fx.Node) or x.target is not EINSUM or len(x.args[1]) != 2:
        return None
    eq = str(x.args[0]).replace(" ", "")
    if "..." in eq or "->" not in eq:
        return None
    ins, out = eq.split("->")
    a, b = ins.split(",")
    act, const = x.args[1]
    if len(out) < 2 or not _constant(const, users, seen) or _constant(act, users, seen):
        return None
    i, j = out[0], out[1]
    if j not in b or j in a or i in b or i not in a or b.count(j) != 1:
        return None
    return a, b, out


def _shifted(node: fx.Node, users: set[str], seen: dict) -> tuple[fx.Node, fx.Node] | None:
    """(the last view of ``_rel_shift(x)``, x) when ``node`` is its concat (module doc)."""
    if node.op != "call_function" or node.target not in CATS:
        return None
    parts = node.args[0]
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    if len(parts) != 2 or dim != 1 or not isinstance(parts[0], fx.Node) \
            or parts[0].target not in ZEROS or _relative(parts[1], users, seen) is None:
        return None
    x = parts[1]
    xs, zs = _shape(x), _shape(parts[0])
    if xs is None or zs is None or len(xs) < 2 or zs != (xs[0], 1, *xs[2:]):
        return None
    q, k = xs[:2]
    view = _only_user(node)
    if view is None or view.target not in VIEWS or _shape(view) != (k + 1, q, *xs[2:]):
        return None
    cut = _only_user(view)
    if cut is None or cut.target is not aten.slice.Tensor or tuple(cut.args[1:3]) != (0, 1) \
            or (len(cut.args) > 4 and cut.args[4] != 1) or _shape(cut) != (k, q, *xs[2:]):
        return None
    back = _only_user(cut)
    if back is None or back.target not in VIEWS or _shape(back) != xs \
            or set(x.users) - {node, back}:  # (view_as(., x) reads x's shape)
        return None
    return back, x


def decompose(graph: fx.Graph, users: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no rel shift of relative scores, else a copy with each
    the einsum of the indexed constant (module doc)."""
    seen: dict = {}
    found = dict(s for n in graph.nodes if (s := _shifted(n, users, seen)) is not None)
    if not found:
        return graph
    return rebuild(graph, partial(_replace, found, users, seen))


def _replace(found: dict, users: set[str], seen: dict, new: fx.Graph, node: fx.Node,
             env: dict) -> fx.Node | None:
    if node not in found:
        return None
    x = found[node]
    a, b, out = _relative(x, users, seen)
    q, k = _shape(x)[:2]
    act, const = (env[t] for t in x.args[1])
    idx = like(new, node, _tensor, (torch.from_numpy(indices(q, k)),))
    at = b.index(out[1])  # the key axis of the constant, indexed by (q, k)
    table = like(new, node, aten.index.Tensor, (const, [*([None] * at), idx]))
    eq = f"{a},{b[:at]}{out[0]}{b[at:]}->{out}"
    return like(new, node, EINSUM, (eq, [act, table]))


def _tensor(t: torch.Tensor) -> Any:
    return t
