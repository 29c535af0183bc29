"""A modulated convolution (StyleGAN2's, rosinality's and NVlabs' fused form) rewritten, before
capture, into what it computes: a per-sample weight ``w[b] = c W * s[b, i] * d[b, o]`` (W a
constant (O, I, kh, kw), s a style per input channel, d a demodulation per output channel, both
computed from activations) run as one conv grouped over the batch,

    conv2d(x.view(1, B I, H, W), w.view(B O, I, kh, kw), groups=B).view(B, O, H', W')

is the fixed-weight conv of the activations scaled before and after it,

    conv2d(x * s[b, :, None, None], c W) * d[b, :, None, None],

and the demodulation's sum of squares of such a weight over (I, kh, kw),

    sum_{i,k} (c W[o, i, k] s[b, i])^2 = linear(s ** 2, c^2 sum_k W[:, :, k] ** 2)[b, o],

a linear of the squared styles by the constant weight's energy per (o, i). Capture then meets a
product of activations broadcast over a map (an SE gate's), a conv of a constant weight and a
linear, each of which it already runs. A weight of any other form stays as it is (refused in
one line by the walk, qasic.quant.lowering_ops).
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
_CASTS = (aten.to.dtype, aten._to_copy.default, aten.to.dtype_layout)


def decompose(graph: fx.Graph, inputs: set[str]) -> fx.Graph:
    """``graph`` itself when it holds no modulated conv, else a copy with each rewritten."""
    fed: set[fx.Node] = set()  # the nodes computed from the inputs
    for n in graph.nodes:
        if n.name in inputs or any(a in fed for a in n.all_input_nodes):
            fed.add(n)
    convs = {n: m for n in graph.nodes if (m := _modulated(n, fed)) is not None}
    sums = {n: m for n in graph.nodes if (m := _energy(n, fed)) is not None}
    if not convs:
        return graph
    weights = set()  # the per-sample weights' views and casts the convs read
    for conv in convs:
        v = conv.args[1]
        while isinstance(v, fx.Node) and v.target in (*_CASTS, aten.view.default,
                                                      aten.reshape.default):
            weights.add(v)
            v = v.args[0]
    new = rebuild(graph, partial(_replace, convs, sums, weights))
    new.eliminate_dead_code()
    return new


def _replace(convs: dict, sums: dict, weights: set, new: fx.Graph, node: fx.Node,
             env: dict) -> Any:
    conv = node.args[0] if node.op == "call_function" and node.args else None
    if conv in convs and node is _out_view(conv):
        return _conv(new, node, conv, convs[conv], env)
    if node in convs:
        return DROP  # its one reader, the view back to (B, O, H', W'), is rewritten
    if node.target is aten._assert_tensor_metadata.default and node.args[0] in weights:
        return DROP  # a check of a per-sample weight no longer made
    if node in sums:
        return _sum(new, node, sums[node], env)
    return None


def _factors(node: Any, fed: set[fx.Node]) -> tuple[list, list, list] | None:
    """A product chain's leaves: (constants, scalars, activations); None when it is not one."""
    if isinstance(node, (int, float)):
        return [], [float(node)], []
    if not isinstance(node, fx.Node):
        return None
    if node.op == "call_function" and node.target is aten.mul.Tensor:
        parts = [_factors(a, fed) for a in node.args[:2]]
        if None in parts:
            return None
        return tuple(p + q for p, q in zip(*parts, strict=True))
    return ([], [], [node]) if node in fed else ([node], [], [])


def _weight(node: Any, fed: set[fx.Node], b: int) -> dict | None:
    """A per-sample weight (B, O, I, kh, kw): one constant W, scalars, per-input-channel
    factors (B, 1, I, 1, 1) and per-output-channel ones (B, O, 1, 1, 1)."""
    f = _factors(node, fed)
    if f is None or len(f[0]) != 1 or not f[2]:
        return None
    w = f[0][0].meta.get("val")
    shape = tuple(node.meta["val"].shape)
    if w is None or len(shape) != 5 or shape[0] != b or w.dim() not in (4, 5) \
            or (w.dim() == 5 and w.shape[0] != 1) or tuple(w.shape[-4:]) != shape[1:]:
        return None
    _, o, i, _, _ = shape
    ins, outs = [], []
    for a in f[2]:
        s = tuple(a.meta["val"].shape)
        if s == (b, 1, i, 1, 1):
            ins.append(a)
        elif s == (b, o, 1, 1, 1):
            outs.append(a)
        else:
            return None
    scale = 1.0
    for c in f[1]:
        scale *= c
    return {"w": f[0][0], "scale": scale, "ins": ins, "outs": outs, "shape": shape}


