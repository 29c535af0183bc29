"""RoPE written with complex numbers (Llama 4's ``apply_rotary_emb``), rewritten before capture
into the real products it is.

Llama 4 views a head's Dh features as Dh / 2 complex numbers (channel pairs 2k, 2k + 1),
multiplies them by ``freqs_cis = exp(i theta)`` (a constant of the positions) and views the
product as real again:

    z = view_as_complex(x.reshape(..., Dh / 2, 2));  y = view_as_real(z * c).flatten(-2)

With c = a + i b (a = cos, b = sin), y[2k] = x[2k] a[k] - x[2k+1] b[k] and y[2k+1] = x[2k+1] a[k]
+ x[2k] b[k]: GPT-J's rotary on interleaved pairs,

    y = x * A + rotate_every_two(x) * B,   rotate_every_two(x) = stack((-x[1::2], x[::2]), -1)

with A, B = a, b each repeated twice over the last axis (constants at capture) and the rotation
one +-1 linear (qasic.quant.lowering_pointwise.stack). The rewrite ends in a view to the
(..., Dh / 2, 2) that view_as_real gave, so what follows (its flatten) is unchanged.

gemma_pytorch pairs a head's two halves instead, ``view_as_complex(stack(chunk(x, 2, -1), -1))``:
any ``stack((re, im), -1)`` is rewritten into the real and imaginary parts of the product,
``stack((re a - im b, im a + re b), -1)``, and what follows (Gemma's chunk and cat back into
halves) reads it unchanged. Any other use of complex numbers is left to capture, which
refuses it in one line.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, rebuild
from qasic.quant.fxnodes import like as _op

aten = torch.ops.aten
_VIEWS = (aten.reshape.default, aten.view.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no complex rotation, else a copy with each rewritten."""
    found = [n for n in graph.nodes if _parts(n) is not None]
    if not found:
        return graph
    gone, skip = {p for n in found for p in _parts(n)[2]}, set()
    for node in reversed(graph.nodes):  # readers first: read only by rotations rewritten
        if node in gone and all(u in skip or u in found for u in node.users):
            skip.add(node)
    halves = {n: h for n in found if isinstance(_parts(n)[0], tuple)
              and (h := _halves_back(n)) is not None}
    for chain in halves.values():
        skip.update(chain[:-1])
    return rebuild(graph, partial(_replace, found, halves, skip))


def _replace(found: list, halves: dict, skip: set, new: fx.Graph, node: fx.Node,
             env: dict) -> Any:
    if node in env:
        return DROP  # a cat of halves made with its rotation
    if node not in found:
        return DROP if node in skip else None
    x, c, _ = _parts(node)
    x = tuple(env[p] for p in x) if isinstance(x, tuple) else env[x]
    if node not in halves:
        return _rewrite(new, node, x, env[c])
    cat = halves[node][-1]
    env[cat] = _halves(new, cat, x, env[c])
    return DROP


_CASTS = (aten.type_as.default, aten.to.dtype, aten._to_copy.default)


def _halves_back(node: fx.Node) -> tuple | None:
    """The nodes from ``node`` (a rotation's view_as_real (..., n, 2)) to gemma_pytorch's
    ``cat(chunk(out, 2, dim=-1), dim=-2)`` (..., 2n, 1), the halves back (casts, the chunk, its
    two items, the cat last), or None when its readers are not that."""
    chain, at = [node], node
    while len(at.users) == 1 and next(iter(at.users)).target in _CASTS:
        at = next(iter(at.users))
        chain.append(at)
    chunk = next(iter(at.users)) if len(at.users) == 1 else None
    if chunk is None or chunk.target is not aten.chunk.default or chunk.args[1:] != (2, -1) \
            or len(chunk.users) != 2:
        return None
    items = sorted(chunk.users, key=lambda u: u.args[1] if len(u.args) > 1 else -1)
    if any(u.target is not operator.getitem or len(u.users) != 1 for u in items) \
            or [u.args[1] for u in items] != [0, 1]:
        return None
    cat = next(iter(items[0].users))
    rank = node.meta["val"].dim()
    if cat.target is not aten.cat.default or next(iter(items[1].users)) is not cat \
            or list(cat.args[0]) != items or len(cat.args) < 2 \
            or int(cat.args[1]) % rank != rank - 2:
        return None
    return (*chain, chunk, *items, cat)


