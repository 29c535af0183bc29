"""``aten.einsum`` of two operands, rewritten at capture into the ops it is made of: permutes
and reshapes around one matmul, so the shape and matmul handlers (qasic.quant.lowering_seq,
qasic.quant.lowering_transformer) lower it, batch tracking and constant operands included.

For ``a,b->out`` each index is a *batch* axis (in a, b and out), a *contracted* one (in a and b,
not out) or a *free* one (in one operand and out). With batch axes: a as (batch..., M, K), b as
(batch..., K, N) (M, K, N: the free and contracted axes merged); without: the operand with more
free axes keeps them as leading axes, (free..., K), and the other is a matrix (K, N) (a linear
when it is a weight). The product is reshaped to its free axes and permuted to ``out``.
'bhqd,bhkd->bhqk', 'bhqk,bhkd->bhqd', 'bqd,dk->bqk', 'bid,jd->bij' all take this form.
An ellipsis '...' is written out first as letters the equation does not use, aligned from the
right (LongT5's '...qhd,...khd->...hqk'). One operand whose output reorders its indices is a
permute (DiT's and PixArt's unpatchify, 'nhwpqc->nchpwq'). An index summed over one operand
only is that operand's sum over the axis first (Taylor-series linear attention's normalizer
'b h n d, b h m d -> b h n': the keys summed over m, then a matmul). Refused, naming the
equation: other operand counts, one operand's sums or diagonals,
an index repeated in one operand (a diagonal), an operand summed to a scalar, sizes
that differ (an ellipsis broadcast over a size-1 axis too). Operands of another dtype are cast
to the result's first, as torch's type promotion does.
"""

from __future__ import annotations

import math
import string
from typing import Any

import torch
from torch import fx

from qasic.errors import UnsupportedOpError
from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
EINSUM = aten.einsum.default
EQUATION = "einsum_equation"  # the meta key of the nodes an einsum is rewritten into


