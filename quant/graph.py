"""QGraph: the quantized integer model that quant/ produces and compiler/ consumes.

Layout: per-sample activation shapes exclude the batch axis; 4-D activations are NHWC (channels
last, so a GEMM row is contiguous). Every tensor carries its integer encoding
``real = scale * (q - zero_point)``. Node semantics are defined by ``qasic.quant.reference``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qasic.arch.pe import significand_bits
from qasic.errors import InputError
from qasic.quant import actformat
from qasic.quant.affine import dequantize_codes, quantize_codes
from qasic.quant.blockscale import check_block_params, effective_weight

MAX_TENSOR_BITS = 32  # the widest codes a tensor holds (int32 token ids)
# attr of a cache_write that writes a recurrence's state whole (quant.decode: every prefill and
# decode step rewrites it): the state is stored alike in both programs (compiler.memory)
SCAN_STATE = "scan_state"
# op -> parameters it carries (see qasic.quant.reference for the arithmetic)
OPS = {
    # weight: the integers the array multiplies. A format decoded on the load path (FP, NF4,
    # codebooks) also carries weight_codes (stored, weight_bits each) and weight_lut (code ->
    # integer), with weight == weight_lut[weight_codes]. A block-scaled format (MX, per group)
    # also carries block_scale (OC, NB) bytes and block_of (K,) with attrs block_mode
    # (qasic.quant.blockscale).
    # attrs: stride (sh, sw), padding (top, left, bottom, right), dilation (dh, dw), groups,
    # [clamp (lo, hi)]; weight (OC, KH, KW, IC // groups)
    "conv2d": ("weight", "bias", "multiplier", "shift"),
    "linear": ("weight", "bias", "multiplier", "shift"),     # attrs: [clamp]
    "maxpool2d": (),                     # attrs: kernel (kh, kw), stride (sh, sw), padding (4)
    # attrs: kernel, stride, padding (t, l, b, r), divisor, [clamp]; M = s_in / (div * s_out)
    "avgpool2d": ("multiplier", "shift"),
    "relu": (),
    "clamp": (),                         # attrs: lo, hi (codes of the shared TensorQ)
    "lut": ("table",),                   # attrs: fn, fn_args (qasic.quant.functions)
    "flatten": (),
    "reshape": (),                       # memory-order no-op: (C,) <-> (1, 1, C)
    "add": ("multiplier", "shift"),      # [a, b, out] multipliers; attrs: [clamp]
    "mul": ("multiplier", "shift"),      # M = s_a * s_b / s_out; attrs: [clamp]
    "concat": (),                        # channels (last axis); all tensors share one TensorQ
    "upsample_nearest": (),              # attrs: scale (fh, fw)
    "upsample_bilinear": ("multiplier", "shift"),  # attrs: scale (2, 2), align_corners False
    # any size (qasic.quant.resize): weight_h (H_out, H_in), weight_w (W_out, W_in) int8;
    # multiplier, shift: (W_out + 1,), the W stage's per column then the H stage's; attrs: mode,
    # align_corners, mid (the intermediate's scale, zero point), [clamp]
    "resize": ("weight_h", "weight_w", "multiplier", "shift"),
    # transformer ops (per-sample shapes: (S, D) sequences, (H, S, D) heads; see quant.intops)
    "matmul": ("multiplier", "shift"),   # two activations; attrs: transpose_b; M = sa sb / so
    "softmax": ("table",),               # last axis; table = intops.exp_table; attrs: causal;
                                         # optional 2nd input: key mask codes (T,), 0 = masked;
                                         # optional valid: (P, S, T) 0/1 constant pattern;
                                         # optional sink: (H,) codes, one per head
    "norm": ("bias", "multiplier", "shift", "eps"),  # attrs: center (LayerNorm) or not (RMS)
    # 0/1 codes: 1 where a code is among the k largest of its row (last axis), equal codes
    # ranked by index, the lower first (a stable sort's); attrs: k. Mixture-of-experts routing
    "topk_mask": (),
    "embedding": ("table",),             # rows of table (V, D) codes by int ids: a gather;
                                         # attrs: [offset]: the rows take ids[offset:]
                                         # (as many as the output has; [rows] says it for
                                         # the float executor: capture's id slices)
    # KV cache (generation): rows (R, D) written into the persistent state tensor (its output,
    # (C, D), named attrs state) at rows start..start+R, start = attrs base (default 0) plus the
    # int id at position attrs index of the 2nd input (decode: the step's position), or plus 0
    # without one (prefill)
    "cache_write": (),
    # a window of a state (a token convolution's inputs, quant.decode_conv): rows
    # start..start+rows of the 1st input (N, C, D) (a cache_write's output), start = the int id
    # at position attrs index of the 2nd input (the step's position); attrs rows
    "cache_window": (),
    # a persistent state tensor (an encoder-decoder's cross-attention keys or values, written
    # by a prefill's cache_write; a selective scan's h, which the step's cache_write of the
    # same state then overwrites) read as it is: no inputs, output (S, D); attrs state names
    # the state (the output is named so too unless the graph's cache_write of it is: every
    # tensor has one writer, so a scan's read of h is a tensor of its own, stored in h's bytes)
    "cache_read": (),
    "constant": ("value",),              # no inputs: codes of the output encoding
    "permute": (),                       # attrs: perm of the per-sample axes
    # channels start..stop of the last axis, the input's codes and TensorQ (a chunk or split
    # of an image's channels: compiler.memory stores it as a view of the input's pixels)
    "channels": (),                      # attrs: start, stop
}


@dataclass(frozen=True)
class TensorQ:
    """Encoding of one activation tensor (qasic.quant.actformat): real = scale * (q - zero_point)
    for ``fmt`` "int", real = scale * FP8(q) for "fp8_e4m3", "fp8_e3m4" (zero point 0, 8 bits)."""

    scale: float
    zero_point: int
    bits: int = 8
    fmt: str = "int"

    def __post_init__(self) -> None:
        actformat.check_format(self.fmt)
        if not (self.scale > 0 and np.isfinite(self.scale)):
            raise ValueError(f"tensor scale {self.scale} must be finite and > 0")
        if self.is_fp and (self.zero_point != 0 or self.bits != 8):
            raise ValueError(f"{self.fmt} activations have zero point 0 and 8 bits")
        if not 2 <= self.bits <= MAX_TENSOR_BITS:  # 32: token ids; before any 1 << bits
            raise ValueError(f"tensor bits {self.bits} must be in 2..{MAX_TENSOR_BITS}")
        if not self.qmin <= self.zero_point <= self.qmax:
            raise ValueError(f"zero point {self.zero_point} outside int{self.bits}")

    @property
    def is_fp(self) -> bool:
        return self.fmt != "int"

    @property
    def qmin(self) -> int:
        """Lowest code by value (FP: the code of -max)."""
        if self.is_fp:
            return int(actformat.from_key(-actformat.max_code(self.fmt)))
        return -(1 << (self.bits - 1))

    @property
    def qmax(self) -> int:
        if self.is_fp:
            return actformat.max_code(self.fmt)
        return (1 << (self.bits - 1)) - 1

    @property
    def unit(self) -> float:
        """Real value of one step of the integers the datapath sees (FP: one level)."""
        return self.scale * actformat.lsb(self.fmt) if self.is_fp else self.scale

    @property
    def max_magnitude(self) -> int:
        """Largest |integer| the array multiplies for a code of this tensor (raw INT codes; the
        zero point is folded into the bias)."""
        if self.is_fp:
            return int(np.abs(actformat.levels(self.fmt)).max())
        return 1 << (self.bits - 1)

    def pe_levels(self) -> np.ndarray:
        """Every integer the array may multiply for this tensor (raw INT codes or FP levels)."""
        if self.is_fp:
            return actformat.levels(self.fmt)
        return np.arange(-(1 << (self.bits - 1)), 1 << (self.bits - 1), dtype=np.int64)

    def values(self, q: np.ndarray) -> np.ndarray:
        """Codes -> the integers real = unit * value: q - zero_point, or FP levels."""
        if self.is_fp:
            return actformat.decode_levels(q, self.fmt)
        return np.asarray(q, dtype=np.int64) - self.zero_point

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Reals -> int64 codes (INT: round half up, saturate; FP: nearest, ties to even)."""
        if self.is_fp:
            return actformat.encode_values(np.asarray(x, dtype=np.float64) / self.scale,
                                           self.fmt)
        return quantize_codes(x, self.scale, self.zero_point, self.bits)

    def decode(self, q: np.ndarray) -> np.ndarray:
        if self.is_fp:
            return actformat.decode_levels(q, self.fmt) * self.unit
        return dequantize_codes(q, self.scale, self.zero_point)