def _halves(g: fx.Graph, cat: fx.Node, x: tuple, c: fx.Node) -> fx.Node:
    """The rotated halves side by side, (..., 2n, 1) as Gemma's cat: cat((re a - im b, im a +
    re b), -1)[..., None], NeoX's rotate_half rotary of the head."""
    ab = _op(g, cat, aten.view_as_real.default, (c,))
    re, im = x
    a, b = (_op(g, cat, aten.select.int, (ab, -1, k)) for k in (0, 1))
    real = _op(g, cat, aten.sub.Tensor, (_op(g, cat, aten.mul.Tensor, (re, a)),
                                         _op(g, cat, aten.mul.Tensor, (im, b))))
    imag = _op(g, cat, aten.add.Tensor, (_op(g, cat, aten.mul.Tensor, (im, a)),
                                         _op(g, cat, aten.mul.Tensor, (re, b))))
    flat = _op(g, cat, aten.cat.default, ([real, imag], -1))
    return _op(g, cat, aten.unsqueeze.default, (flat, -1))


def _parts(node: fx.Node) -> tuple | None:
    """(x (..., Dh), c (..., Dh / 2) complex, the complex nodes replaced) when ``node`` is
    ``view_as_real(view_as_complex(x.reshape(..., Dh / 2, 2)) * c)`` (either operand order; c
    not itself a view_as_complex: the rotation's factor is made of constants), else None."""
    if node.op != "call_function" or node.target is not aten.view_as_real.default:
        return None
    mul = node.args[0]
    if not (isinstance(mul, fx.Node) and mul.target is aten.mul.Tensor and len(mul.args) == 2
            and all(isinstance(a, fx.Node) for a in mul.args)):
        return None
    for z, c in (mul.args, mul.args[::-1]):
        if z.target is not aten.view_as_complex.default or not c.meta["val"].is_complex() \
                or c.target is aten.view_as_complex.default:  # a product of two activations
            continue
        pairs = z.args[0]
        if pairs.target in _VIEWS and isinstance(pairs.args[0], fx.Node) and _split(
                pairs.args[0].meta["val"].shape, pairs.meta["val"].shape):
            return pairs.args[0], c, (mul, z, pairs)
        if _stacked(pairs):
            return tuple(pairs.args[0]), c, (mul, z, pairs)
    return None


def _stacked(pairs: fx.Node) -> bool:
    """``pairs`` is ``stack((re, im), -1)`` of two real tensors of one shape (gemma_pytorch's
    ``stack(chunk(x, 2, dim=-1), dim=-1)``: the halves of a head as real and imaginary parts)."""
    if pairs.target is not aten.stack.default or len(pairs.args) < 2:
        return False
    parts, dim = pairs.args[0], pairs.args[1]
    rank = pairs.meta["val"].dim()
    return len(parts) == 2 and all(isinstance(p, fx.Node) for p in parts) \
        and int(dim) % rank == rank - 1 \
        and parts[0].meta["val"].shape == parts[1].meta["val"].shape


def _split(flat: Any, pairs: Any) -> bool:
    """``pairs`` is ``flat`` with its last axis split into (n, 2)."""
    return tuple(pairs) == (*flat[:-1], flat[-1] // 2, 2) and flat[-1] % 2 == 0


def _rewrite(g: fx.Graph, node: fx.Node, x: Any, c: fx.Node) -> fx.Node:
    ab = _op(g, node, aten.view_as_real.default, (c,))
    if isinstance(x, tuple):  # stack((re, im), -1): (re a - im b, im a + re b) stacked back
        re, im = x
        a, b = (_op(g, node, aten.select.int, (ab, -1, k)) for k in (0, 1))
        real = _op(g, node, aten.sub.Tensor, (_op(g, node, aten.mul.Tensor, (re, a)),
                                              _op(g, node, aten.mul.Tensor, (im, b))))
        imag = _op(g, node, aten.add.Tensor, (_op(g, node, aten.mul.Tensor, (im, a)),
                                              _op(g, node, aten.mul.Tensor, (re, b))))
        return _op(g, node, aten.stack.default, ([real, imag], -1))
    a, b = (_op(g, node, aten.repeat_interleave.self_int,
                (_op(g, node, aten.select.int, (ab, -1, k)), 2, -1)) for k in (0, 1))
    return gptj_rotation(g, node, x, a, b)


def gptj_rotation(g: fx.Graph, node: fx.Node, x: fx.Node, a: fx.Node, b: fx.Node) -> fx.Node:
    """GPT-J's real form of rotating ``x``'s (even, odd) pairs, in ``node``'s shape:
    x * a + rotate_every_two(x) * b, with rotate_every_two(x) = (-odd, even) interleaved."""
    even = _op(g, node, aten.slice.Tensor, (x, -1, 0, None, 2))
    odd = _op(g, node, aten.slice.Tensor, (x, -1, 1, None, 2))
    pair = _op(g, node, aten.stack.default, ([_op(g, node, aten.neg.default, (odd,)), even], -1))
    rotated = _op(g, node, aten.flatten.using_ints, (pair, -2))
    y = _op(g, node, aten.add.Tensor, (_op(g, node, aten.mul.Tensor, (x, a)),
                                       _op(g, node, aten.mul.Tensor, (rotated, b))))
    return _op(g, node, aten.view.default, (y, list(node.meta["val"].shape)))
