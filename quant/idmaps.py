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


def reads_ids(b: Any, args: list, kwargs: dict) -> bool:
    """Whether an op is this module's: it reads an IdMap, or padding masks of different tests,
    or a padding mask and the ids themselves (nothing else takes those)."""
    flat = _flat((args, kwargs))
    keys = [v for v in flat if isinstance(v, KeyMask)]
    if any(isinstance(v, IdMap) for v in flat):
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
    v = ids.of(torch.arange(token_vocab(b, node, "an embedding of mapped token ids")))
    if v.is_floating_point() or v.dtype == torch.bool or bool((v < 0).any()) \
            or bool((v >= table.shape[0]).any()):
        b.fail(node, f"an embedding of {table.shape[0]} rows looked up by token ids mapped to "
                     f"{v.dtype} values {v.min().item()}..{v.max().item()}; only integer rows "
                     "of the table")
    return b.add(node, "embedding", (b.input_name,), {}, {"table": _np(table[v.long()])})
