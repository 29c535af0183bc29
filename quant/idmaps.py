"""Functions of the token ids at capture: tests of the ids combined, and ids mapped through a
table before an embedding reads them.

Gemma 3n looks its per-layer embeddings up by the ids, those outside that table's vocabulary
made 0:

    in_table = logical_and(ids >= 0, ids < V); embed_per_layer(where(in_table, ids, 0))

Each comparison is a padding-mask bit (qasic.quant.masks.KeyMask, bit = pred(id)). Two tests
of the same elements meeting in an elementwise op make one KeyMask again when the result takes
at most two values per element whatever the tests' bits: its test is their combination
(``VocabTest``), so it masks the attention, or is read as values, like any padding mask. An
elementwise op of such masks, the ids themselves and scalars is an IdMap: element (b, t) is a
function of the id ids[b, t] alone. An embedding of an IdMap is an embedding of the ids
through the rows ``table[f(v)]`` for every id v of the vocabulary (the token embedding's
rows): one lookup, exact. Anything else read from an IdMap is refused in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch

from qasic.quant import lengths, lowering_seq
from qasic.quant.lowering import Act, _np, token_vocab
from qasic.quant.masks import _CASTS, _ELEMENTWISE, KeyMask, _flat

aten = torch.ops.aten
_EMBEDDINGS = (aten.embedding.default,)


@dataclass(frozen=True)
class VocabTest:
    """Tests of the ids combined (a KeyMask's ``pred[0]``): bit = the combination of the
    ``tests``' bits (bit i of its index: test i) is in ``ones``."""

    tests: tuple
    ones: frozenset

    def __call__(self, ids: torch.Tensor, other: Any = None) -> torch.Tensor:
        index = sum(_test(t, ids).long() << i for i, t in enumerate(self.tests))
        table = torch.tensor([c in self.ones for c in range(2 ** len(self.tests))])
        return table[index]


@dataclass(frozen=True, eq=False)
class IdMap:
    """A tensor of the ids' shape (batch, tokens): element (b, t) is ``of(ids)[b, t]``, a
    function of that id alone (evaluated on the vocabulary where an embedding reads it)."""

    of: Callable[[torch.Tensor], torch.Tensor]
    # a function of the id and its position (the ids plus a constant per position: a
    # recommender's field offsets into one shared table); ``of`` then takes (ids, tokens)
    positional: bool = False


def reads_ids(b: Any, args: list, kwargs: dict, node: Any = None) -> bool:
    """Whether an op is this module's: it reads an IdMap, or padding masks of different tests,
    or a padding mask and the ids themselves (nothing else takes those), or the ids and an
    integer constant of one value per position (pytorch-fm's ``x + offsets``: each field's
    ids offset into one shared table)."""
    flat = _flat((args, kwargs))
    keys = [v for v in flat if isinstance(v, KeyMask)]
    if any(isinstance(v, IdMap) for v in flat):
        return True
    if node is not None and _per_position(b, node, flat):
        return True
    return bool(keys) and (len({(k.pred, k.ids) for k in keys}) > 1 or any(
        isinstance(v, Act) and v.name == b.input_name for v in flat))


def apply(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """An op ``reads_ids`` claimed: an embedding of an IdMap, or an elementwise op (a KeyMask
    of a vocabulary test, or an IdMap)."""
    if node.target in _EMBEDDINGS:
        return _embedding(b, node, args)
    if node.target not in _CASTS and node.target not in _ELEMENTWISE \
            and torch.Tag.pointwise not in node.target.tags:
        b.fail(node, f"op {node.target} of token ids mapped through a table (or of tests of "
                     "them); only elementwise ops and an embedding")
    flat = _flat((args, kwargs))
    if any(isinstance(v, IdMap) or (isinstance(v, Act) and v.name == b.input_name)
           for v in flat):
        return _mapped(b, node, args, kwargs)
    return _combined(b, node, args, kwargs)


def _per_position(b: Any, node: Any, flat: list) -> bool:
    """An elementwise op of the ids themselves and an integer constant of several values,
    one per position (broadcast over the batch)."""
    if b.layout != lowering_seq.TOKENS or node.target not in _SHIFTS:
        return False
    ids = [v for v in flat if isinstance(v, Act)]
    consts = [v for v in flat if isinstance(v, torch.Tensor) and v.numel() > 1]
    if len(ids) != 1 or ids[0].name != b.input_name or len(consts) != 1 \
            or consts[0].is_floating_point() or consts[0].dtype == torch.bool:
        return False
    c, tokens = consts[0], b.shapes[b.input_name]
    return c.dim() <= 1 + len(tokens) and all(d == 1 for d in c.shape[:-len(tokens)]) \
        and c.dim() >= 1


_SHIFTS = {aten.add.Tensor, aten.sub.Tensor}


def _combined(b: Any, node: Any, args: list, kwargs: dict) -> KeyMask:
    """Padding masks of different tests (the same elements) in an elementwise op: one KeyMask
    whose test is their combination (the result must take two values per element at most,
    over every combination of the tests' bits)."""
    keys = list({k.pred: k for k in _flat((args, kwargs)) if isinstance(k, KeyMask)}.values())
    shape = tuple(node.meta["val"].shape)
    pos = [torch.broadcast_to(k.pos, shape) for k in keys]
    if any(k.ids != keys[0].ids or k.pred[0] == lengths.PREFIX for k in keys) \
            or any(not torch.equal(p, pos[0]) for p in pos):
        b.fail(node, "padding masks of different tests that read different keys (or of a "
                     "count of the tokens) meet; only tests of the same ids, element by element")
    combos = range(2 ** len(keys))
    results = [_result(node, args, kwargs, {k.pred: c >> i & 1 for i, k in enumerate(keys)},
                       shape) for c in combos]
    first = [torch.equal(r, results[0]) for r in results]
    other = [r for r, f in zip(results, first, strict=True) if not f]
    if any(not torch.equal(r, other[0]) for r in other):
        b.fail(node, f"{node.target} of tests of the ids taking more than two values per "
                     "element; only results that one test of the ids decides")
    test = VocabTest(tuple(k.pred for k in keys), frozenset(c for c in combos if first[c]))
    return replace(keys[0], pred=(test, None), pos=pos[0], when1=results[0],
                   when0=other[0] if other else results[0])


def _test(pred: tuple, ids: torch.Tensor) -> torch.Tensor:
    target, other = pred
    return target(ids, other).to(torch.bool)


def _result(node: Any, args: list, kwargs: dict, bit: dict, shape: tuple) -> torch.Tensor:
    """The op on each KeyMask's values for its bit (``bit``: test -> 0/1)."""
    def sub(t: Any) -> Any:
        if isinstance(t, KeyMask):
            return t.when1 if bit[t.pred] else t.when0
        if isinstance(t, (list, tuple)):
            return type(t)(sub(x) for x in t)
        return {k: sub(v) for k, v in t.items()} if isinstance(t, dict) else t
    return torch.broadcast_to(node.target(*sub(list(args)), **sub(kwargs)), shape)


def _mapped(b: Any, node: Any, args: list, kwargs: dict) -> IdMap:
    """An elementwise op of IdMaps, the ids, tests of them and scalars: an IdMap."""
    shape = tuple(node.meta["val"].shape)
    want = (b.batch, *b.shapes[b.input_name])
    if b.layout != lowering_seq.TOKENS or shape != want:
        b.fail(node, f"a function of the token ids of shape {list(shape)}; only of the ids' "
                     f"own shape {list(want)}, element by element")
    for t in _flat((args, kwargs)):
        if isinstance(t, Act) and t.name != b.input_name:
            b.fail(node, "an elementwise op of token ids mapped through a table and an "
                         "activation; only of the ids, tests of them and constants")
        if isinstance(t, KeyMask):
            _check_per_id(b, node, t, shape)
    target = node.target
    positional = any(isinstance(t, IdMap) and t.positional for t in _flat((args, kwargs))) \
        or _per_position(b, node, _flat((args, kwargs)))
    if positional:
        return _positional(b, node, args, kwargs)

    def sub(t: Any, ids: torch.Tensor) -> Any:
        if isinstance(t, IdMap):
            return t.of(ids)
        if isinstance(t, Act):
            return ids
        if isinstance(t, KeyMask):
            w1, w0 = (torch.broadcast_to(v, shape).flatten()[0] for v in (t.when1, t.when0))
            return torch.where(_test(t.pred, ids), w1, w0)
        if isinstance(t, (list, tuple)):
            return type(t)(sub(x, ids) for x in t)
        return {k: sub(v, ids) for k, v in t.items()} if isinstance(t, dict) else t
    return IdMap(lambda ids: target(*sub(list(args), ids), **sub(kwargs, ids)))


def _positional(b: Any, node: Any, args: list, kwargs: dict) -> IdMap:
    """An elementwise op of the ids, positional IdMaps and constants (no test of the ids): a
    positional IdMap, ``of(grid)`` evaluated on a (ids, tokens) grid of every id at every
    position."""
    target = node.target
    for t in _flat((args, kwargs)):
        if isinstance(t, KeyMask) or (isinstance(t, IdMap) and not t.positional):
            b.fail(node, "token ids offset per position and tested (or mapped by value) in one "
                         "op; only offsets, sums and differences of them with constants")

    def sub(t: Any, grid: torch.Tensor) -> Any:
        if isinstance(t, IdMap):
            return t.of(grid)
        if isinstance(t, Act):
            return grid
        if isinstance(t, torch.Tensor) and t.dim():  # (1, ..., tokens) -> (tokens,)
            return t.reshape(-1)
        if isinstance(t, (list, tuple)):
            return type(t)(sub(x, grid) for x in t)
        return {k: sub(v, grid) for k, v in t.items()} if isinstance(t, dict) else t
    return IdMap(lambda grid: target(*sub(list(args), grid), **sub(kwargs, grid)),
                 positional=True)


def _check_per_id(b: Any, node: Any, k: KeyMask, shape: tuple) -> None:
    """A KeyMask read as a function of the id at its place: it must read, element by element,
    that id's bit and hold one value for each bit."""
    grid = torch.arange(k.batch * k.keys).reshape(k.batch, k.keys)
    one = [torch.broadcast_to(v, shape) for v in (k.when1, k.when0)]
    if k.ids is not None or k.pred[0] == lengths.PREFIX or shape != tuple(grid.shape) \
            or not torch.equal(torch.broadcast_to(k.pos, shape), grid) \
            or any(not bool((v == v.flatten()[0]).all()) for v in one):
        b.fail(node, "a test of the ids used with the ids other than element by element "
                     "(one value for each bit); only as where(test, ids, value)")


def _embedding(b: Any, node: Any, args: list) -> Act:
    """aten.embedding(table, IdMap f): the ids through the rows ``table[f(v)]``, v over the
    vocabulary."""
    table, ids = args[0], args[1]
    if not isinstance(table, torch.Tensor) or not isinstance(ids, IdMap):
        b.fail(node, "an embedding of token ids mapped through a table must look up a constant "
                     "table")
    if ids.positional:
        return _positional_embedding(b, node, table, ids)
    v = ids.of(torch.arange(token_vocab(b, node, "an embedding of mapped token ids")))
    if v.is_floating_point() or v.dtype == torch.bool or bool((v < 0).any()) \
            or bool((v >= table.shape[0]).any()):
        b.fail(node, f"an embedding of {table.shape[0]} rows looked up by token ids mapped to "
                     f"{v.dtype} values {v.min().item()}..{v.max().item()}; only integer rows "
                     "of the table")
    return b.add(node, "embedding", (b.input_name,), {}, {"table": _np(table[v.long()])})


def _positional_embedding(b: Any, node: Any, table: torch.Tensor, ids: IdMap) -> Act:
    """aten.embedding(table, f(id, position)): position t's ids read the rows
    ``table[f(v, t)]`` for v = 0, 1, ... while those are rows of the table (its last: torch
    reads row f(v, t) for any id v whose row exists): one embedding of the ids at that position
    each, placed along the positions (positions of one mapping share one embedding)."""
    tokens = b.shapes[b.input_name]
    if len(tokens) != 1:
        b.fail(node, f"token ids of shape {list(tokens)} offset per position; only (batch, "
                     "tokens) ids")
    rows, t = int(table.shape[0]), tokens[0]
    grid = torch.arange(rows).reshape(rows, 1).expand(rows, t)
    v = ids.of(grid)
    if v.is_floating_point() or v.dtype == torch.bool or tuple(v.shape) != (rows, t):
        b.fail(node, f"token ids mapped per position to {v.dtype} values of shape "
                   f"{list(v.shape)}; only integer rows of the table, one per id and position")
    inside = (v >= 0) & (v < rows)
    parts, start = [], 0
    while start < t:  # runs of positions with the same rows
        stop = start + 1
        while stop < t and torch.equal(v[:, stop], v[:, start]):
            stop += 1
        col = v[:, start]
        n = int(torch.cumprod(inside[:, start].long(), 0).sum())  # ids 0..n-1 have rows
        if n == 0:
            b.fail(node, f"token ids at position {start} mapped outside the table's {rows} "
                         "rows for every id; only maps into the table")
        parts.append(b.add(node, "embedding", (b.input_name,),
                           {"offset": start, "rows": stop - start},
                           {"table": _np(table[col[:n].long()])},
                           shape=(stop - start, int(table.shape[1])), suffix=f".at{start}"))
        start = stop
    if len(parts) == 1:
        return parts[0]
    return lowering_seq.placed(b, node, parts, [b.shapes[p.name][0] for p in parts], 0)
