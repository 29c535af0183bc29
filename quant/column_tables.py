"""Piecewise functions of each element of one activation, computed along a new last axis from
constant tables, rewritten before capture as one function of x per column of that axis:

    y = f(x.unsqueeze(-1), T)   (..., C, J)   ->   y = cat([f_j(x).unsqueeze(-1), ...], -1)

efficient-kan's B-spline bases (Cox-de Boor from ``(x >= grid[:, :-1]) & (x < grid[:, 1:])``,
then ``(x - grid[:, :-(k+1)]) / (...) * bases[:, :, :-1] + ...``) are such an f: column j of
the bases is a cubic piece of x per grid interval. Every op between the unsqueeze and the
region's readers is pointwise (an op of qasic.quant.pointwise), a slice along the new axis or a
cast, and reads besides x only constants, so column j is a function of x alone, f_j: an
expression tree (qasic.quant.pointwise) whose constants are the tables' column j, one
``qasic::column_fn`` node. When each of those constants is one value across the channels (the
grid as efficient-kan builds it: one row expanded over the inputs), f_j is the same function of
every element of x, and capture makes it one ``lut`` of x (``lower``: a table of 2^B entries
is exact for any function of one B-bit code). Constants that differ between the channels (a
grid after efficient-kan's update_grid) would need a table per channel: refused in one line.

Only a region that compares x with a constant table runs so (capture refuses that comparison
otherwise); any other region stays as it is.
"""

from __future__ import annotations

import ast
from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant import pointwise as pw
from qasic.quant.functions import FUNCTIONS
from qasic.quant.fxnodes import DROP, rebuild

aten = torch.ops.aten
# aten ops -> their pointwise op (by name otherwise: aten.<op of pw.OPS>, or a function of
# qasic.quant.functions without arguments: aten.silu); a logical and of 0/1 values is their
# product
AS = {aten.__and__.Tensor: "mul", aten.bitwise_and.Tensor: "mul",
      aten.logical_and.default: "mul", aten.true_divide.Tensor: "div"}
# a cast passes its column through (0/1 values are the floats 0.0 / 1.0 in a tree)
CASTS = {aten.to.dtype, aten._to_copy.default, aten.clone.default, aten.alias.default}
COMPARISONS = {getattr(aten, c).Tensor for c in ("ge", "gt", "le", "lt", "eq", "ne")}
CHECKS = {aten._assert_tensor_metadata.default}  # a dtype check; it goes with the region
ARITY = {**dict.fromkeys(("add", "sub", "mul", "div", "pow", "remainder", "minimum", "maximum",
                         *pw.COMPARISONS), 2), "where": 3}  # the others: 1
CONST = "k"  # a tree leaf ("k", i): the value of column_fn's i-th constant


@torch.library.custom_op("qasic::column_fn", mutates_args=())
def column_fn(x: torch.Tensor, consts: list[torch.Tensor], tree: str) -> torch.Tensor:
    """``tree`` (a pointwise tree, repr) of each element of ``x``, its leaf ("k", i) the one
    value of ``consts[i]``."""
    values = [one_value(c) for c in consts]
    if None in values:
        raise ValueError(f"column_fn: a constant differs between the channels ({values})")
    out = pw.evaluate(bind(ast.literal_eval(tree), values), x.detach().double().numpy())
    return torch.from_numpy(np.asarray(out, np.float64)).to(x.dtype)


@column_fn.register_fake
def _(x: torch.Tensor, consts: list[torch.Tensor], tree: str) -> torch.Tensor:
    return x.new_empty(x.shape)


def one_value(c: torch.Tensor) -> float | None:
    """The one value of every element of ``c``, else None."""
    flat = c.reshape(-1)
    return float(flat[0]) if bool((flat == flat[0]).all()) else None