@dataclass(frozen=True, eq=False)
class QNode:
    """One integer op. ``params`` holds integer arrays (weights, int32 bias, requant q/shift)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    attrs: Mapping[str, Any] = field(default_factory=dict)
    params: Mapping[str, np.ndarray] = field(default_factory=dict)
    weight_bits: int | None = None
    weight_format: str | None = None   # e.g. "int4"; None for ops without weights

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"node {self.name}: unknown op {self.op!r}; known: {', '.join(OPS)}")
        missing = [p for p in OPS[self.op] if p not in self.params]
        if missing:
            raise ValueError(f"node {self.name} ({self.op}) lacks parameter {missing[0]}")
        if "weight_lut" in self.params:  # a decoded format: weight = lut[codes], bit for bit
            lut, codes = self.params["weight_lut"], self.params.get("weight_codes")
            if codes is None or not np.array_equal(lut[codes], self.params["weight"]):
                raise ValueError(f"node {self.name}: weight must equal weight_lut[weight_codes]")
        if "block_scale" in self.params:
            p = self.params
            check_block_params(self.name, p["weight"], p["block_scale"], p.get("block_of"),
                               self.attrs.get("block_mode"))
        if "block_zero" in self.params:  # asymmetric INT: weight = codes - zero[c, block(k)]
            p = self.params
            oc = p["weight"].shape[0]
            want = p["weight_codes"].reshape(oc, -1) - p["block_zero"][:, p["block_of"]]
            if not np.array_equal(want, p["weight"].reshape(oc, -1)):
                raise ValueError(f"node {self.name}: weight must equal weight_codes - block_zero")

    @property
    def pe_weight_bits(self) -> int | None:
        """Signed width of the integers the array multiplies: the code width of an integer
        format, the widest decoded level of a table-decoded or zero-point one."""
        if "weight_lut" not in self.params and "block_zero" not in self.params:
            return self.weight_bits
        return significand_bits(self.pe_levels(), 0)

    def pe_levels(self) -> np.ndarray:
        """Every integer the array may multiply for this layer: its decode table, or the whole
        code range of its integer format (what a PE built for the layer must handle)."""
        lut = self.params.get("weight_lut")
        if lut is not None:
            return np.asarray(lut, dtype=np.int64)
        if "block_zero" in self.params:  # q - z: both in the signed b-bit range
            lim = (1 << (self.weight_bits or 8)) - 1
            return np.arange(-lim, lim + 1, dtype=np.int64)
        lim = 1 << ((self.weight_bits or 8) - 1)
        return np.arange(-lim, lim, dtype=np.int64)

    def worst_accumulator(self, input_magnitude: int = 128, zero_point: int = 0) -> int:
        """Largest |sum x w + bias| a conv/linear can reach with |x| <= input_magnitude, the
        input zero point folded into the bias (bias - zero_point * sum w) as the compiler
        folds it (qasic.compiler.pipeline proves the same bound)."""
        p = self.params
        w = p["weight"] if "block_scale" not in p else effective_weight(
            p["weight"], p["block_scale"], p["block_of"], self.attrs["block_mode"])
        w = np.asarray(w, dtype=np.int64).reshape(len(p["bias"]), -1)
        bias = np.asarray(p["bias"], dtype=np.int64) - zero_point * w.sum(axis=1)
        return int((input_magnitude * np.abs(w).sum(axis=1) + np.abs(bias)).max())


@dataclass(frozen=True, eq=False)
class QGraph:
    name: str
    input: str
    output: str
    nodes: tuple[QNode, ...]
    tensors: Mapping[str, TensorQ]     # every activation tensor, input and output included
    shapes: Mapping[str, tuple[int, ...]]  # per-sample shapes, NHWC for images
    # the model's input layout: NCHW or NCL (to_internal), "sequence" (float (S, D), torch's
    # layout) or "tokens" (int ids (S,): the input TensorQ is scale 1, zero point 0, 32 bits)
    input_layout: str = "NCHW"
    # the layout the output holds the model's output in, recorded by capture: NCHW (torch's
    # (N, C, H, W) held channels last), NCL (held as (1, L, C)) or TORCH (torch's own, e.g. a
    # channels-last (N, H, W, C) or a transformer's (N, S, D)); None: not recorded (a graph
    # built by hand or saved before it was), the evaluation guesses from the shapes
    output_layout: str | None = None
    # several inputs (qasic.quant.graph_inputs): their tensors in torch's forward order, the
    # first ``input``, and their layouts (tokens or sequence); empty: the one ``input``
    inputs: tuple[str, ...] = ()
    input_layouts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.output_layout is not None and self.output_layout not in OUTPUT_LAYOUTS \
                and batch_axis(self.output_layout) is None:
            raise ValueError(f"graph {self.name}: output layout {self.output_layout!r}; known: "
                             f"{', '.join(OUTPUT_LAYOUTS)} or None")
        _check_single_writers(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.shapes[self.input]

    def node(self, name: str) -> QNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def weighted_nodes(self) -> list[QNode]:
        return [n for n in self.nodes if "weight" in n.params]

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        """Float batch in the model's layout -> int64 codes, NHWC, batch first. Token ids pass
        through unchanged (checked: integers inside the vocabulary). Several inputs: a packed
        batch (qasic.quant.graph_inputs) -> packed codes."""
        if len(self.inputs) > 1:
            return self._packed_codes(x)
        if self.input_layout == TOKENS:
            return self._token_codes(np.asarray(x))
        x = to_internal(np.asarray(x, dtype=np.float64), self.input_layout)
        want = self.input_shape
        if x.shape[1:] != tuple(want):
            raise InputError(
                f"input of shape {tuple(x.shape)} does not fit model {self.name}: expected "
                f"(batch, {', '.join(map(str, self._float_shape()))})"
            )
        if not np.all(np.isfinite(x)):
            raise InputError(f"input to model {self.name} contains NaN or inf")
        return self.tensors[self.input].encode(x)

    def _packed_codes(self, x: np.ndarray) -> np.ndarray:
        from qasic.quant import graph_inputs

        parts = graph_inputs.split(self, x)
        codes = []
        for name, layout in zip(self.inputs, self.input_layouts, strict=True):
            part = parts[name]
            if layout == TOKENS:
                codes.append(self._token_codes(part, name))
                continue
            if not np.all(np.isfinite(part)):
                raise InputError(f"input {name} of model {self.name} contains NaN or inf")
            codes.append(self.tensors[name].encode(np.asarray(part, dtype=np.float64)))
        return graph_inputs.pack(codes, np.int64)

    def _token_codes(self, x: np.ndarray, name: str | None = None) -> np.ndarray:
        name = name or self.input
        if name != self.input:
            return _ids_of(self, name, x)
        if x.ndim != 1 + len(self.input_shape) or x.shape[1:] != tuple(self.input_shape):
            raise InputError(f"token ids of shape {tuple(x.shape)} do not fit model {self.name}: "
                             f"expected (batch, {', '.join(map(str, self.input_shape))}) (at "
                             f"most {self.input_shape[-1]} tokens, padded to that length)")
        if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
            raise InputError(f"token ids of dtype {x.dtype}; give integers")
        if x.size and not np.all(np.isfinite(x) & (np.floor(x) == x)):
            raise InputError(f"token ids for model {self.name} must be integers; some are not")
        bad = outside_tables(self.nodes, self.input, x)
        if bad is not None:
            raise InputError(f"token id {bad[0]} is outside the vocabulary of model "
                             f"{self.name}{bad[1]}")
        return x.astype(np.int64)

    def dequantize_output(self, q: np.ndarray) -> np.ndarray:
        return self.tensors[self.output].decode(q)

    def _float_shape(self) -> tuple[int, ...]:
        return float_shape(self.input_shape, self.input_layout)


def _ids_of(graph: QGraph, name: str, x: np.ndarray) -> np.ndarray:
    """Input ``name``'s token ids (batch, ...) checked: integers inside its tables."""
    if x.size and not np.all(np.isfinite(x) & (np.floor(x) == x)):
        raise InputError(f"input {name} of model {graph.name} holds ids that are not integers")
    bad = outside_tables(graph.nodes, name, x)
    if bad is not None:
        raise InputError(f"input {name}: token id {bad[0]} is outside the vocabulary of model "
                         f"{graph.name}{bad[1]}")
    return np.asarray(x).astype(np.int64)


