"""A conv whose weight is a per-sample mixture of constant expert kernels (timm's CondConv2d,
Dynamic Convolution's ``torch.mm(attention, weight)``) rewritten, before capture, into what it
computes. The reference codes mix the kernels first and run one conv grouped over the batch,

    w = (r @ W).view(B O, I / g, kh, kw)            r: (B, E) routing weights (activations)
    y = conv2d(x.reshape(1, B C, H, W), w, b, groups=g B)   W: (E, O I / g kh kw) constant
    y.view(B, O, H', W')   or   y.permute(1, 0, 2, 3).view(B, O, H', W')   (timm's)

and, the conv being linear in its weight, that is the experts' fixed-weight convs of the
activations, each scaled by its routing weight per sample:

    y[b] = sum_e r[b, e] conv2d(x[b], W[e].view(O, I / g, kh, kw), groups=g)  (+ bias[b])

where a per-sample bias (B O,) is the (B, O) activation it views, added over the map. Capture
then meets fixed-weight convs, products of a per-sample scalar broadcast over a map and adds,
each of which it runs (E convs where the reference runs one: the accelerator's weights are
constants, so the experts' mixing is done on the outputs). A weight of any other form stays as
it is (refused in one line by the walk; quant.modconv takes StyleGAN's modulated weights).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import torch
from torch import fx

from qasic.quant.fxnodes import DROP, rebuild
from qasic.quant.fxnodes import like as _op

aten = torch.ops.aten
_CONV = (aten.conv2d.default, aten.convolution.default)
_MM = (aten.matmul.default, aten.mm.default)
_VIEWS = (aten.view.default, aten.reshape.default, aten._unsafe_view.default)


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no conv of mixed expert kernels, else a copy with each
    rewritten into the routed sum of the experts' convs."""
    fed: set[fx.Node] = set()  # the nodes computed from the inputs
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    found = {m["out"]: m for n in graph.nodes if (m := _mixed(n, fed)) is not None}
    if not found:
        return graph
    skipped = {m["conv"] for m in found.values()} | {m["permute"] for m in found.values()}
    weights = {v for m in found.values() for v in m["chain"]}  # the mixed weights' views
    new = rebuild(graph, partial(_replace, found, skipped, weights))
    new.eliminate_dead_code()
    return new


def _replace(found: dict, skipped: set, weights: set, new: fx.Graph, node: fx.Node,
             env: dict) -> Any:
    if node in found:
        return _experts(new, node, found[node], env)
    if node in skipped:
        return DROP  # the grouped conv (and timm's permute) the experts' sum replaces
    if node.target is aten._assert_tensor_metadata.default \
            and (node.args[0] in weights or node.args[0] in skipped):
        return DROP  # a check of a mixed weight no longer made
    return None


def _through(v: Any, targets: tuple) -> Any:
    while isinstance(v, fx.Node) and v.op == "call_function" and v.target in targets:
        v = v.args[0]
    return v


def _conv_args(conv: fx.Node) -> tuple[Any, Any, Any, list, list, list, int] | None:
    """(input, weight, bias, stride, padding, dilation, groups); None for a transposed conv."""
    a = list(conv.args)
    if conv.target is aten.convolution.default:
        if a[6]:
            return None
        return a[0], a[1], a[2], a[3], a[4], a[5], int(a[8])
    a += [None, [1, 1], [0, 0], [1, 1], 1][len(a) - 2:]
    return a[0], a[1], a[2], a[3], a[4], a[5], int(a[6])


def _reader(conv: fx.Node) -> tuple[fx.Node, fx.Node | None] | None:
    """The view of the conv's (1, B O, H', W') output back to (B, O, H', W'), directly or
    through timm's permute(1, 0, 2, 3); and that permute."""
    users = list(conv.users)
    if len(users) != 1:
        return None
    permute = None
    if users[0].target is aten.permute.default and list(users[0].args[1]) == [1, 0, 2, 3]:
        permute = users[0]
        users = list(permute.users)
        if len(users) != 1:
            return None
    out = users[0]
    c = tuple(conv.meta["val"].shape)
    if out.target not in _VIEWS or len(c) != 4 or c[0] != 1:
        return None
    s = tuple(out.meta["val"].shape)
    return (out, permute) if len(s) == 4 and s[0] * s[1] == c[1] and s[2:] == c[2:] else None


def _mixed(node: fx.Node, fed: set[fx.Node]) -> dict | None:
    if node.op != "call_function" or node.target not in _CONV:
        return None
    args, read = _conv_args(node), _reader(node)
    if args is None or read is None:
        return None
    x, w, bias, stride, padding, dilation, groups = args
    out, permute = read
    b, o = (int(d) for d in out.meta["val"].shape[:2])
    src = _through(x, _VIEWS)
    mix = _through(w, _VIEWS + (aten._to_copy.default,))
    if src is x or not isinstance(src, fx.Node) or groups % b or not isinstance(mix, fx.Node) \
            or mix.target not in _MM:
        return None
    xs = tuple(src.meta["val"].shape)
    r, experts = mix.args[:2]
    ws = tuple(w.meta["val"].shape)
    if len(xs) != 4 or xs[0] != b or r not in fed or experts in fed \
            or r.meta["val"].dim() != 2 or r.meta["val"].shape[0] != b \
            or experts.meta["val"].dim() != 2 or ws[0] != b * o:
        return None
    if bias is not None:
        bias = _through(bias, _VIEWS)
        if not isinstance(bias, fx.Node) or tuple(bias.meta["val"].shape) != (b, o):
            return None
    chain, v = [], w
    while v is not mix:
        chain.append(v)
        v = v.args[0]
    return {"conv": node, "permute": permute, "chain": [*chain, mix], "out": out, "x": src,
            "r": r, "w": experts, "bias": bias, "kernel": [o, *ws[1:]], "stride": stride,
            "padding": padding, "dilation": dilation, "groups": groups // b}


def _experts(g: fx.Graph, node: fx.Node, m: dict, env: dict) -> fx.Node:
    b = node.meta["val"].shape[0]
    out = None
    for e in range(m["w"].meta["val"].shape[0]):
        w = _op(g, node, aten.view.default,
                (_op(g, node, aten.select.int, (env[m["w"]], 0, e)), m["kernel"]))
        y = _op(g, node, aten.conv2d.default, (env[m["x"]], w, None, m["stride"],
                                               m["padding"], m["dilation"], m["groups"]))
        r = _op(g, node, aten.slice.Tensor, (env[m["r"]], 1, e, e + 1))
        y = _op(g, node, aten.mul.Tensor, (_op(g, node, aten.view.default, (r, [b, 1, 1, 1])),
                                           y))
        out = y if out is None else _op(g, node, aten.add.Tensor, (out, y))
    if m["bias"] is not None:
        bias = _op(g, node, aten.view.default, (env[m["bias"]], [b, -1, 1, 1]))
        out = _op(g, node, aten.add.Tensor, (out, bias))
    return out
