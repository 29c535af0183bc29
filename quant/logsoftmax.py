"""``F.log_softmax`` (aten.log_softmax / aten._log_softmax: a CTC recognizer's head over its
classes, CRNN's; PyTorch's word_language_model decoder) rewritten, before capture, into what it
is: its input less its row maximum, minus the log of the sum of the exponentials of that,
along the last axis,

    d = x - max(x, -1, keepdim=True);  log_softmax(x, -1) = d - log(sum(exp(d), -1, keepdim=True))

so that capture meets a max over the last axis with keepdim (a max pool of the row), tables
(the exp, the log), linears of ones and differences of two activations of one shape, each of
which it already runs: the sum over the C classes is a linear of ones (1, C), and the max and
the log of the sum are widened back to the C classes by a linear of ones (C, 1) (one shape to
subtract in image models, a classifier's vectors as in PyTorch's MNIST example, as in sequence
models, a time-major CRNN's (T, batch, classes) or a language model's logits). The golden
reference and the simulator run them as integer ops of every model. Subtracting the maximum
keeps the sum's largest term at exp(0) = 1 whatever the logits' offset: without it, a row of
logits all far below 0 rounds every exp code to 0, and the log of that sum is the log table's
floor, not the row's value. Every class of a row subtracts the same codes, so the row's order
(CTC's greedy decoding reads its argmax) is x's up to the subtractions' rounding.

Over the last axis only (softmax's): a log_softmax over another axis is left as it is and
refused in one line naming it (``HANDLERS``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import rewrite_matches

aten = torch.ops.aten
TARGETS = (aten.log_softmax.int, aten._log_softmax.default)


def decompose(graph: fx.Graph) -> fx.Graph:
    """``graph`` itself when it holds no log_softmax, else a copy with each rewritten."""
    return rewrite_matches(graph, _is_log_softmax, lambda new, node, _, env:
                           _rewrite(new, node, env[node.args[0]]))


def _is_log_softmax(node: fx.Node) -> bool:
    return node.op == "call_function" and node.target in TARGETS and \
        _dim(node) == node.args[0].meta["val"].dim() - 1


def _dim(node: fx.Node) -> int:
    rank = node.args[0].meta["val"].dim()
    return int(node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", -1)) % rank


def refuse(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """A log_softmax ``decompose`` left: over an axis that is not the last."""
    rank = node.args[0].meta["val"].dim()
    b.fail(node, f"log_softmax over dim {_dim(node)} of a rank-{rank} tensor; only over the "
                 "last axis (the classes): move that axis last first (x.transpose(d, -1))")


HANDLERS = dict.fromkeys(TARGETS, refuse)
SUPPORTED = (("log_softmax/_log_softmax over the last axis: d - log(sum(exp(d), -1)), d = x - "
              "max(x, -1), in image and sequence models"),)


def _rewrite(g: fx.Graph, node: fx.Node, x: fx.Node) -> fx.Node:
    c, dtype = int(x.meta["val"].shape[-1]), x.meta["val"].dtype
    ones = torch.ones(c, 1, dtype=dtype)
    m = _op(g, node, aten.amax.default, (x, [-1], True), "_max")
    shifted = _op(g, node, aten.sub.Tensor, (x, _op(g, node, aten.linear.default, (m, ones),
                                                     "_maxwide")), "_shifted")
    e = _op(g, node, aten.exp.default, (shifted,), "_exp")
    s = _op(g, node, aten.linear.default, (e, torch.ones(1, c, dtype=dtype)), "_sum")
    lse = _op(g, node, aten.log.default, (s,), "_log")
    wide = _op(g, node, aten.linear.default, (lse, ones), "_wide")
    return _op(g, node, aten.sub.Tensor, (shifted, wide), "")


def _op(g: fx.Graph, node: fx.Node, target: Any, args: tuple, suffix: str) -> fx.Node:
    """A node ``<node><suffix>`` of ``target``(*args) with the meta value torch gives it and
    ``node``'s module path (names and messages point at the log_softmax's module)."""
    out = g.create_node("call_function", target, args, name=node.name + suffix)
    out.meta = {k: v for k, v in node.meta.items() if k != "val"}
    out.meta["val"] = target(*(a.meta["val"] if isinstance(a, fx.Node) else a for a in args))
    return out