def bind(tree: tuple, values: list[float], x: tuple = pw.X) -> tuple:
    """``tree`` with each ("k", i) the constant values[i] and ("x",) the tree ``x``."""
    if tree[0] == CONST:
        return pw.const(values[tree[1]])
    if tree == pw.X:
        return x
    if tree[0] == "c":
        return tree
    if tree[0] == "fn":
        return (*tree[:3], bind(tree[3], values, x))
    return (tree[0], *(bind(c, values, x) for c in tree[1:]))


def lower(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """column_fn(x, consts, tree) in capture: a pointwise value of x (one ``lut`` where it is
    read as a tensor: qasic.quant.lowering_pointwise), refused when a constant differs between
    the channels."""
    from qasic.quant.lowering_pointwise import Pointwise, _tree, materialize

    values = [one_value(c) for c in args[1]]
    if None in values:
        b.fail(node, "a function of each element of an activation computed from constants that "
                     "differ between its channels (efficient-kan's grid after update_grid): "
                     "capture makes one table per column shared by the channels, not one per "
                     "channel; keep the grid the same for every input (efficient-kan's as "
                     "built)")
    x = _tree(materialize(b, args[0]))
    if x is None or x[0] is None:
        b.fail(node, "a function of each element of a value that is not an activation")
    src, t = x
    value = Pointwise(src, bind(ast.literal_eval(args[2]), values, t), node)
    return value if b.sequence else materialize(b, value)


HANDLERS = {torch.ops.qasic.column_fn.default: lower}


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when no activation's unsqueeze starts such a region, else a copy with
    each region's readers reading the concatenation of its columns."""
    fed: set[fx.Node] = set()
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    if not any(n.target in COMPARISONS and any(_table(a, fed) for a in n.args)
               for n in graph.nodes):
        return graph
    regions = [r for n in graph.nodes if (r := _region(n, fed)) is not None]
    if not regions:
        return graph
    exits = {e: r for r in regions for e in r.exits}
    inside = set().union(*(r.nodes for r in regions))
    return rebuild(graph, lambda new, node, env: exits[node].emit(new, env, node)
                   if node in exits else DROP if node in inside else None)


def _region(start: fx.Node, fed: set[fx.Node]) -> _Region | None:
    """The region ``start`` (x.unsqueeze(-1) of a float activation x with channels: not a
    count per sample, ``arange(T) < lengths[:, None]``, which qasic.quant.lengths makes a mask)
    begins, when it compares x with a constant table and every value read after it is a
    float; else None."""
    if start.target is not aten.unsqueeze.default or start not in fed:
        return None
    x = start.args[0]
    val = x.meta.get("val") if isinstance(x, fx.Node) else None
    if not isinstance(val, torch.Tensor) or not val.is_floating_point() or val.dim() < 2 \
            or int(start.args[1]) % (val.dim() + 1) != val.dim():
        return None
    nodes = {start}
    for n in start.graph.nodes:  # in order: a node's operands are decided before it
        if any(a in nodes for a in n.all_input_nodes) and _member(n, start, nodes, fed):
            nodes.add(n)
    exits = [n for n in start.graph.nodes if n in nodes
             and any(u not in nodes and u.target not in CHECKS for u in n.users)]
    tabled = any(n.target in COMPARISONS and any(_table(a, fed) for a in n.args) for n in nodes)
    if not tabled or start in exits \
            or not all(e.meta["val"].dtype.is_floating_point for e in exits):
        return None
    nodes |= {u for n in nodes for u in n.users if u.target in CHECKS}
    return _Region(start, nodes, exits)


def _member(node: fx.Node, start: fx.Node, nodes: set[fx.Node], fed: set[fx.Node]) -> bool:
    """Whether ``node`` computes each element of the region's axes from the same element of
    its region operands and constants alone, by an op a tree holds."""
    val = node.meta.get("val")
    lead = start.meta["val"].shape[:-1]
    if node.op != "call_function" or not isinstance(val, torch.Tensor) \
            or val.shape[:-1] != lead or any(a in fed and a not in nodes
                                               for a in node.all_input_nodes):
        return False
    if node.target is aten.slice.Tensor:  # along the new axis only, step 1
        return int(node.args[1]) % val.dim() == val.dim() - 1 \
            and (len(node.args) < 5 or node.args[4] == 1)
    if node.target in CASTS:
        return True
    name = _op_name(node)
    return name is not None and not node.kwargs and len(node.args) == ARITY.get(name, 1) \
        and all(isinstance(a, (fx.Node, int, float)) and not isinstance(a, bool)
                for a in node.args)


def _op_name(node: fx.Node) -> str | None:
    """The pointwise op (or function) of qasic.quant.pointwise ``node`` is, else None."""
    if node.target in AS:
        return AS[node.target]
    name = getattr(node.target, "__name__", "").split(".")[0]
    if name in pw.OPS and torch.Tag.pointwise in getattr(node.target, "tags", ()):
        return name
    return name if name in FUNCTIONS and len(node.args) == 1 else None


def _table(a: Any, fed: set[fx.Node]) -> bool:
    """Whether ``a`` is a constant tensor of more than one value (a table of thresholds)."""
    val = a.meta.get("val") if isinstance(a, fx.Node) else None
    return a not in fed and isinstance(val, torch.Tensor) and val.numel() > 1


class _Region:
    """The ops from ``start`` = x.unsqueeze(-1) to the ``exits`` (the values read outside)."""

    def __init__(self, start: fx.Node, nodes: set[fx.Node], exits: list[fx.Node]):
        self.start, self.nodes, self.exits = start, nodes, exits

    def emit(self, new: fx.Graph, env: dict, exit_: fx.Node) -> fx.Node:
        """``exit_``'s value as the concatenation of its columns (one column_fn each) along
        the last axis."""
        x = env[self.start.args[0]]
        cols = []
        for j in range(exit_.meta["val"].shape[-1]):
            consts: list[fx.Node] = []
            tree = self._tree(exit_, j, consts)
            picked = [env[c] if k is None else _emit(new, exit_, aten.select.int, (env[c], -1, k))
                      for c, k in consts]
            y = _emit(new, exit_, torch.ops.qasic.column_fn.default, (x, picked, repr(tree)))
            cols.append(_emit(new, exit_, aten.unsqueeze.default, (y, -1)))
        return _emit(new, exit_, aten.cat.default, (cols, -1))

    def _tree(self, node: fx.Node, j: int, consts: list) -> tuple:
        """Column j of region ``node``'s value as a tree of x; ``consts`` collects the
        (constant node, column) its ("k", i) leaves read."""
        if node is self.start:
            return pw.X
        if node.target in CASTS:
            return self._tree(node.args[0], j, consts)
        if node.target is aten.slice.Tensor:
            size = node.args[0].meta["val"].shape[-1]
            first = node.args[2] if len(node.args) > 2 and node.args[2] is not None else 0
            first = min(max(first + size if first < 0 else first, 0), size)
            return self._tree(node.args[0], first + j, consts)
        kids = [self._operand(a, j, consts) for a in node.args]
        name = _op_name(node)
        if name in pw.OPS:
            return pw.op(name, *kids)
        return pw.fn(name, {}, kids[0])

    def _operand(self, a: Any, j: int, consts: list) -> tuple:
        if not isinstance(a, fx.Node):
            return pw.const(a)
        val = a.meta["val"]
        col = j if val.dim() and val.shape[-1] > 1 else 0
        if a in self.nodes:
            return self._tree(a, col, consts)
        key = (a, col) if val.dim() else (a, None)
        if key not in consts:
            consts.append(key)
        return (CONST, consts.index(key))


def _emit(g: fx.Graph, node: fx.Node, target: Any, args: tuple) -> fx.Node:
    """``target(*args)`` appended to ``g`` with ``node``'s metadata and the meta value torch
    gives it."""
    out = g.call_function(target, args)
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = target(*_vals(args))
    return out


def _vals(a: Any) -> Any:
    if isinstance(a, fx.Node):
        return a.meta["val"]
    if isinstance(a, (list, tuple)):
        return type(a)(_vals(v) for v in a)
    return a
