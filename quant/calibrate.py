"""Calibration: check the data, run the float graph on it, pick every activation's TensorQ.

Sharing rules (the compiler relies on them to fuse without changing a bit):
- relu, clamp, maxpool2d, flatten, reshape and upsample_nearest outputs share their input's
  TensorQ (they only move, repeat or drop codes);
- a conv2d/linear/add/mul whose only user is a relu or clamp is calibrated on that activation's
  output and clamps at its bounds' codes (relu: the zero point), so the activation is a no-op;
  a clamp with no such producer becomes a lut of hardtanh (``prepare``);
- concat: the output and every input share one TensorQ, observed on the concat's output. An
  input made by a requantizing op (REQUANTIZERS, or one through its fused relu/clamp, or
  through CARRIES ops each read by the next alone: a max-pool over time) is calibrated to
  it; any other input (the graph input, a pool of a tensor others read, a tensor another
  concat pinned, a tensor another reader permutes or reshapes across its channels, which
  then needs its own bytes) passes through a ``lut`` "requant" node that ``prepare`` inserts;
- a ``channels`` view (a chunk of the last axis) that matmuls read, of a table's output that
  no other reader needs symmetric, passes through a requant lut too (quant.view_requant): its
  own symmetric encoding, the table's output affine;
- every other op's output is observed on its own values, under the transformer ops' rules
  (qasic.quant.encodings): token ids, softmax outputs and key masks have fixed encodings;
  matmul operands are symmetric INT and softmax/norm inputs INT, even with FP8 activations;
- the graph output is observed by QuantConfig.output_observer ('minmax', or 'top': the part
  below every calibration vector's median may clip), never clipping its max (clipped logits
  would tie), as INT of QuantConfig.output_bits when that is set;
- an embedding lookup or a constant (a learned position table) that only adds and norms read
  (encodings.int16_rows) is INT of QuantConfig.embedding_bits (16: int16 codes), a lookup's
  range observed on its whole table (any id may come, not only the calibration's);
- a norm's residual copy (QuantConfig.norm_residual_bits, encodings.split_norm_residuals) is
  INT of norm_residual_bits;
- a softmax's scores with attention sinks (GPT-OSS, qasic.quant.sinks) are observed with the
  sinks' logits too: the range holds every sink, which is coded as a score;
- a recurrence unrolled over the positions (quant.recurrence: Mamba's selective scan, RWKV's
  WKV, the gated delta rule's, xLSTM's mLSTM): each role (Mamba's: the selections of dA, dBx
  and C, the decay, the state h, the output y) has one TensorQ at every position, observed on
  all positions' values at once, so a decode step at any position runs the same
  requantizations on the state it reads; in a recurrence that starts from 0 (the gated delta
  rule's), a role that can be int16 codes (an add's or a matmul's output that adds and norms
  alone read, not a state) is INT of QuantConfig.recurrence_bits.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from qasic.errors import InputError, UnsupportedOpError
from qasic.quant import recurrence
from qasic.quant.config import QuantConfig
from qasic.quant.encodings import (
    INT,
    KEEPS_FORMAT,
    NORM_INPUT,
    SYMMETRIC,
    TOKEN_IDS,
    fixed_encoding,
    input_encoding,
    int16_rows,
    int16_storable,
    norm_lengths,
    requirements,
    residual_copies,
    symmetric,
)
from qasic.quant.fgraph import FGraph, FNode, as_input
from qasic.quant.graph import SEQUENCE, TOKENS, TensorQ, outside_tables
from qasic.quant.matmul_parts import split_table_parts
from qasic.quant.observers import (
    MSE_OBSERVERS,
    affine,
    fp_mse_absmax,
    fp_tensor,
    histogram_range,
    minmax_range,
    moving_average_range,
    percentile_range,
    top_range,
)
from qasic.quant.view_requant import requant_symmetric_views

SHARES_INPUT = ("relu", "clamp", "maxpool2d", "flatten", "reshape", "upsample_nearest",
                "permute", "channels")
RELU_FUSABLE = ("conv2d", "linear", "add", "mul")  # take a following relu/clamp as their clamp
ACTIVATIONS = ("relu", "clamp")
REQUANTIZERS = ("conv2d", "linear", "add", "mul", "avgpool2d", "lut", "upsample_bilinear",
                "resize")


def check_calibration(graph: FGraph, data: Any) -> np.ndarray:
    """Calibration batch in the torch layout -> float64 array (token ids: int64); InputError on
    a bad shape, NaN, non-integer ids or ids outside the vocabulary."""
    x = data.detach().cpu().numpy() if hasattr(data, "detach") else np.asarray(data)
    want = graph.torch_input_shape()
    if x.ndim != len(want) + 1 or tuple(x.shape[1:]) != want or len(x) == 0:
        raise InputError(f"calibration data of shape {tuple(x.shape)} does not fit model "
                         f"{graph.name}: expected (batch >= 1, {', '.join(map(str, want))})")
    if not np.issubdtype(x.dtype, np.number):
        raise InputError(f"calibration data of dtype {x.dtype} is not numeric")
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise InputError(f"calibration data contains {bad} NaN or inf values; "
                         "remove those samples")
    from qasic.quant import graph_inputs

    parts = graph_inputs.split(graph, x, "calibration data") if len(graph.inputs) > 1 else \
        {graph.input: x}
    for name, layout in zip(graph_inputs.names(graph), graph_inputs.layouts(graph), strict=True):
        ids = parts[name]
        if layout != TOKENS:
            continue
        what = "" if len(parts) == 1 else f" (input {name})"
        if not np.all(np.floor(ids) == ids):
            raise InputError(f"calibration data for model {graph.name}{what} must be integer "
                             "token ids; some are not integers")
        bad = outside_tables(graph.nodes, name, ids)
        if bad is not None:
            raise InputError(f"calibration token id {bad[0]}{what} is outside the vocabulary "
                             f"of model {graph.name}{bad[1]}")
    return as_input(graph, x)


def fused_relu(graph: FGraph, node: FNode) -> FNode | None:
    """The relu or clamp that ``node`` feeds and that is its only user, if any."""
    users = graph.users(node.output)
    if node.op in RELU_FUSABLE and len(users) == 1 and users[0].op in ACTIVATIONS \
            and node.output != graph.output:
        return users[0]
    return None


def _observed(graph: FGraph, node: FNode) -> str:
    """The tensor whose values stand for ``node``'s output: the relu's that it is fused with
    (its own are not kept: quant.quantize), else its own."""
    relu = fused_relu(graph, node)
    return relu.output if relu else node.output


def encode_activations(graph: FGraph, values: Mapping[str, np.ndarray],
                       config: QuantConfig,
                       weights: Mapping[str, np.ndarray] | None = None) -> dict[str, TensorQ]:
    """TensorQ for every tensor, from the float ``values`` run_float kept on calibration data.
    ``graph`` must have been through ``prepare`` (capture does it) when it has a concat.
    ``weights`` ({tensor: an importance per value}) weight the squared error that the INT
    'histogram' and 'fisher' observers minimize (``qasic.quant.fisher``)."""
    need = requirements(graph, SHARES_INPUT)
    lengths = norm_lengths(graph, SHARES_INPUT)
    wide = {t: config.norm_residual_bits for t in residual_copies(graph)}
    if config.output_bits is not None:
        wide[graph.output] = config.output_bits
    # an int16 embedding's range holds its whole table: any row may be gathered, not only the
    # calibration ids' (16 bits keep a fine step over it)
    tables: dict[str, np.ndarray] = {}
    if config.embedding_bits > 8:
        rows = int16_rows(graph)
        wide |= dict.fromkeys(rows, config.embedding_bits)
        tables = {n.output: np.asarray(n.params["table"], np.float64).ravel()
                  for n in graph.nodes if n.op == "embedding" and n.output in rows}
    sinks = sink_logits(graph)
    guarded = eps_reciprocals(graph)
    divided = {t: d for t, d in reciprocals(graph).items() if t not in guarded}
    tensors: dict[str, TensorQ] = {}
    zeros: dict[int, TensorQ] = {}  # the TensorQs observed on values all exactly 0, by id

    def observe(tensor: str, members: tuple[str, ...] = (), layer: str | None = None,
                integer: bool = False) -> TensorQ:
        """``tensor``'s TensorQ, observed on its values, or on those of all ``members`` (a
        scan role's tensors at every position, ``tied``) when given; ``layer``: the output of
        the layer a relu or clamp ``tensor`` is fused into, whose symmetric requirement it
        shares; ``integer``: INT whatever the activation format (a KEEPS_FORMAT op's output
        over an INT input)."""
        kind = need.get(tensor) or _fused_need(need.get(layer))
        fmt = "int" if kind or integer or tensor in wide else config.activation_format
        bits = config.norm_bits_for(lengths[tensor], int16_storable(graph, tensor)) \
            if kind == NORM_INPUT else config.activation_bits
        bits = wide.get(tensor) or bits
        seen = np.concatenate([np.ravel(values[t]) for t in members]) if members else values[tensor]
        if tensor in guarded:
            seen = _off_zero(seen, values[guarded[tensor]])
        elif tensor in divided and divided[tensor] in tensors:  # its divisor's codes
            d = tensors[divided[tensor]]
            seen = _off_zero(seen, d.encode(values[divided[tensor]]) != d.encode(np.zeros(1)))
        if tensor in tables:
            seen = np.concatenate([np.ravel(seen), tables[tensor]])
        _check_finite(tensor, seen)
        if tensor == graph.output and config.output_observer == "fisher":
            rng = histogram_range(seen, bits, weights=(weights or {}).get(tensor))
        elif tensor == graph.output:
            rng = OUTPUT_RANGES[config.output_observer](seen)
        elif fmt != "int" and config.activation_observer in MSE_OBSERVERS:
            amax = fp_mse_absmax(seen, fmt)
            rng = (-amax, amax)
        elif config.activation_observer in MSE_OBSERVERS:
            rng = histogram_range(seen, bits, weights=(weights or {}).get(tensor))
        else:
            rng = _range(seen, config)
        if tensor in sinks:  # keys of the scores' rows that no value showed: range covers them
            rng = (min(rng[0], sinks[tensor].min()), max(rng[1], sinks[tensor].max()))
        if kind == SYMMETRIC:
            q = symmetric(*rng, bits)
        else:
            q = affine(*rng, bits) if fmt == "int" else fp_tensor(*rng, fmt)
        if rng[0] == rng[1] == 0.0:
            zeros[id(q)] = q
        return q

    # a scan's role, a recurrence's (quant.recurrence): one TensorQ over its positions, those
    # of the gated delta rule's that can be int16 codes at recurrence_bits
    roles: dict[str, tuple] = recurrence.tied(graph)
    if config.recurrence_bits is not None:
        wide |= dict.fromkeys(recurrence.widened(graph, lambda t: int16_storable(graph, t)),
                              config.recurrence_bits)
    groups: dict[tuple, tuple[str, ...]] = {}
    for t, key in roles.items():
        groups[key] = (*groups.get(key, ()), t)
    producer = {n.output: n for n in graph.nodes}
    one = {key: observe(ts[0], tuple(_observed(graph, producer[t]) for t in ts))
           for key, ts in groups.items()}
    pins = concat_pins(graph)  # tensor -> the concat whose TensorQ it takes
    for t, c in pins.items():  # a member a norm, softmax or matmul reads INT makes the concat's
        if t in need and c not in need:  # one TensorQ INT (at FP8 activations its own need
            need[c] = INT  # was lost: AXK2's q_a_proj, read by a norm and a concat, crashed)
    shared = {c: one[roles[c]] if c in roles else observe(c) for c in dict.fromkeys(pins.values())}
    for t, c in pins.items():  # a member a matmul reads: the concat's zero point must be 0, so
        if need.get(t) == SYMMETRIC and c not in roles and shared[c].zero_point:  # symmetric
            need[c] = SYMMETRIC  # (EGNN per graph: h[:, rows], a matmul by a constant one-hot,
            shared[c] = observe(c)  # and cat([h, m]); one that is 0 already stays as it was)
    tensors[graph.input] = input_encoding(graph) or observe(graph.input)
    for name, layout in zip(graph.inputs[1:], graph.input_layouts[1:], strict=True):
        tensors[name] = TOKEN_IDS if layout == TOKENS else observe(name)
    for node in graph.nodes:
        fixed = fixed_encoding(node, config.softmax_width)
        if fixed is not None:
            tensors[node.output] = fixed
        elif node.output in pins:
            tensors[node.output] = shared[pins[node.output]]
        elif node.output in roles:
            tensors[node.output] = one[roles[node.output]]
        elif node.op in SHARES_INPUT or node.op == "concat":
            tensors[node.output] = tensors[node.inputs[0]]
        else:
            relu = fused_relu(graph, node)
            # a clamp fused into a linear read by a matmul (Gemma 4's clipped linears): the
            # matmul's symmetric requirement reaches the linear's output through the clamp
            tensors[node.output] = observe(
                relu.output if relu else node.output, layer=node.output,
                integer=node.op in KEEPS_FORMAT and not tensors[node.inputs[0]].is_fp)
    _zero_addends(graph, tensors, zeros)
    _check_masks(graph, tensors)
    return tensors


def _zero_addends(graph: FGraph, tensors: dict[str, TensorQ], zeros: Mapping[int, TensorQ]
                  ) -> None:
    """An addend observed all 0 (a zero-initialized residual branch, a ReZero or adaLN-zero
    gate) takes the unit of the other addend, in place of the arbitrary EMPTY_SCALE (1.0) that
    encodes its 0 as well: an add rescales both inputs to twice the larger unit, with 2^20
    steps a code, so a unit of 1.0 beside one below ~1e-6 zeroed the other addend (its whole
    value: a silent wrong answer). Every tensor sharing the TensorQ takes the new one."""
    for node in graph.nodes:
        if node.op != "add" or len(node.inputs) != 2:
            continue
        a, b = (tensors[t] for t in node.inputs)
        for zero, other in ((a, b), (b, a)):
            if zeros.get(id(zero)) is not zero or zeros.get(id(other)) is other \
                    or zero.unit == other.unit:
                continue
            new = replace(zero, scale=zero.scale * other.unit / zero.unit)
            for t, q in tensors.items():
                if q is zero:
                    tensors[t] = new
            break


def _check_finite(tensor: str, seen: np.ndarray) -> None:
    """A tensor the float model computes as NaN or inf on the calibration data has no range
    (its scale would be NaN or inf): one line naming it, not a crash in the observer."""
    bad = int(np.size(seen) - np.count_nonzero(np.isfinite(seen)))
    if bad:
        raise InputError(f"tensor {tensor} is NaN or inf at {bad} of {np.size(seen)} values on "
                         "the calibration data (the float model computes it so: a sqrt or log "
                         "of a negative, a division by 0, an overflow); fix the model or give "
                         "calibration data on which it is finite")


def eps_reciprocals(graph: FGraph) -> dict[str, str]:
    """{output: input} of the reciprocal tables of a divisor guarded by a positive epsilon,
    ``1 / (d + eps)`` (a division ``x / (d + eps)`` is a product by that table,
    quant.lowering_pointwise). Their range is observed where d is not exactly 0: a divisor
    is 0 there only where a ReLU zeroed a whole row, the numerator with it (EfficientViT's
    ReLU linear attention, ``out[..., :-1] / (out[..., -1:] + 1e-15)``), and 1 / eps in the
    range would leave every other value of the table at code 0 (its multiplier also
    overflowed the requantizer). The table's code 0 then saturates at the largest value seen
    elsewhere; times a numerator of 0 it is 0 as in float."""
    return _tables(graph, lambda expr: isinstance(expr[1], tuple) and expr[1][0] == "add"
                   and ("x",) in expr[1][1:] and any(isinstance(a, tuple) and a[0] == "c"
                                                     and float(a[1]) > 0 for a in expr[1][1:]))


def reciprocals(graph: FGraph) -> dict[str, str]:
    """{output: input} of every reciprocal table ``1 / x`` (and its widened copies). Its range
    is observed where the divisor's code is not that of 0: the table maps that code to the
    largest value observed (1 / 0 is outside its domain, ``lut_table``), whatever the float
    divisor was, so the values there (1 / eps where a ReLU zeroed a divisor ``2 d + eps``)
    would only stretch the range: every other entry would round to code 0 and a product with
    them overflow its requantizer, the quotient all 0 and saturation."""
    return _tables(graph, lambda expr: expr[1] == ("x",))


def _tables(graph: FGraph, inner: Any) -> dict[str, str]:
    """{output: input} of the ``("reciprocal", e)`` tables whose ``inner(expr)`` holds, and of
    a linear that copies such a (..., 1) table to the numerator's width."""
    out = {}
    for n in graph.nodes:
        expr = n.attrs.get("fn_args", {}).get("expr") if n.op == "lut" \
            and n.attrs.get("fn") == "expr" else None
        if isinstance(expr, tuple) and len(expr) == 2 and expr[0] == "reciprocal" \
                and inner(expr):
            out[n.output] = n.inputs[0]
    for n in graph.nodes:  # a (..., 1) table widened to the numerator's width by a copy
        if n.op == "linear" and n.inputs[0] in out and _copies_column(n):
            out[n.output] = out[n.inputs[0]]
    return out


