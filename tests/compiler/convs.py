"""Small hand-built QGraphs of convolutions (any stride, padding, dilation, groups) and the
mapper's view of their layers, for the compiler's structure and mapper tests."""

from __future__ import annotations

import itertools

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.compiler import mapper
from qasic.compiler.fuse import fuse
from qasic.compiler.gemm import lower_gemm
from qasic.compiler.memory import image_shape, plan_buffers
from qasic.compiler.pipeline import mapper_layer
from qasic.quant.fixedpoint import quantize_multipliers
from qasic.quant.graph import QGraph, QNode, TensorQ


def out_size(n: int, k: int, s: int, d: int, lo: int, hi: int) -> int:
    return (n + lo + hi - (k - 1) * d - 1) // s + 1


def conv(rng, name: str, src: str, dst: str, ic: int, oc: int, kernel=(3, 3), stride=(1, 1),
         padding=(0, 0, 0, 0), dilation=(1, 1), groups: int = 1, wbits: int = 8) -> QNode:
    lim = (1 << (wbits - 1)) - 1
    kh, kw = kernel
    k = kh * kw * ic // groups
    q, s = quantize_multipliers(rng.uniform(0.5, 2.0, oc) / (np.sqrt(k) * lim * 8))
    attrs = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    return QNode(name, "conv2d", (src,), dst, attrs,
                 {"weight": rng.integers(-lim, lim + 1, (oc, kh, kw, ic // groups)),
                  "bias": rng.integers(-300, 300, oc), "multiplier": q, "shift": s},
                 wbits, f"int{wbits}")


def conv_graph(hw=(6, 6), ic=8, oc=8, kernel=(3, 3), stride=(1, 1), padding=(1, 1, 1, 1),
               dilation=(1, 1), groups=1, relu=False, wbits=8, seed=0, table=False) -> QGraph:
    """x (h, w, ic) -> conv [-> relu] [-> a 256-entry table of the same encoding] -> y."""
    rng = np.random.default_rng(seed)
    (h, w), (kh, kw), (sh, sw), (dh, dw) = hw, kernel, stride, dilation
    pt, pl, pb, pr = padding
    oh, ow = out_size(h, kh, sh, dh, pt, pb), out_size(w, kw, sw, dw, pl, pr)
    nodes = [conv(rng, "conv", "x", "c", ic, oc, kernel, stride, padding, dilation, groups,
                  wbits)]
    tensors = {"x": TensorQ(0.02, 5), "c": TensorQ(0.05, -20)}
    shapes = {"x": (h, w, ic), "c": (oh, ow, oc)}
    if relu:
        nodes.append(QNode("relu", "relu", ("c",), "y"))
        tensors["y"], shapes["y"] = tensors["c"], shapes["c"]
    out = "y" if relu else "c"
    if table:
        shuffle = (np.arange(256) * 37 + 11) % 256 - 128
        nodes.append(QNode("table", "lut", (out,), "t", {"fn": "shuffle", "fn_args": {}},
                           {"table": shuffle}))
        tensors["t"], shapes["t"], out = tensors["c"], shapes["c"], "t"
    return QGraph(f"conv_{kh}x{kw}_s{sh}{sw}_g{groups}", "x", out, tuple(nodes), tensors,
                  shapes)


def resblock_graph(hw: int = 6, c: int = 8, seed: int = 0) -> QGraph:
    """A ResNet basic block: y = relu(conv(relu(conv(x))) + x), 3x3 convs with padding 1, so
    x is read padded by conv1 and unpadded by the add."""
    rng = np.random.default_rng(seed)
    t = {"x": TensorQ(0.05, -3), "a": TensorQ(0.05, -128), "b": TensorQ(0.04, 7),
         "s": TensorQ(0.06, -128)}
    ta, tb, to = t["b"], t["x"], t["s"]
    twice = 2 * max(ta.scale, tb.scale)
    q, s = quantize_multipliers(np.array([ta.scale / twice, tb.scale / twice,
                                          twice / ((1 << 20) * to.scale)]))
    pad = (1, 1, 1, 1)
    nodes = (
        conv(rng, "conv1", "x", "c1", c, c, padding=pad),
        QNode("relu1", "relu", ("c1",), "a"),
        conv(rng, "conv2", "a", "b", c, c, padding=pad),
        QNode("add", "add", ("b", "x"), "s0", {}, {"multiplier": q, "shift": s}),
        QNode("relu2", "relu", ("s0",), "s"),
    )
    tensors = {**t, "c1": t["a"], "s0": t["s"]}
    shapes = dict.fromkeys(["x", "c1", "a", "b", "s0", "s"], (hw, hw, c))
    return QGraph("resblock", "x", "s", nodes, tensors, shapes)


def mlp_graph(sizes=(784, 128, 10), seed: int = 0) -> QGraph:
    """linear-relu ... linear on vectors."""
    rng = np.random.default_rng(seed)
    nodes, tensors, shapes = [], {"x": TensorQ(0.02, 0)}, {"x": (sizes[0],)}
    src = "x"
    for i, (fin, fout) in enumerate(itertools.pairwise(sizes)):
        q, s = quantize_multipliers(rng.uniform(0.5, 2.0, fout) / (np.sqrt(fin) * 127 * 2))
        nodes.append(QNode(f"fc{i}", "linear", (src,), f"h{i}", {},
                           {"weight": rng.integers(-127, 128, (fout, fin)),
                            "bias": rng.integers(-300, 300, fout), "multiplier": q,
                            "shift": s}, 8, "int8"))
        tensors[f"h{i}"], shapes[f"h{i}"] = TensorQ(0.05, -10), (fout,)
        src = f"h{i}"
    return QGraph("mlp", "x", src, tuple(nodes), tensors, shapes, input_layout="NC")


def mapper_layers(graph: QGraph, arch: ArchConfig) -> dict[str, mapper.Layer]:
    """The mapper's view of every GEMM kernel of ``graph`` on ``arch`` (as compile builds it)."""
    kernels = fuse(graph)
    buffers, _ = plan_buffers(graph, kernels, arch)
    flat = {k.output: image_shape(graph.shapes[k.inputs[0]])
            for k in kernels if k.kind == "alias" and k.anchor.op == "flatten"}
    out = {}
    for k in kernels:
        if k.kind == "gemm":
            dst = buffers[k.output]
            table = 1 << dst.bits if k.has("lut") else 0  # a fused table: one byte per code
            g = lower_gemm(graph, k, flat, arch)
            out[k.name] = mapper_layer(g, buffers[k.inputs[0]], dst, table)
    return out