def _modulated(node: fx.Node, fed: set[fx.Node]) -> dict | None:
    """conv2d(x.view(1, B I, H, W), w.view(B O, I, kh, kw), None, ..., groups=B) whose one
    reader views it back to (B, O, H', W'), w a per-sample weight (``_weight``)."""
    if node.op != "call_function" or node.target not in _CONV or _out_view(node) is None:
        return None
    args = list(node.args)
    if node.target is aten.convolution.default:
        if args[6] or len(args) < 9:  # transposed
            return None
        groups = args[8]
    else:
        groups = args[6] if len(args) > 6 else node.kwargs.get("groups", 1)
    x, w = _uncast(args[0]), _uncast(args[1])
    bias = args[2] if len(args) > 2 else node.kwargs.get("bias")
    if bias is not None or not all(isinstance(a, fx.Node) and a.target in (
            aten.view.default, aten.reshape.default) for a in (x, w)):
        return None
    src, wsrc = x.args[0], w.args[0]
    xs = tuple(src.meta["val"].shape)
    b = int(groups)
    if len(xs) != 4 or xs[0] != b or b < 1:
        return None
    m = _weight(wsrc, fed, b)
    if m is None or m["shape"][2] != xs[1]:
        return None
    return {**m, "x": src, "fed": src in fed}


def _uncast(v: Any) -> Any:
    """``v`` through casts to its own dtype (NVlabs' ``w.to(x.dtype)``)."""
    while isinstance(v, fx.Node) and v.target in _CASTS \
            and v.meta["val"].dtype == v.args[0].meta["val"].dtype:
        v = v.args[0]
    return v


def _out_view(conv: fx.Node) -> fx.Node | None:
    users = list(conv.users)
    if len(users) != 1 or users[0].target not in (aten.view.default, aten.reshape.default):
        return None
    out = tuple(users[0].meta["val"].shape)
    c = tuple(conv.meta["val"].shape)
    return users[0] if len(out) == 4 and c[0] == 1 and out[0] * out[1] == c[1] \
        and out[2:] == c[2:] else None


def _energy(node: fx.Node, fed: set[fx.Node]) -> dict | None:
    """sum(p ** 2, [2, 3, 4]) (p * p, p.square()) of a per-sample weight p with per-input-channel
    factors only: the demodulation's statistic."""
    if node.op != "call_function" or node.target is not aten.sum.dim_IntList:
        return None
    sq = node.args[0]
    if not isinstance(sq, fx.Node) or sq.op != "call_function":
        return None
    if not ((sq.target is aten.pow.Tensor_Scalar and sq.args[1] == 2)
            or sq.target is aten.square.default
            or (sq.target is aten.mul.Tensor and sq.args[0] is sq.args[1])):
        return None
    p = sq.args[0]
    if not isinstance(p, fx.Node) or p.meta["val"].dim() != 5:
        return None
    dims = sorted(int(d) % 5 for d in node.args[1])
    m = _weight(p, fed, int(p.meta["val"].shape[0]))
    if m is None or m["outs"] or dims != [2, 3, 4] or node.args[2:3] not in ((), (False,),
                                                                               (True,)):
        return None
    return m



def _product(g: fx.Graph, node: fx.Node, parts: list[fx.Node], shape: list[int]) -> fx.Node:
    """The factors viewed as ``shape`` and multiplied."""
    out = None
    for a in parts:
        v = _op(g, node, aten.view.default, (a, shape))
        out = v if out is None else _op(g, node, aten.mul.Tensor, (out, v))
    return out


def _conv(g: fx.Graph, node: fx.Node, conv: fx.Node, m: dict, env: dict) -> fx.Node:
    b, o, i, kh, kw = m["shape"]
    x = env[m["x"]]
    if m["ins"]:
        s = _product(g, node, [env[a] for a in m["ins"]], [b, i, 1, 1])
        if not m["fed"]:  # a constant input (StyleGAN's ConstantInput): the styles spread over
            # the map (a nearest resize: a move of codes), times the constant
            s = _op(g, node, aten.upsample_nearest2d.vec,
                    (s, list(m["x"].meta["val"].shape[2:]), None))
        x = _op(g, node, aten.mul.Tensor, (s, x))
    w = _op(g, node, aten.view.default, (env[m["w"]], [o, i, kh, kw]))
    if m["scale"] != 1.0:
        w = _op(g, node, aten.mul.Tensor, (w, m["scale"]))
    a = list(conv.args)
    if conv.target is aten.convolution.default:
        stride, padding, dilation = a[3], a[4], a[5]
    else:
        stride, padding, dilation = (a + [[1, 1], [0, 0], [1, 1]][len(a) - 3:])[3:6]
    y = _op(g, node, aten.conv2d.default, (x, w, None, stride, padding, dilation, 1))
    if m["outs"]:
        y = _op(g, node, aten.mul.Tensor,
                (y, _product(g, node, [env[a] for a in m["outs"]], [b, o, 1, 1])))
    return y


def _sum(g: fx.Graph, node: fx.Node, m: dict, env: dict) -> fx.Node:
    b, o, i, _, _ = m["shape"]
    s = _product(g, node, [env[a] for a in m["ins"]], [b, i])
    energy = _op(g, node, aten.view.default, (env[m["w"]], [o, i, -1]))
    energy = _op(g, node, aten.sum.dim_IntList,
                 (_op(g, node, aten.pow.Tensor_Scalar, (energy, 2)), [2]))
    if m["scale"] != 1.0:
        energy = _op(g, node, aten.mul.Tensor, (energy, m["scale"] ** 2))
    y = _op(g, node, aten.linear.default, (_op(g, node, aten.mul.Tensor, (s, s)), energy))
    return _op(g, node, aten.view.default, (y, list(node.meta["val"].shape)))
