"""``torch.movedim`` rewritten before capture as the permute it is: the axes ``source`` moved to
the positions ``destination``, the others in their order (Gemma 3n's and Gemma 4's audio
attention move their heads axis with it); ``Tensor.T`` (``numpy_T``: Pixtral's patches) as the
permute reversing every axis; ``torch.swapaxes`` / ``swapdims`` (torchvision's MaxViT swaps
its grid partition's axes with them, and torch.export keeps the aliases) as the transpose they
alias; ``Tensor.mT`` / ``mH`` (litgpt's ``q @ k.mT``; mH is mT on real tensors) as
``transpose(x, -2, -1)``. The permute or transpose takes the op's name and meta, so refusals
and module names read as before."""

from __future__ import annotations

import torch
from torch import fx

from qasic.quant.fxnodes import rebuild

aten = torch.ops.aten
MOVEDIMS = (aten.movedim.int, aten.movedim.intlist, aten.numpy_T.default)
SWAPS = (aten.swapaxes.default, aten.swapdims.default)  # aliases of transpose(x, d0, d1)
MATRIX_T = (aten.mT.default, aten.mH.default)  # transpose(x, -2, -1)


def permutation(rank: int, source: object, destination: object) -> list[int]:
    """The permute dims of ``movedim(x, source, destination)`` for an x of ``rank`` axes."""
    src = [int(s) % rank for s in (source if isinstance(source, (list, tuple)) else [source])]
    dst = [int(d) % rank for d in (destination if isinstance(destination, (list, tuple))
                                   else [destination])]
    perm: list[int | None] = [None] * rank
    for s, d in zip(src, dst, strict=True):
        perm[d] = s
    rest = iter(d for d in range(rank) if d not in src)
    return [next(rest) if p is None else p for p in perm]


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no movedim or swap, else a copy with each movedim a
    permute and each swap a transpose."""
    if not any(n.op == "call_function" and n.target in MOVEDIMS + SWAPS + MATRIX_T
               for n in graph.nodes):
        return graph
    return rebuild(graph, _replace)


def _replace(new: fx.Graph, node: fx.Node, env: dict) -> fx.Node | None:
    if node.op == "call_function" and node.target in SWAPS + MATRIX_T:
        names = ("axis0", "axis1") if node.target is aten.swapaxes.default else ("dim0", "dim1")
        d0, d1 = (-2, -1) if node.target in MATRIX_T else (
            *node.args[1:], *(node.kwargs[k] for k in names if k in node.kwargs))
        t = new.create_node("call_function", aten.transpose.int, (env[node.args[0]], d0, d1),
                            name=node.name)
        t.meta = dict(node.meta)
        return t
    if node.op == "call_function" and node.target in MOVEDIMS:
        x = node.args[0]
        rank = x.meta["val"].dim()
        perm = list(range(rank))[::-1] if node.target is aten.numpy_T.default else \
            permutation(rank, node.args[1], node.args[2])
        p = new.create_node("call_function", aten.permute.default, (env[x], perm),
                            name=node.name)
        p.meta = dict(node.meta)
        return p
    return None