def made_by(node: fx.Node) -> str:
    """What a refusal of ``node`` adds when an einsum was rewritten into it: the equation
    and the forms that run; '' for any other node."""
    eq = node.meta.get(EQUATION)
    return "" if eq is None else (
        f" (of einsum '{eq}'; einsums run whose indices are batch, contracted or free axes, "
        "the batch a free axis of one operand or in both)")


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no einsum, else a copy with each einsum rewritten."""
    return rewrite_matches(graph, lambda n: n.target is EINSUM, _build)


def _build(new: fx.Graph, node: fx.Node, _: bool, env: dict) -> fx.Node:
    try:
        return _rewrite(new, node, [env[a] for a in node.args[1]])
    except UnsupportedOpError as e:
        raise UnsupportedOpError(f"node {node.name!r}: {e}") from None


def parse(equation: str, ranks: list[int], own_sums: bool = False) -> tuple[str, str, str]:
    """(a, b, out) index strings of a two-operand equation; the implicit output is the indices
    seen once, sorted (torch's rule). ``own_sums``: an index summed over one operand only is
    kept (the caller sums it first), else refused."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != 2 or len(ranks) != 2:
        _refuse(equation, f"{len(ins)} operand indices for {len(ranks)} tensors",
                "one index string per operand")
    if "." in eq:
        ins, out, arrow = _ellipsis(equation, ins, out if arrow else None, ranks)
        lhs = ",".join(ins)
    if not arrow:
        out = "".join(sorted(c for c in set(lhs) if lhs.count(c) == 1))
    for s, r in zip(ins, ranks, strict=True):
        if len(set(s)) != len(s):
            _refuse(equation, f"an index repeated in '{s}' (a diagonal)",
                    "take it with torch.diagonal first and name the axis once")
        if len(s) != r:
            _refuse(equation, f"'{s}' names {len(s)} axes of a rank-{r} operand",
                    "name each axis of each operand once")
    summed = [c for c in ins[0] + ins[1] if c not in out and (c in ins[0]) != (c in ins[1])]
    if summed and not own_sums:
        _refuse(equation, f"index '{summed[0]}' summed over one operand only",
                "sum that axis first (x.sum(dim)) and leave it out of the equation")
    return ins[0], ins[1], out


def _ellipsis(equation: str, ins: list[str], out: str | None, ranks: list[int]
              ) -> tuple[list[str], str, str]:
    """(ins, out, "->") with each '...' written out as letters the equation does not use,
    aligned from the right as torch broadcasts them (LongT5's '...qhd,...khd->...hqk'); the
    implicit output puts them first."""
    if any(s.count(".") not in (0, 3) or (s.count(".") and "..." not in s)
           for s in (*ins, out or "")):
        _refuse(equation, "a '.' that is not one ellipsis '...'",
                "write one '...' or the axes as letters")
    named = [len(s.replace("...", "")) for s in ins]
    spans = [r - n for s, r, n in zip(ins, ranks, named, strict=True) if "..." in s]
    if any(k < 0 for k in spans):
        _refuse(equation, "an ellipsis in an operand of fewer axes than it names",
                "name each axis of each operand once")
    width = max(spans, default=0)
    letters = "".join(c for c in string.ascii_letters if c not in equation)[:width]
    ins = [s.replace("...", letters[width - (r - n):]) if "..." in s else s
           for s, r, n in zip(ins, ranks, named, strict=True)]
    if out is None:
        singles = "".join(sorted(c for c in set("".join(ins)) if "".join(ins).count(c) == 1
                                 and c not in letters))
        return ins, letters + singles, "->"
    return ins, out.replace("...", letters), "->"


def plan(a: str, b: str, out: str) -> tuple[bool, str, str, str, str]:
    """(swap, lead, m, k, n): the product is x (lead..., M, K) @ y (K, N), with y broadcast
    over ``lead`` when there are batch axes; x is the operand with more free axes (``swap``:
    x = b), ``lead`` its free axes but the last (``m``) and then the batch axes, ``k`` the
    contracted axes, ``n`` y's free axes."""
    batch = "".join(c for c in out if c in a and c in b)
    k = "".join(c for c in a if c in b and c not in out)
    fa, fb = "".join(c for c in a if c not in b), "".join(c for c in b if c not in a)
    swap = len(fb) > len(fa)
    x, y = (fb, fa) if swap else (fa, fb)
    return swap, x[:-1] + batch, x[-1:], k, y


def permutation(equation: str, rank: int) -> list[int]:
    """The axis order of a one-operand equation that only reorders its operand's axes."""
    eq = equation.replace(" ", "")
    src, arrow, out = eq.partition("->")
    if "," in src:
        _refuse(equation, f"{src.count(',') + 1} operands with one tensor",
                "one index string per operand")
    if "." in eq:
        (src,), out, arrow = _ellipsis(equation, [src], out if arrow else None, [rank])
    out = out if arrow else "".join(sorted(src))
    if len(src) != rank or len(set(src)) != len(src) or sorted(src) != sorted(out):
        _refuse(equation, "one operand whose output is not a reordering of its axes (a sum "
                          "or a diagonal)", "write the sum as x.sum(dims), a diagonal with "
                "torch.diagonal")
    return [src.index(c) for c in out]


def _rewrite(g: fx.Graph, node: fx.Node, ops: list[fx.Node]) -> fx.Node:
    equation = node.args[0]
    if len(ops) == 1:
        x = ops[0]
        return _Emitter(g, node, {}).permute(x, permutation(equation, x.meta["val"].dim()))
    if len(ops) > 2:
        return _chain(g, node, equation, ops)
    return _two(g, node, equation, ops)


def chain(equation: str, count: int, ranks: list[int] | None = None) -> list[str]:
    """The two-operand equations that compute a ``count``-operand one left to right: each
    product keeps the indices a later operand or the output still reads, in the order they
    first appear; the last one writes the output (mamba-minimal's selective scan,
    'b l d_in, b l n, b l d_in -> b l d_in n'). An ellipsis is written out first as letters,
    as in two-operand equations, from the operands' ``ranks`` (Performer's FAVOR+
    '...de,...nd,...n->...ne')."""
    eq = equation.replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    ins = lhs.split(",")
    if len(ins) != count:
        _refuse(equation, f"{len(ins)} operand indices for {count} tensors")
    if "." in eq:
        if ranks is None or len(ranks) != count:
            _refuse(equation, f"an ellipsis in an equation of {len(ins)} operands of unknown "
                    "ranks", "write the ellipsis out as letters")
        ins, out, arrow = _ellipsis(equation, ins, out if arrow else None, ranks)
        lhs = ",".join(ins)
    if not arrow:
        out = "".join(sorted(c for c in set(lhs) if lhs.count(c) == 1))
    steps, have = [], ins[0]
    for i in range(1, len(ins)):
        rest = "".join(ins[i + 1:]) + out
        keep = out if i == len(ins) - 1 else "".join(
            dict.fromkeys(c for c in have + ins[i] if c in rest))
        steps.append(f"{have},{ins[i]}->{keep}")
        have = keep
    return steps


def _chain(g: fx.Graph, node: fx.Node, equation: str, ops: list[fx.Node]) -> fx.Node:
    x = ops[0]
    ranks = [op.meta["val"].dim() for op in ops]
    for step, y in zip(chain(equation, len(ops), ranks), ops[1:], strict=True):
        x = _two(g, node, step, [x, y])
    return x


def _two(g: fx.Graph, node: fx.Node, equation: str, ops: list[fx.Node]) -> fx.Node:
    a, b, out = parse(equation, [o.meta["val"].dim() for o in ops], own_sums=True)
    (a, b), ops = _own_sums(_Emitter(g, node, {}), equation, (a, b), out, ops)
    size: dict[str, int] = {}
    for s, o in zip((a, b), ops, strict=True):
        for c, d in zip(s, o.meta["val"].shape, strict=True):
            if size.setdefault(c, int(d)) != int(d) and 1 not in (size[c], int(d)):
                _refuse(equation, f"index '{c}' of sizes {size[c]} and {int(d)}",
                        "give the index one size in both operands")
            size[c] = max(size[c], int(d))
    swap, lead, m, k, n = plan(a, b, out)
    if not m and not n and not lead:
        _refuse(equation, "no free or batch axes (a scalar)",
                "keep an axis in the output, e.g. (x * y).sum(-1, keepdim=True)")
    em = _Emitter(g, node, size)
    # torch broadcasts an index of size 1 in one operand to the other's size (a multi-query
    # key's one head against the queries' n: RecurrentGemma's "btnh,bsnh->bnts"): expanded
    ops = [em.expand(em.cast(o), [size[c] for c in s]) for s, o in zip((a, b), ops,
                                                                       strict=True)]
    small = next((i for i, s in enumerate((b, a)) if not k and set(s) <= set((a, b)[i])
                  and sorted(out) == sorted((a, b)[i])), None)
    if small is not None:  # nothing summed, one operand's axes among the other's: x * y
        (xs, x), (ys, y) = ((a, ops[0]), (b, ops[1])) if small == 0 else ((b, ops[1]),
                                                                           (a, ops[0]))
        x = em.permute(x, [xs.index(c) for c in out])
        y = em.permute(y, [ys.index(c) for c in out if c in ys])
        y = em.reshape(y, [size[c] if c in ys else 1 for c in out])
        return em.op(aten.mul.Tensor, (x, y), [size[c] for c in out])
    (xs, x), (ys, y) = ((b, ops[1]), (a, ops[0])) if swap else ((a, ops[0]), (b, ops[1]))
    batch = "".join(c for c in lead if c in xs and c in ys)
    x = em.arrange(x, xs, lead + m + k, [*lead, m, k])
    y = em.arrange(y, ys, batch + k + n, [*batch, k, n])
    if batch:  # y (batch..., K, N) broadcast over x's leading free axes
        shape = [size[c] for c in lead] + [int(d) for d in y.meta["val"].shape[-2:]]
        y = em.reshape(y, [size[c] if c in batch else 1 for c in lead] + shape[-2:])
        y = em.expand(y, shape)
    have = lead + m + n
    prod = em.op(aten.matmul.default, (x, y), [size[c] for c in lead] + [
        math.prod(size[c] for c in s) for s in (m, n)])
    prod = em.reshape(prod, [size[c] for c in have])
    return em.permute(prod, [have.index(c) for c in out])


def _own_sums(em: _Emitter, equation: str, ins: tuple[str, str], out: str,
              ops: list[fx.Node]) -> tuple[tuple[str, str], list[fx.Node]]:
    """Each operand summed first over the indices only it has and the output does not (an
    einsum sums them: 'b h n d, b h m d -> b h n' is the keys' sum over m, then the product),
    with the index strings left."""
    kept, summed = [], []
    for i, (s, x) in enumerate(zip(ins, ops, strict=True)):
        other = ins[1 - i]
        own = [j for j, c in enumerate(s) if c not in out and c not in other]
        if own:
            if len(own) == len(s):
                _refuse(equation, f"operand '{s}' summed to a scalar",
                        "sum it first (x.sum()) and multiply by the result")
            shape = [int(d) for j, d in enumerate(x.meta["val"].shape) if j not in own]
            x = em.op(aten.sum.dim_IntList, (em.cast(x), own, False), shape)
        kept.append("".join(c for j, c in enumerate(s) if j not in own))
        summed.append(x)
    return (kept[0], kept[1]), summed


class _Emitter:
    """Appends aten nodes for one einsum to ``g``, each with a meta value of its shape and the
    einsum's module path (names and messages point at the einsum's module)."""

    def __init__(self, g: fx.Graph, node: fx.Node, size: dict[str, int]) -> None:
        self.g, self.node, self.size = g, node, size
        self.dtype = node.meta["val"].dtype

    def cast(self, x: fx.Node) -> fx.Node:
        """``x`` in the einsum's result dtype (torch promotes the operands: integer positions
        times float frequencies, x-transformers' sinusoidal embedding), which matmul does not."""
        val = x.meta["val"]
        if val.dtype == self.dtype:
            return x
        return self.op(aten.to.dtype, (x, self.dtype), list(val.shape))

    def op(self, target: Any, args: tuple, shape: list[int]) -> fx.Node:
        n = self.g.call_function(target, args)
        n.meta = {k: v for k, v in self.node.meta.items() if k != "val"}
        n.meta["val"] = torch.empty(shape, dtype=self.dtype, device="meta")
        n.meta[EQUATION] = self.node.args[0]  # a refusal of the node names the einsum
        return n

    def arrange(self, x: fx.Node, have: str, want: str, groups: list[str]) -> fx.Node:
        """``x`` (axes ``have``) permuted to ``want`` and reshaped to one axis per group."""
        x = self.permute(x, [have.index(c) for c in want])
        shape = [math.prod(self.size[c] for c in grp) for grp in groups]
        return self.reshape(x, shape)

    def permute(self, x: fx.Node, perm: list[int]) -> fx.Node:
        if perm == sorted(perm):
            return x
        shape = [int(x.meta["val"].shape[p]) for p in perm]
        return self.op(aten.permute.default, (x, perm), shape)

    def expand(self, x: fx.Node, shape: list[int]) -> fx.Node:
        if [int(d) for d in x.meta["val"].shape] == shape:
            return x
        return self.op(aten.expand.default, (x, shape), shape)

    def reshape(self, x: fx.Node, shape: list[int]) -> fx.Node:
        if [int(d) for d in x.meta["val"].shape] == shape:
            return x
        return self.op(aten.reshape.default, (x, shape), shape)


def _refuse(equation: str, why: str, form: str) -> None:
    """One line: the equation, what in it does not run, ``form``: how to write it so it does
    (the runnable forms: operands whose indices are batch, contracted or free axes, in any
    order, either operand batch-free, chained left to right; one reordered operand)."""
    raise UnsupportedOpError(f"einsum '{equation}': {why}; {form}: each index of an operand "
                             "a batch, contracted or free axis (a permute/reshape/matmul), or "
                             "one operand reordered (a permute)")
