"""Encoding rules of the transformer ops, which calibration (qasic.quant.calibrate) follows.

- Token ids (input layout "tokens") are their own codes: scale 1, zero point 0, 32 bits.
- A softmax output has the fixed encoding ``intops.softmax_encoding(bits)`` (p = code / qmax,
  zero point 0), ``bits`` QuantConfig.softmax_width (softmax_bits, 8 by default: wider than
  narrow activations, whose 1/qmax step rounds probabilities near 1/n to 0).
- A key mask (an ``embedding`` with a 1-D table) and a ``topk_mask`` hold codes 0/1: scale 1,
  zero point 0, 8 bits; a ``topk_mask``'s scores are INT codes (it compares codes).
- A node with attrs ``integer_codes`` (bits) holds exact integers: scale 1, those bits, zero
  point attrs ``integer_zero_point`` or 0 (the position-id chain of qasic.quant.positions).
  One with attrs ``fixed_codes`` (scale, zero point, bits) holds that encoding (the distances
  and weights of qasic.quant.grid_sample, whose ranges the op fixes).
- The operands of a ``matmul`` are symmetric INT tensors (zero point 0): the array multiplies
  raw codes with no zero-point correction on either side. The requirement goes back through
  the ops that share their input's encoding (reshape, permute, ...) to the tensor's producer
  (the linear that made Q, K or V), whose range is then [-max|x|, max|x|].
- The inputs of ``softmax`` and ``norm`` (attention scores, the residual stream) and the
  operands of ``matmul`` are INT codes even when activations are FP8: the integer softmax and
  normalization kernels (qasic.quant.intops) and the dynamic-weight GEMM read integers.
- An average pool (``KEEPS_FORMAT``) writes the encoding it reads: an INT requirement on its
  output is one on its input, and an INT input makes its output INT.
- A ``norm`` input is INT of QuantConfig.norm_input_bits (default 16; the activation width
  where NORM's int64 sums cannot take int16 codes of its rows or the accelerator cannot store
  the tensor as int16: ``QuantConfig.norm_bits_for``, ``norm_lengths``, ``int16_storable``): the
  residual sums carry the outlier channels of transformers (LLM.int8(), SmoothQuant), which an
  8-bit per-tensor step cannot hold next to the ordinary ones.
- With QuantConfig.norm_residual_bits a norm output that feeds a residual ``add`` gets a second
  norm node (``split_norm_residuals``, attrs ``residual_copy``) whose INT output of that width
  feeds the adds; the GEMMs keep reading the first (8-bit or FP8) one. In a post-LN
  transformer the norm output is the residual stream.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from qasic.quant.fgraph import FGraph, FNode
from qasic.quant.graph import TOKENS, TensorQ
from qasic.quant.intops import softmax_encoding
from qasic.quant.observers import EMPTY_SCALE

TOKEN_IDS = TensorQ(1.0, 0, 32)
KEY_MASK = TensorQ(1.0, 0, 8)
INTEGER_CODES = "integer_codes"  # attr: exact integer codes of these bits (quant.positions)
INTEGER_ZERO_POINT = "integer_zero_point"  # attr: and this zero point (default 0)
# attr: (scale, zero point, bits), an encoding fixed by the op's meaning (quant.grid_sample's
# distances in pixels: [-1, 1], the tent's support; its weights: [0, 1])
FIXED_CODES = "fixed_codes"
SYMMETRIC, INT, NORM_INPUT = "symmetric", "int", "norm input"
_PRIORITY = (INT, NORM_INPUT, SYMMETRIC)  # a tensor with two needs gets the later one


def input_encoding(graph: FGraph) -> TensorQ | None:
    """The graph input's fixed encoding, or None (observed)."""
    return TOKEN_IDS if graph.input_layout == TOKENS else None


def _softmax(node: FNode, bits: int) -> TensorQ:
    scale, zp = softmax_encoding(bits)
    return TensorQ(scale, zp, bits)


def _integer(node: FNode, bits: int) -> TensorQ | None:
    fixed = node.attrs.get(FIXED_CODES)
    if fixed is not None:
        return TensorQ(float(fixed[0]), int(fixed[1]), int(fixed[2]))
    wide = node.attrs.get(INTEGER_CODES)
    return TensorQ(1.0, int(node.attrs.get(INTEGER_ZERO_POINT, 0)), int(wide)) if wide else None


def _embedding(node: FNode, bits: int) -> TensorQ | None:
    return KEY_MASK if np.ndim(node.params["table"]) == 1 else _integer(node, bits)


# op -> (node, softmax output bits: QuantConfig.softmax_width) -> its output's fixed encoding,
# or None (observed)
FIXED: dict[str, Callable[[FNode, int], TensorQ | None]] = {
    "softmax": _softmax,
    "embedding": _embedding,
    "topk_mask": lambda node, bits: KEY_MASK,
    "linear": _integer,
    "matmul": _integer,
    "mul": _integer,
    "lut": _integer,
}


def fixed_encoding(node: FNode, bits: int) -> TensorQ | None:
    rule = FIXED.get(node.op)
    return None if rule is None else rule(node, bits)


# op -> what each of its inputs needs (by position)
NEEDS = {"matmul": (SYMMETRIC, SYMMETRIC), "softmax": (INT,), "norm": (NORM_INPUT,),
         "topk_mask": (INT,)}
# ops whose kernel writes the encoding it reads (isa.table POOL has one fmt): an INT output
# needs an INT input (an FP8 image average-pooled into a matmul's operand)
KEEPS_FORMAT = ("avgpool2d",)