def _check_single_writers(graph: QGraph) -> None:
    """Every tensor has one writer (the graph's input none): a node's output names a new
    tensor. A persistent state that a step reads and then overwrites is one tensor per access
    (its ``cache_read`` and ``cache_write`` share the state through attrs ``state``)."""
    writer = dict.fromkeys(graph.inputs or (graph.input,))
    for n in graph.nodes:
        if n.output in writer:
            first = "the graph's input" if writer[n.output] is None else \
                f"node {writer[n.output]}"
            raise ValueError(f"graph {graph.name}: node {n.name} ({n.op}) writes tensor "
                             f"{n.output}, which {first} already writes; give each node an "
                             "output of its own")
        writer[n.output] = n.name


def readers(graph: QGraph) -> dict[str, list[QNode]]:
    """Each tensor's reading nodes, in graph order (a node reading it twice listed twice)."""
    out: dict[str, list[QNode]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            out.setdefault(t, []).append(n)
    return out


def reached(tensor: str, readers: Mapping[str, list[QNode]],
            follow: Callable[[str, QNode], bool | None]) -> set[str] | None:
    """The tensors a worklist walk reaches from ``tensor`` (itself included) through its
    readers: ``follow(t, r)`` of each reader ``r`` of a reached tensor ``t`` is True (``r``'s
    output is reached too), None (the path ends at ``r``, as it may) or False (it may not:
    the walk fails, None)."""
    todo, seen = [tensor], set()
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for r in readers.get(t, ()):
            go = follow(t, r)
            if go is False:
                return None
            if go:
                todo.append(r.output)
    return seen


TOKENS, SEQUENCE = "tokens", "sequence"  # layouts whose graph layout is torch's own
TORCH = "torch"  # an output layout: the graph holds the output in torch's own layout
# torch's own layout but the batch on axis P >= 1 (``batch_layout``: Medusa's heads first,
# torch.stack([head(x) for head in heads]) (H, B, T, V); a time-major RNN's (L, B, F)): the
# graph holds each sample's output, torch's with that axis gone
BATCH_AXIS = "batch"
OUTPUT_LAYOUTS = ("NCHW", "NCL", TORCH, f"{BATCH_AXIS}P (P = 1..9)")


def batch_layout(axis: int) -> str:
    """The output layout of torch's own with the batch on ``axis`` (1..9)."""
    return f"{BATCH_AXIS}{axis}"


def batch_axis(layout: str | None) -> int | None:
    """The batch's axis of output layout ``layout`` (batch_layout), None for the others."""
    if isinstance(layout, str) and layout.startswith(BATCH_AXIS) \
            and layout[len(BATCH_AXIS):] in tuple("123456789"):
        return int(layout[len(BATCH_AXIS):])
    return None


def float_shape(shape: tuple[int, ...], layout: str) -> tuple[int, ...]:
    """Per-sample graph shape -> the float model's: (C, H, W) for NCHW images, (C, L) for NCL
    sequences (held as (1, L, C) images)."""
    if len(shape) == 3 and layout == "NCHW":
        return (shape[2], shape[0], shape[1])
    if len(shape) == 3 and layout == "NCL":
        return (shape[2], shape[1])
    return tuple(shape)


def to_internal(x: np.ndarray, layout: str) -> np.ndarray:
    """A batch in the float model's layout -> the graph's: NCHW -> NHWC, NCL -> N1LC, the
    batch on axis P (batch_layout) moved first. Other shapes (vectors, or a batch already
    converted) pass through."""
    p = batch_axis(layout)
    if p is not None and x.ndim > p:
        return np.moveaxis(x, p, 0)
    if layout == "NCHW" and x.ndim == 4:
        return x.transpose(0, 2, 3, 1)
    if layout == "NCL" and x.ndim == 3:
        return x.transpose(0, 2, 1)[:, None]
    return x


def outside_tables(nodes: Any, input_name: str, x: np.ndarray) -> tuple[int, str] | None:
    """The first id of ``x`` (batch, ids) outside the table of an embedding reading it, and
    where: " (ids 0..V-1)", or with the positions, " (ids 0..V-1 at position 3)", when the
    tables read different positions (a recommender's user and item ids, each its own
    table); None when every id fits. An embedding reads all the ids, or the ``rows`` ids
    from ``offset`` (quant.lowering.IdSlice)."""
    reads = [(n.attrs.get("offset", 0), n.attrs.get("rows"), len(n.params["table"]))
             for n in nodes if n.op == "embedding" and n.inputs[0] == input_name]
    if not x.size or not reads:
        return None
    whole = all(rows is None for _, rows, _ in reads)
    for offset, rows, vocab in sorted(reads, key=lambda r: r[2]):
        part = x[:, offset:offset + rows] if rows is not None else x
        out = part[(part < 0) | (part >= vocab)]
        if out.size:
            at = "" if whole else (f" at position {offset}" if rows == 1 else
                                   f" at positions {offset}..{offset + rows - 1}")
            return int(out.flat[0]), f" (ids 0..{vocab - 1}{at})"
    return None
