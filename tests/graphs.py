"""Synthetic QGraphs with random integer parameters, for compiler and simulator tests."""

from __future__ import annotations

import numpy as np

from qasic.quant.fixedpoint import quantize_multipliers
from qasic.quant.graph import QGraph, QNode, TensorQ


def _requant(rng, n: int, k: int, wbits: int):
    # scale so outputs use a good part of int8: M ~ 1 / (k * 2^(wbits-1) * 8)
    m = rng.uniform(0.5, 2.0, n) / (k * (1 << (wbits - 1)) * 4)
    return quantize_multipliers(m)


def conv_node(rng, name, src, dst, ic, oc, k=3, stride=1, pad=1, wbits=8, clamp=None):
    lim = (1 << (wbits - 1)) - 1
    w = rng.integers(-lim, lim + 1, (oc, k, k, ic))
    q, s = _requant(rng, oc, k * k * ic, wbits)
    attrs = {"stride": stride, "padding": pad}
    if clamp:
        attrs["clamp"] = clamp
    return QNode(name, "conv2d", (src,), dst, attrs,
                 {"weight": w, "bias": rng.integers(-2000, 2000, oc), "multiplier": q,
                  "shift": s}, wbits, f"int{wbits}")


def linear_node(rng, name, src, dst, fin, fout, wbits=8):
    lim = (1 << (wbits - 1)) - 1
    q, s = _requant(rng, fout, fin, wbits)
    return QNode(name, "linear", (src,), dst, {},
                 {"weight": rng.integers(-lim, lim + 1, (fout, fin)),
                  "bias": rng.integers(-2000, 2000, fout), "multiplier": q, "shift": s},
                 wbits, f"int{wbits}")


def cnn_graph(seed=0, wbits=(8, 8, 8), hw=8, c1=16, c2=32, classes=10) -> QGraph:
    """conv-relu, conv-relu-maxpool, flatten, linear: the default model's shape."""
    rng = np.random.default_rng(seed)
    t = {"x": TensorQ(0.02, -128), "c1": TensorQ(0.05, -128), "r1": TensorQ(0.05, -128),
         "c2": TensorQ(0.05, -128), "r2": TensorQ(0.05, -128), "p": TensorQ(0.05, -128),
         "f": TensorQ(0.05, -128), "y": TensorQ(0.1, 3)}
    h2 = hw // 2
    shapes = {"x": (hw, hw, 1), "c1": (hw, hw, c1), "r1": (hw, hw, c1), "c2": (hw, hw, c2),
              "r2": (hw, hw, c2), "p": (h2, h2, c2), "f": (h2 * h2 * c2,), "y": (classes,)}
    nodes = (
        conv_node(rng, "conv1", "x", "c1", 1, c1, wbits=wbits[0]),
        QNode("relu1", "relu", ("c1",), "r1"),
        conv_node(rng, "conv2", "r1", "c2", c1, c2, wbits=wbits[1]),
        QNode("relu2", "relu", ("c2",), "r2"),
        QNode("pool", "maxpool2d", ("r2",), "p", {"kernel": 2, "stride": 2}),
        QNode("flatten", "flatten", ("p",), "f"),
        linear_node(rng, "fc", "f", "y", h2 * h2 * c2, classes, wbits=wbits[2]),
    )
    return calibrated(QGraph("synthetic_cnn", "x", "y", nodes, t, shapes))