def requirements(graph: FGraph, shares_input: tuple[str, ...]) -> dict[str, str]:
    """{tensor: SYMMETRIC, NORM_INPUT or INT} for every tensor whose producer must calibrate
    it so (found back through the ops in ``shares_input``); each implies INT."""
    need: dict[str, str] = {}
    for node in graph.nodes:
        for t, kind in zip(node.inputs, NEEDS.get(node.op, ())):
            src = _source(graph, t, shares_input)
            if _PRIORITY.index(kind) >= _PRIORITY.index(need.get(src, INT)):
                need[src] = kind
    for node in reversed(graph.nodes):  # consumers first: a chain of pools passes it on
        if node.op in KEEPS_FORMAT and node.output in need:
            need.setdefault(_source(graph, node.inputs[0], shares_input), INT)
    return need


# int16 codes on the accelerator (compiler.pipeline._check_wide): these ops' kernels write them
# (ADD, NORM, a conv/linear's or a matmul's POST with no table fused), these read them (ADD,
# NORM), and these only move them (views, or a permute's DMA, which copies bytes: their readers
# count)
INT16_WRITERS = ("add", "norm", "linear", "conv2d", "matmul")
INT16_READERS = ("add", "norm")
INT16_VIEWS = ("reshape", "flatten", "permute")


def int16_storable(graph: FGraph, tensor: str) -> bool:
    """Whether ``tensor``'s codes can be int16 on the accelerator: its producer writes them and
    every reader (through reshapes and permutes) reads them. The graph input (the host's codes)
    is not. A concat's output is when each input is written by such a producer into the
    concat's buffer (compiler.memory's views; the input's only reader, taking the concat's
    TensorQ: quant.calibrate.concat_pins), not copied by a requant table."""
    p = graph.producer(tensor)
    return p is not None and _int16_written(graph, p) and _int16_readers(graph, tensor)


def _int16_written(graph: FGraph, node: FNode) -> bool:
    if node.op != "concat":
        return node.op in INT16_WRITERS
    return all((p := graph.producer(t)) is not None and p.op in INT16_WRITERS
               and len(graph.users(t)) == 1 and t != graph.output for t in node.inputs)


def _int16_readers(graph: FGraph, tensor: str) -> bool:
    return all(u.op in INT16_READERS or (u.op in INT16_VIEWS and _int16_readers(graph, u.output))
               for u in graph.users(tensor))


def int16_rows(graph: FGraph) -> list[str]:
    """The embedding rows that can be int16 codes (QuantConfig.embedding_bits): an embedding
    lookup of a 2-D table coded by observation (not a key mask's 0/1 rows, not exact integer
    codes), or a constant (a learned position table, folded when its ids are constants), read
    only by adds and norms (through reshapes and permutes), not the graph output. The GATHER
    copies a table row's bytes whatever they encode (compiler.moves); a constant's codes are
    packed at their stored bits (compiler.memory)."""
    return [n.output for n in graph.nodes
            if n.op in ("embedding", "constant") and fixed_encoding(n, 8) is None
            and n.output != graph.output and graph.users(n.output)
            and _int16_readers(graph, n.output)]


def norm_lengths(graph: FGraph, shares_input: tuple[str, ...]) -> dict[str, int]:
    """{tensor: the longest row a norm reads it in} for every tensor ``requirements`` marks
    NORM_INPUT or that a norm reads through ``shares_input`` ops (its width may depend on it:
    QuantConfig.norm_bits_for)."""
    out: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "norm":
            src = _source(graph, node.inputs[0], shares_input)
            out[src] = max(out.get(src, 0), int(graph.shapes[node.inputs[0]][-1]))
    return out


def _source(graph: FGraph, tensor: str, shares_input: tuple[str, ...]) -> str:
    p = graph.producer(tensor)
    while p is not None and p.op in shares_input:
        tensor = p.inputs[0]
        p = graph.producer(tensor)
    return tensor


def symmetric(lo: float, hi: float, bits: int) -> TensorQ:
    """INT encoding of [-m, m], m = max(|lo|, |hi|): zero point 0, codes +-(2^(b-1) - 1)."""
    m = max(abs(lo), abs(hi))
    return TensorQ(m / ((1 << (bits - 1)) - 1) if m > 0 else EMPTY_SCALE, 0, bits)


RESIDUAL_COPY = "residual_copy"  # the attr marking split_norm_residuals' copies


def split_norm_residuals(graph: FGraph) -> FGraph:
    """Each norm whose output feeds an ``add`` (and is not the graph output) gets a copy, the
    node ``<name>.residual`` with attrs ``residual_copy``, inserted after it; the adds read the
    copy, every other reader the original. A norm only adds read is marked instead of copied.
    Idempotent."""
    nodes, shapes = [], dict(graph.shapes)
    renamed: dict[tuple[str, str], str] = {}  # (add node, tensor) -> the copy it reads
    for node in graph.nodes:
        node = replace(node, inputs=tuple(renamed.get((node.name, t), t) for t in node.inputs))
        users = graph.users(node.output)
        adds = [u for u in users if u.op == "add"]
        if node.op != "norm" or not adds or node.output == graph.output \
                or node.attrs.get(RESIDUAL_COPY):
            nodes.append(node)
            continue
        if len(adds) == len(users):
            nodes.append(replace(node, attrs={**node.attrs, RESIDUAL_COPY: True}))
            continue
        name = f"{node.name}.residual"
        nodes += [node, replace(node, name=name, output=name,
                                attrs={**node.attrs, RESIDUAL_COPY: True})]
        shapes[name] = shapes[node.output]
        renamed.update({(a.name, node.output): name for a in adds})
    return replace(graph, nodes=tuple(nodes), shapes=shapes)


def residual_copies(graph: FGraph) -> set[str]:
    """Outputs of the norms ``split_norm_residuals`` made or marked for residual adds."""
    return {n.output for n in graph.nodes if n.op == "norm" and n.attrs.get(RESIDUAL_COPY)}