def _copies_column(node: FNode) -> bool:
    """A linear of one input feature that copies it to every output (weight 1, bias 0)."""
    w, b = np.asarray(node.params.get("weight")), node.params.get("bias")
    return w.ndim == 2 and w.shape[1] == 1 and bool(np.all(w == 1.0)) \
        and (b is None or not np.any(np.asarray(b)))


def _off_zero(seen: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    """``seen`` where ``divisor`` (its table's input, broadcast to its shape) is not exactly 0;
    all of it when the divisor is 0 everywhere or does not broadcast."""
    try:
        keep = np.broadcast_to(np.asarray(divisor) != 0, np.shape(seen))
    except ValueError:
        return seen
    return np.asarray(seen)[keep] if keep.any() and not keep.all() else seen


def _fused_need(kind: str | None) -> str | None:
    """What the layer's requirement asks of the relu/clamp output it is fused with: a symmetric
    one stays; any other (a norm's input) is INT at the activation width, as with INT
    activations (the clamp's output is observed, not the norm input's int16 length)."""
    return kind if kind in (None, SYMMETRIC) else INT


def _check_masks(graph: FGraph, tensors: Mapping[str, TensorQ]) -> None:
    """A softmax's mask is read as codes, a key kept where its code is nonzero
    (``intops.mask_valid``): refused unless its value 0 is code 0 (INT, zero point 0), else a
    masked key would read as kept (a gathered 0/1 table's zero point is -128)."""
    for node in graph.nodes:
        if node.op != "softmax" or len(node.inputs) < 2:
            continue
        t = tensors[node.inputs[1]]
        if t.is_fp or t.zero_point != 0:
            raise UnsupportedOpError(
                f"softmax {node.name}: its mask {node.inputs[1]} is coded with zero point "
                f"{t.zero_point}{' (FP)' if t.is_fp else ''}, read as codes (a key kept where "
                "nonzero); a mask must be INT codes with 0 at code 0: a topk_mask, or "
                "where(condition, 1.0, 0.0) of a comparison")


def sink_logits(graph: FGraph) -> dict[str, np.ndarray]:
    """{tensor: float logits} of the attention sinks (qasic.quant.sinks) a softmax adds to the
    rows of its scores, for its scores and every tensor whose TensorQ they share (back through
    SHARES_INPUT ops): the sinks are coded in the scores' encoding (``intops.sink_codes``), so
    its range must hold them, or a sink above every score would clamp to the largest code."""
    out: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if node.op != "softmax" or "sink" not in node.params:
            continue
        t, logits = node.inputs[0], np.asarray(node.params["sink"], np.float64).reshape(-1)
        while True:
            out[t] = logits if t not in out else np.concatenate([out[t], logits])
            producer = graph.producer(t)
            if producer is None or producer.op not in SHARES_INPUT:
                break
            t = producer.inputs[0]
    return out


def concat_pins(graph: FGraph) -> dict[str, str]:
    """{tensor: concat output} for every concat output and every requantizing producer that
    takes a concat's TensorQ (itself, or the producer fused with the relu/clamp feeding it)."""
    pins: dict[str, str] = {}
    for node in graph.nodes:
        if node.op != "concat":
            continue
        pins[node.output] = node.output
        for t in node.inputs:
            src = _pinnable(graph, t, pins, node.output)
            if src is not None:
                pins[src] = node.output
    return pins


def _pinnable(graph: FGraph, tensor: str, pins: Mapping[str, str], concat: str) -> str | None:
    """The tensor whose calibration can become ``concat``'s so that ``tensor`` shares it: its
    requantizing producer's output, reached back through ops that keep their input's codes
    (``CARRIES``: a max-pool over time, its reshapes and permutes, a relu) each read by the
    next alone (Kim's CNN: conv -> relu -> max_pool1d -> squeeze -> cat)."""
    tensor = _carried_from(graph, tensor, pins)
    p = graph.producer(tensor)
    if p is not None and p.op in ACTIVATIONS:  # through a fused relu/clamp, to its producer
        src = graph.producer(p.inputs[0])
        p = src if src is not None and fused_relu(graph, src) is p else None
    if p is None or p.op not in REQUANTIZERS or p.output == graph.output:
        return None
    return p.output if pins.get(p.output, concat) == concat else None


# ops whose output shares its input's TensorQ and whose values are each an input value (a
# clamp of the input to the concat's range commutes with them): a concat input they make takes
# the concat's TensorQ from the requantizer before them
CARRIES = ("relu", "maxpool2d", "flatten", "reshape", "permute", "upsample_nearest")


def _carried_from(graph: FGraph, tensor: str, pins: Mapping[str, str]) -> str:
    """``tensor``, or the first tensor up its chain of CARRIES producers whose every tensor on
    the way is read by the next op alone, is not the graph output nor pinned to a concat."""
    while True:
        p = graph.producer(tensor)
        if p is None or p.op not in CARRIES:
            return tensor
        src = p.inputs[0]
        if len(graph.users(src)) != 1 or src == graph.output or src in pins:
            return tensor
        tensor = src


def prepare(graph: FGraph) -> FGraph:
    """The graph calibration expects (idempotent): a clamp that no producer absorbs becomes a
    lut of hardtanh, a concat input that cannot take the concat's TensorQ passes through a
    lut "requant" node, and a part of a matmul's output that a table reads is its own matmul
    (quant.matmul_parts)."""
    graph = split_table_parts(graph)
    nodes = [_as_lut(graph, n) for n in graph.nodes]
    graph = FGraph(graph.name, graph.input, graph.output, tuple(nodes), graph.shapes,
                   graph.input_layout, graph.output_layout, graph.inputs, graph.input_layouts)
    shapes, out, pins = dict(graph.shapes), [], {}
    for node in graph.nodes:
        if node.op == "concat":
            pins[node.output] = node.output
            node = _requant_inputs(graph, node, pins, shapes, out)
        out.append(node)
    graph = FGraph(graph.name, graph.input, graph.output, tuple(out), shapes, graph.input_layout,
                   graph.output_layout, graph.inputs, graph.input_layouts)
    return requant_symmetric_views(graph, SHARES_INPUT)


def _as_lut(graph: FGraph, node: FNode) -> FNode:
    if node.op != "clamp" or _fused_into(graph, node):
        return node
    lo, hi = node.attrs.get("min"), node.attrs.get("max")
    args = {"min_val": -np.inf if lo is None else lo, "max_val": np.inf if hi is None else hi}
    return replace(node, op="lut", attrs={"fn": "hardtanh", "fn_args": args})


def _fused_into(graph: FGraph, node: FNode) -> bool:
    src = graph.producer(node.inputs[0])
    return src is not None and fused_relu(graph, src) is node


def _requant_inputs(graph: FGraph, concat: FNode, pins: dict, shapes: dict,
                    out: list) -> FNode:
    """``concat`` reading each input that cannot share its TensorQ through a new requant lut
    (appended to ``out``); pins the others."""
    inputs = []
    for t in concat.inputs:
        src = _pinnable(graph, t, pins, concat.output)
        if src is not None and not _read_dense(graph, t):
            pins[src] = concat.output
            inputs.append(t)
            continue
        name = _fresh(f"{concat.name}.requant", shapes)
        out.append(FNode(name, "lut", (t,), name, {"fn": "requant", "fn_args": {}}))
        shapes[name] = shapes[t]
        pins[name] = concat.output
        inputs.append(name)
    return replace(concat, inputs=tuple(inputs))


def _read_dense(graph: FGraph, tensor: str) -> bool:
    """Whether another reader needs an image ``tensor``'s own dense bytes: a permute, or a
    reshape that splits or merges its channels (a GroupNorm's groups), which a view of the
    concat's pixels cannot give (compiler.memory)."""
    last = graph.shapes[tensor][-1:]
    if graph.input_layout in (TOKENS, SEQUENCE) or len(graph.shapes[tensor]) != 3:
        return False
    return any(n.op == "permute" or (n.op == "reshape" and graph.shapes[n.output][-1:] != last)
               for n in graph.users(tensor))


def _fresh(base: str, taken: Mapping[str, Any]) -> str:
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    return name


# observer name (QuantConfig.activation_observer) -> (values, config) -> (lo, hi)
OBSERVERS = {
    "minmax": lambda v, c: minmax_range(v),
    "percentile": lambda v, c: percentile_range(v, c.percentile),
    "moving_average": lambda v, c: moving_average_range(v),
    "histogram": lambda v, c: histogram_range(v, c.activation_bits),
}


# QuantConfig.output_observer -> the graph output's range. Never clips the largest scores:
# clipped to one code, clear winners would tie (the histogram observer cost ~1 point W4A4).
OUTPUT_RANGES = {"minmax": minmax_range, "top": top_range}


def _range(values: np.ndarray, config: QuantConfig) -> tuple[float, float]:
    return OBSERVERS[config.activation_observer](values, config)