def residual_graph(seed=0) -> QGraph:
    """linear-relu, linear, add(skip), relu, linear: exercises ADD and a standalone ReLU."""
    rng = np.random.default_rng(seed)
    t = {n: TensorQ(s, z) for n, s, z in [("x", 0.02, 0), ("h", 0.05, -128), ("hr", 0.05, -128),
                                            ("g", 0.04, 5), ("s", 0.06, -10), ("sr", 0.06, -10),
                                            ("y", 0.1, 0)]}
    shapes = {"x": (24,), "h": (24,), "hr": (24,), "g": (24,), "s": (24,), "sr": (24,),
              "y": (10,)}
    ta, tb, to = t["hr"], t["g"], t["s"]
    twice = 2 * max(ta.scale, tb.scale)
    q, s = quantize_multipliers(np.array([ta.scale / twice, tb.scale / twice,
                                          twice / ((1 << 20) * to.scale)]))
    nodes = (
        linear_node(rng, "fc1", "x", "h", 24, 24),
        QNode("relu1", "relu", ("h",), "hr"),
        linear_node(rng, "fc2", "hr", "g", 24, 24, wbits=4),
        QNode("add", "add", ("hr", "g"), "s", {}, {"multiplier": q, "shift": s}),
        QNode("relu2", "relu", ("s",), "sr"),
        linear_node(rng, "fc3", "sr", "y", 24, 10, wbits=2),
    )
    return QGraph("synthetic_residual", "x", "y", nodes, t, shapes, input_layout="NC")


def random_codes(graph: QGraph, n: int, seed: int = 1) -> np.ndarray:
    """Random input codes over the input encoding's range (every byte for FP8)."""
    rng = np.random.default_rng(seed)
    tq = graph.tensors[graph.input]
    lo, hi = (-128, 127) if tq.is_fp else (tq.qmin, tq.qmax)
    return rng.integers(lo, hi + 1, (n, *graph.input_shape))


def with_act_bits(g: QGraph, bits: int) -> QGraph:
    """``g`` with every activation at ``bits`` (zero points mapped into range), recalibrated."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    tensors = {name: TensorQ(t.scale, int(np.clip(t.zero_point, lo, hi)), bits)
               for name, t in g.tensors.items()}
    nodes = []
    for n in g.nodes:
        if "clamp" in n.attrs:
            out = tensors[n.output]
            n = QNode(n.name, n.op, n.inputs, n.output,
                      dict(n.attrs, clamp=(out.zero_point, out.qmax)), n.params, n.weight_bits,
                      n.weight_format)
        nodes.append(n)
    return calibrated(QGraph(f"{g.name}_a{bits}", g.input, g.output, tuple(nodes), tensors,
                             g.shapes))


def strided_graph(seed=0, hw=9, c_in=3, c1=8, c2=16, classes=10) -> QGraph:
    """conv(stride 2, pad 1)-relu, conv(stride 2, pad 0), flatten, linear: strided im2col."""
    rng = np.random.default_rng(seed)
    h1 = (hw + 2 - 3) // 2 + 1
    h2 = (h1 - 3) // 2 + 1
    t = {"x": TensorQ(0.02, 7), "c1": TensorQ(0.05, -100), "r1": TensorQ(0.05, -100),
         "c2": TensorQ(0.05, 12), "f": TensorQ(0.05, 12), "y": TensorQ(0.1, -3)}
    shapes = {"x": (hw, hw, c_in), "c1": (h1, h1, c1), "r1": (h1, h1, c1), "c2": (h2, h2, c2),
              "f": (h2 * h2 * c2,), "y": (classes,)}
    nodes = (
        conv_node(rng, "conv1", "x", "c1", c_in, c1, stride=2, pad=1, wbits=6),
        QNode("relu1", "relu", ("c1",), "r1"),
        conv_node(rng, "conv2", "r1", "c2", c1, c2, stride=2, pad=0, wbits=3,
                  clamp=(-100, 100)),
        QNode("flatten", "flatten", ("c2",), "f"),
        linear_node(rng, "fc", "f", "y", h2 * h2 * c2, classes, wbits=5),
    )
    return QGraph("synthetic_strided", "x", "y", nodes, t, shapes)


# FP4 E2M1 values times 2 (exact integers), indexed by the 4-bit code: sign bit 3, |value| 0..6.
E2M1_X2 = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12])


def decoded(node: QNode, lut: np.ndarray, code_bits: int, seed: int = 0) -> QNode:
    """``node`` with random codes decoded through ``lut`` (weight = lut[codes])."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, len(lut), node.params["weight"].shape)
    params = dict(node.params, weight=lut[codes], weight_codes=codes, weight_lut=lut)
    return QNode(node.name, node.op, node.inputs, node.output, node.attrs, params, code_bits,
                 f"lut{code_bits}")


def calibrated(g: QGraph, seed: int = 1) -> QGraph:
    """``g`` with every conv/linear multiplier set from its real accumulators on random inputs,
    so outputs spread over int8 instead of saturating (random weights make sums large)."""
    from qasic.quant import reference

    x = random_codes(g, 8, seed)
    env = {g.input: x}
    nodes = []
    for n in g.nodes:
        if n.op in ("conv2d", "linear"):
            v = g.tensors[n.inputs[0]].values(env[n.inputs[0]])
            w = reference.layer_weight(n)
            if n.op == "conv2d":
                oc, kh, kw, _ = w.shape
                cols = reference.im2col(reference.pad_nhwc(v, n.attrs["padding"], 0), kh, kw,
                                        n.attrs["stride"])
                acc = cols @ w.reshape(oc, -1).T
            else:
                acc = v @ w.T
            spread = acc.reshape(-1, acc.shape[-1]).std(axis=0) + 1.0
            out = g.tensors[n.output]
            # FP: in levels, 1/56 of the largest (E4M3: 4096, value 8 of 448)
            target = out.max_magnitude / 56 if out.is_fp else (out.qmax - out.qmin) / 6
            q, s = quantize_multipliers(target / spread)
            n = QNode(n.name, n.op, n.inputs, n.output, n.attrs,
                      dict(n.params, multiplier=q, shift=s),
                      n.weight_bits, n.weight_format)
        env[n.output] = reference.run_node(g, n, [env[i] for i in n.inputs])
        nodes.append(n)
    return QGraph(g.name, g.input, g.output, tuple(nodes), g.tensors, g.shapes)


def lut_graph(lut: np.ndarray = E2M1_X2, code_bits: int = 4, seed: int = 0) -> QGraph:
    """cnn_graph with conv2 and fc weights decoded through ``lut`` (e.g. FP4, or a wide FP8 grid).
    Multipliers are rescaled so outputs stay in range."""
    g = cnn_graph(seed=seed)
    scale = max(1, int(np.abs(lut).max()) // 8)
    nodes = []
    for n in g.nodes:
        if n.name in ("conv2", "fc"):
            n = decoded(n, lut, code_bits, seed)
            q, s = quantize_multipliers(
                [q * 2.0 ** (s - 31) / scale for q, s in zip(n.params["multiplier"],
                                                             n.params["shift"])])
            n = QNode(n.name, n.op, n.inputs, n.output, n.attrs,
                      dict(n.params, multiplier=q, shift=s), n.weight_bits, n.weight_format)
        nodes.append(n)
    return calibrated(QGraph("lut_cnn", g.input, g.output, tuple(nodes), g.tensors, g.shapes))


def blocked_graph(mode: str = "shift", size: int = 32, seed: int = 0, lut: bool = True,
                  torch_order: bool = False) -> QGraph:
    """lut_graph (or cnn_graph with 4-bit INT weights) with conv2 and fc block-scaled: random
    block bytes (shift 0..MAX_SHIFT or multipliers 1..255). fc's blocks run in the memory order
    of its flattened input, as qasic.quant forms them (``torch_order``: in torch's feature order,
    which the compiler must refuse)."""
    from qasic.quant.blockscale import MAX_SHIFT, MULT_MAX
    from qasic.quant.reference import flatten_order

    g = lut_graph(seed=seed) if lut else cnn_graph(seed=seed, wbits=(8, 4, 4))
    rng = np.random.default_rng(seed + 1)
    nodes = []
    for n in g.nodes:
        if n.name in ("conv2", "fc"):
            k = int(np.prod(n.params["weight"].shape[1:]))
            nb = -(-k // size)
            hi = MAX_SHIFT + 1 if mode == "shift" else MULT_MAX + 1
            byte = rng.integers(0 if mode == "shift" else 1, hi, (n.params["weight"].shape[0], nb))
            byte[:, 0] = 0 if mode == "shift" else 1
            block_of = np.arange(k) // size
            if n.name == "fc" and not torch_order:
                h, w, c = g.shapes["p"]
                block_of = np.empty(k, dtype=np.int64)
                block_of[flatten_order(h, w, c)] = np.arange(k) // size
            params = dict(n.params, block_scale=byte, block_of=block_of)
            if mode == "mulzp":  # asymmetric INT4: codes q, zero points z, weight q - z
                q = rng.integers(-8, 8, n.params["weight"].shape)
                z = rng.integers(-8, 8, byte.shape)
                oc = q.shape[0]
                params.update(weight_codes=q, block_zero=z,
                              weight=(q.reshape(oc, -1) - z[:, block_of]).reshape(q.shape))
            n = QNode(n.name, n.op, n.inputs, n.output,
                      dict(n.attrs, block_mode=mode, block_size=size), params,
                      n.weight_bits, f"{n.weight_format}_g{size}")
        nodes.append(n)
    return calibrated(QGraph("blocked_cnn", g.input, g.output, tuple(nodes), g.tensors, g.shapes))


def with_fp8(g: QGraph, fmt: str = "fp8_e4m3") -> QGraph:
    """``g`` with every activation in the FP8 format ``fmt`` (same scales), adds rescaled,
    recalibrated."""
    tensors = {name: TensorQ(t.scale, 0, 8, fmt) for name, t in g.tensors.items()}
    nodes = []
    for n in g.nodes:
        attrs, params = dict(n.attrs), dict(n.params)
        if "clamp" in attrs:
            attrs["clamp"] = (0, tensors[n.output].qmax)
        if n.op == "add":
            ua, ub = (tensors[t].unit for t in n.inputs)
            twice = 2 * max(ua, ub)
            params["multiplier"], params["shift"] = quantize_multipliers(
                np.array([ua / twice, ub / twice, twice / ((1 << 20) * tensors[n.output].unit)]))
        nodes.append(QNode(n.name, n.op, n.inputs, n.output, attrs, params, n.weight_bits,
                           n.weight_format))
    return calibrated(QGraph(f"{g.name}_fp8", g.input, g.output, tuple(nodes), tensors,
                             g.shapes, g.input_layout))


def fp8_graph(seed: int = 0, hw: int = 8, c1: int = 8, c2: int = 16, classes: int = 10,
              fmt: str = "fp8_e4m3") -> QGraph:
    """FP8 activations (``fmt``, an isa.table.ACT_FORMATS minifloat) everywhere: conv-relu, conv,
    maxpool of signed values (codes must compare by value), relu, flatten, linear."""
    rng = np.random.default_rng(seed)
    fp = TensorQ(0.05, 0, 8, fmt)
    h2 = hw // 2
    shapes = {"x": (hw, hw, 1), "c1": (hw, hw, c1), "c2": (hw, hw, c2), "p": (h2, h2, c2),
              "r": (h2, h2, c2), "f": (h2 * h2 * c2,), "y": (classes,)}
    relu_clamp = (0, fp.qmax)
    nodes = (
        conv_node(rng, "conv1", "x", "c1", 1, c1, clamp=relu_clamp),
        conv_node(rng, "conv2", "c1", "c2", c1, c2),
        QNode("pool", "maxpool2d", ("c2",), "p", {"kernel": 2, "stride": 2}),
        QNode("relu", "relu", ("p",), "r"),
        QNode("flatten", "flatten", ("r",), "f"),
        linear_node(rng, "fc", "f", "y", h2 * h2 * c2, classes),
    )
    return calibrated(QGraph("fp8_cnn", "x", "y", nodes, dict.fromkeys(shapes, fp), shapes))
