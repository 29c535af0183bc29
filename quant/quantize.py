"""``quantize``: nn.Module + example input + calibration data -> QGraph (integer model).

Weights: symmetric per output channel, codes in [-(2^(b-1)-1), 2^(b-1)-1], scales from max-abs or
MSE clipping. Activations: asymmetric per tensor from calibration. Bias: int64 codes with scale
s_in * s_w[c] (with QuantConfig(bias_correction=True) the float bias first absorbs the mean output
shift quantization causes: ``qasic.quant.biascorr``). Optional steps that only change the chosen
scales and weights, never the integer semantics: activation equalization (``quant.equalize``),
Fisher-weighted activation ranges (``quant.fisher``), GPTQ weight rounding (``quant.gptq``).
Requantization: M[c] = s_in * s_w[c] / s_out
as fixed-point (q, shift); avgpool2d, mul and upsample_bilinear carry one (q, shift) each; a lut
its table of output codes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np

from qasic.arch.config import MAX_ACC_BITS
from qasic.errors import ConfigError, InputError
from qasic.quant.biascorr import correct_biases
from qasic.quant.blockscale import effective_weight
from qasic.quant.calibrate import check_calibration, encode_activations, fused_relu, prepare
from qasic.quant.config import QuantConfig
from qasic.quant.encodings import split_norm_residuals
from qasic.quant.equalize import ALPHA as EQUALIZE_ALPHA
from qasic.quant.equalize import equalize
from qasic.quant.fgraph import FGraph, FNode, run_float
from qasic.quant.fixedpoint import saturating_multipliers
from qasic.quant.functions import apply
from qasic.quant.gptq import round_weights
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.observers import WEIGHT_SCALERS, quantize_weight
from qasic.quant.quantize_transformer import QUANTIZERS, check_product
from qasic.quant.reference import ADD_LEFT_SHIFT, flatten_order
from qasic.quant.resize import integer_rows, mid_encoding, shared_rows
from qasic.quant.weights import quantize_weights

__all__ = ["QuantConfig", "quantize", "quantize_graph"]

BIAS_LIMIT = 1 << (MAX_ACC_BITS - 1)  # the widest accumulator; the compiler checks
# a layer's bias at most this many accumulator units (s_in * s_w[c]): half the range of a 32-bit
# accumulator (every built-in arch's), the other half the products' (bias_weight_scales).
# Quantization does not see the arch; a narrower one is refused at compile time with the width
# the layer needs (qasic.compiler.accumulator)
BIAS_UNITS = 1 << 30
FLOAT_CHUNK_ELEMENTS = 1 << 22  # input values per float run of the calibration batch


def quantize(model: Any, example_inputs: Any, calibration: Any,
             config: QuantConfig | None = None, name: str | None = None) -> QGraph:
    """Capture ``model`` (nn.Module, ExportedProgram, or an already captured FGraph) and quantize
    it. ``calibration`` is a float batch in the model's input layout (numpy or torch)."""
    if isinstance(model, FGraph):
        graph = replace(model, name=name) if name else model
    else:
        from qasic.quant.torch_export import capture  # imports torch

        graph = capture(model, example_inputs, name)
    return quantize_graph(graph, calibration, config or QuantConfig())


def quantize_graph(graph: FGraph, calibration: Any, config: QuantConfig) -> QGraph:
    _check_layers(graph, config)
    graph = prepare(graph)
    if config.norm_residual_bits is not None:
        graph = split_norm_residuals(graph)
    x = check_calibration(graph, calibration)
    x = graph.to_internal(x)
    # memory: calibration never reads a fused pre-activation (it observes the relu's output)
    drop = {n.output for n in graph.nodes if fused_relu(graph, n) is not None}
    values = float_values(graph, x, drop)
    if config.equalize:
        alpha = EQUALIZE_ALPHA if config.equalize_alpha is None else config.equalize_alpha
        graph, scales = equalize(graph, values, alpha, config.bits_for, config.activation_bits)
        for tensor, s in scales.items():  # the rescaled graph's values, without a second run
            if tensor in values:
                values[tensor] = values[tensor] / s
    weights = None
    if "fisher" in (config.activation_observer, config.output_observer):
        from qasic.quant.fisher import fisher_weights  # imports torch

        weights = fisher_weights(graph, x)
        if config.activation_observer != "fisher":  # the output's alone
            weights = {graph.output: weights[graph.output]}
    tensors = encode_activations(graph, values, config, weights)
    del weights, values
    if config.weight_rounding in ("gptq", "gptq_fisher"):
        graph = round_weights(graph, x, tensors, config)
    if config.bias_correction:  # runs the float model again, node by node (biascorr)
        graph = correct_biases(graph, x, tensors, lambda node: real_weight(graph, node, config))
    nodes = tuple(_quantize_node(graph, n, tensors, config) for n in graph.nodes)
    return QGraph(name=graph.name, input=graph.input, output=graph.output, nodes=nodes,
                  tensors=tensors, shapes=dict(graph.shapes), input_layout=graph.input_layout,
                  output_layout=graph.output_layout, inputs=graph.inputs,
                  input_layouts=graph.input_layouts)


def float_values(graph: FGraph, x: np.ndarray, drop: Any = ()) -> dict[str, np.ndarray]:
    """Every tensor of ``run_float(graph, x, keep=True)`` but those in ``drop``, run in chunks
    of at most FLOAT_CHUNK_ELEMENTS input values (the im2col of a whole batch of 224x224 crops
    takes gigabytes; smaller batches run whole, as before)."""
    chunk = max(1, FLOAT_CHUNK_ELEMENTS // max(1, int(np.prod(x.shape[1:]))))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(x), chunk):
        env = run_float(graph, x[start:start + chunk], keep=True)
        for tensor, v in env.items():
            if tensor not in drop:
                parts.setdefault(tensor, []).append(v)
        del env
    return {t: np.concatenate(parts.pop(t)) for t in list(parts)}


def _check_layers(graph: FGraph, config: QuantConfig) -> None:
    layers = [n.name for n in graph.weighted_nodes()]
    for name in config.named_layers:
        if name not in layers:
            raise ConfigError(f"weight_bits names layer {name!r}, which model {graph.name} does "
                              f"not have; its layers: {', '.join(layers)}")


def _quantize_node(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
                   config: QuantConfig) -> QNode:
    rule = _QUANTIZERS.get(node.op)
    if rule is not None:
        return rule(graph, node, tensors, config)
    return QNode(node.name, node.op, node.inputs, node.output, dict(node.attrs))


def _quantize_layer(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
                    config: QuantConfig) -> QNode:
    s_in, out = tensors[node.inputs[0]].unit, tensors[node.output]
    bits = config.bits_for(node.name)
    s_w, params, attrs, fmt = _weight_params(graph, node, config,
                                             bias_weight_scales(node.params["bias"], s_in))
    q, shift = saturating_multipliers(s_in * s_w / out.unit)
    params.update(bias=_bias_codes(node.params["bias"], s_in * s_w),
                  multiplier=q.astype(np.int32), shift=shift.astype(np.int32))
    attrs.update(_clamp_attrs(graph, node, out))
    return QNode(node.name, node.op, node.inputs, node.output, attrs, params, weight_bits=bits,
                 weight_format=fmt)


def bias_weight_scales(bias: Any, s_in: float) -> np.ndarray:
    """The smallest weight scale s_w[c] at which channel c's bias is at most BIAS_UNITS
    accumulator units: |b[c]| / (s_in * BIAS_UNITS). A channel's scale below it is raised to it
    (its integer weights re-rounded). It binds only where the input's whole contribution to the
    channel is below K * 2^-15 of its bias (K products of at most 255 * 127 units): an input
    calibrated to an almost-zero range (MONAI's FlexibleUNet over a random EfficientNet, whose
    activations vanish to ~1e-13, input scale 1.4e-15) or a channel of tiny weights beside a
    large bias. Below that floor the bias took ~2^55 units (saturated at BIAS_LIMIT: already a
    wrong bias) and no array's accumulator could hold it. At the floor the re-rounded weights
    move the channel's output by < K * 2^-23 of its bias, far below an output code."""
    return np.abs(np.asarray(bias, np.float64)) / (s_in * BIAS_UNITS)


def _weight_params(graph: FGraph, node: FNode, config: QuantConfig,
                   floor: np.ndarray | None = None) -> tuple[np.ndarray, dict, dict, str]:
    """A conv2d/linear's weights as ``config`` quantizes them: (per-channel scale s_w (OC,),
    weight params, block attrs, format name). ``floor``: the least s_w[c] of INT weights
    (bias_weight_scales); other formats' scales are their levels' own."""
    bits, fmt = config.bits_for(node.name), config.format_for(node.name)
    clip = config.clipping_for(bits)
    if fmt is None:  # GPTQ-rounded weights (qasic.quant.gptq) carry the scale they sit on
        s_w = node.params.get("weight_scale")
        s_w = WEIGHT_SCALERS[clip](node.params["weight"], bits) if s_w is None else s_w
        if floor is not None:
            s_w = np.maximum(s_w, floor)
        params = {"weight": quantize_weight(node.params["weight"], s_w, bits).astype(np.int8)}
        return s_w, params, {}, f"int{bits}"
    lw = quantize_weights(node.params["weight"], fmt, clip, reduction_order(graph, node))
    params, attrs = {"weight": _narrowest(lw.levels)}, {}
    if lw.lut is not None:
        params.update(weight_codes=lw.codes, weight_lut=lw.lut)
    if lw.block_scale is not None:
        params.update(block_scale=lw.block_scale.astype(np.int32),
                      block_of=lw.block_of.astype(np.int32))
        attrs.update(block_mode=lw.block_mode, block_size=lw.block_size)
    if lw.block_zero is not None:  # asymmetric INT: stored codes q, weight = q - z
        params.update(weight_codes=lw.codes, block_zero=lw.block_zero.astype(np.int32))
    return lw.scale, params, attrs, fmt


def real_weight(graph: FGraph, node: FNode, config: QuantConfig) -> np.ndarray:
    """The real weight (float64, ``node``'s weight layout) that the quantized layer's integer
    weight stands for: layer_weight * s_w[c]."""
    s_w, p, attrs, _ = _weight_params(graph, node, config)
    w = p["weight"].astype(np.int64) if "block_scale" not in p else \
        effective_weight(p["weight"], p["block_scale"], p["block_of"], attrs["block_mode"])
    return w * s_w.reshape((-1,) + (1,) * (w.ndim - 1))


def reduction_order(graph: FGraph, node: FNode) -> np.ndarray | None:
    """The layer's flattened weight-input indices in the order the array reduces them (None:
    as stored). A linear after a flatten of an NHWC image reads its input in memory order."""
    if node.op != "linear":
        return None
    src = graph.producer(node.inputs[0])
    if src is None or src.op != "flatten" or len(graph.shapes[src.inputs[0]]) != 3:
        return None
    return flatten_order(*graph.shapes[src.inputs[0]])


def _narrowest(levels: np.ndarray) -> np.ndarray:
    """int32 levels, or int64 when some do not fit (FP8 E5M2's reach 57344 x 2^16)."""
    fits = np.abs(levels).max(initial=0) < np.iinfo(np.int32).max
    return levels.astype(np.int32 if fits else np.int64)


def _bias_codes(bias: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """round(b / (s_in * s_w[c])), saturated to the widest accumulator (int64 storage; the
    compiler proves it fits the array's array.acc_bits with the worst-case sum)."""
    return np.clip(np.rint(bias / scale), -BIAS_LIMIT, BIAS_LIMIT - 1).astype(np.int64)


def _clamp_attrs(graph: FGraph, node: FNode, out: TensorQ) -> dict:
    """With a fused relu the output saturates at the zero point (= real 0); with a fused clamp
    at its bounds' codes."""
    attrs = dict(node.attrs)
    act = fused_relu(graph, node)
    if act is not None:
        attrs["clamp"] = clamp_codes(act, out)
    return attrs


def clamp_codes(act: FNode, out: TensorQ) -> tuple[int, int]:
    """(lo, hi) codes of a relu (zero point, qmax) or clamp (its min/max encoded) in ``out``."""
    if act.op == "relu":
        return (out.zero_point, out.qmax)
    lo, hi = act.attrs.get("min"), act.attrs.get("max")
    return (out.qmin if lo is None else int(out.encode(np.array(lo))),
            out.qmax if hi is None else int(out.encode(np.array(hi))))


def _quantize_add(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
                  config: QuantConfig | None = None) -> QNode:
    """TFLite-style add: both inputs rescaled to twice the larger input scale, with
    ADD_LEFT_SHIFT bits of headroom, then one requantization to the output scale."""
    s_a, s_b = tensors[node.inputs[0]].unit, tensors[node.inputs[1]].unit
    out = tensors[node.output]
    twice_max = 2.0 * max(s_a, s_b)
    ms = np.array([s_a / twice_max, s_b / twice_max,
                   twice_max / ((1 << ADD_LEFT_SHIFT) * out.unit)])
    # an output calibrated at a range far below its inputs' steps (a difference of values that
    # were equal at calibration: xLSTM's log f + m - max(log f + m, i) while the forget branch
    # wins; a range of float rounding, 1e-19) saturates at codes of ~0 with any multiplier
    q, shift = saturating_multipliers(ms)
    params = {"multiplier": q.astype(np.int32), "shift": shift.astype(np.int32)}
    return QNode(node.name, "add", node.inputs, node.output, _clamp_attrs(graph, node, out),
                 params)


def _rescale(m: Any) -> Any:
    """A node rule with one multiplier M = m(node, tensors) (avgpool2d, mul, bilinear)."""
    def rule(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
             config: QuantConfig) -> QNode:
        q, shift = saturating_multipliers(np.array([m(node, tensors)]))
        params = {"multiplier": q.astype(np.int32), "shift": shift.astype(np.int32)}
        return QNode(node.name, node.op, node.inputs, node.output,
                     _clamp_attrs(graph, node, tensors[node.output]), params)
    return rule


def _quantize_resize(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
                     config: QuantConfig) -> QNode:
    """The interpolation weights as integers over denominators (qasic.quant.resize:
    ``integer_rows`` one per row of R_w, ``shared_rows`` one for R_h); M along W (one per output
    column) takes the input to the intermediate encoding (attrs mid: scale, zero point), M along
    H (one) that to the output's."""
    inp = tensors[node.inputs[0]]
    (wh, dh), (ww, dw) = shared_rows(node.params["weight_h"]), integer_rows(node.params["weight_w"])
    mid = mid_encoding(inp, ww, dw)
    ms = np.append(inp.unit / (dw * mid.unit), mid.unit / (dh * _unit(tensors, node.output)))
    q, shift = saturating_multipliers(ms)
    params = {"weight_h": wh, "weight_w": ww, "multiplier": q.astype(np.int32),
              "shift": shift.astype(np.int32)}
    attrs = _clamp_attrs(graph, node, tensors[node.output])
    attrs["mid"] = (mid.scale, mid.zero_point)
    return QNode(node.name, "resize", node.inputs, node.output, attrs, params)


def _product(node: FNode, tensors: Mapping[str, TensorQ]) -> float:
    s_a, s_b, s_out = (_unit(tensors, t) for t in (*node.inputs[:2], node.output))
    check_product(node, s_a * s_b / s_out, s_a, s_b, s_out)
    return s_a * s_b / s_out


def _unit(tensors: Mapping[str, TensorQ], name: str) -> float:
    return tensors[name].unit


def _quantize_lut(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
                  config: QuantConfig) -> QNode:
    table = lut_table(node.attrs["fn"], node.attrs.get("fn_args"), tensors[node.inputs[0]],
                      tensors[node.output])
    return QNode(node.name, "lut", node.inputs, node.output, dict(node.attrs), {"table": table})


def lut_table(fn: str, fn_args: Mapping | None, inp: TensorQ, out: TensorQ) -> np.ndarray:
    """(2^B,) int64: table[code & (2^B - 1)] = out.encode(f(inp.decode(code))) for every code
    of ``inp`` (B its code bits; FP8 NaN codes map as f(0)). A code outside f's domain (sqrt or
    log of a negative: a symmetric FP8 range spans values a non-negative tensor never takes)
    maps as the nearest code inside it, f extended by its value at the domain's edge."""
    bits = inp.bits
    codes = np.arange(-(1 << (bits - 1)), 1 << (bits - 1), dtype=np.int64)
    x = inp.decode(codes)
    x = np.where(np.isfinite(x), x, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # outside the domain: below
        y = np.asarray(apply(fn, x, dict(fn_args or {})), dtype=np.float64)
    bad = np.isnan(y)
    if bad.all():
        raise InputError(f"{fn}: no code of its input's range {x.min():.4g}..{x.max():.4g} "
                         "lies in the function's domain; check the tensor feeding it")
    if bad.any():
        good = np.flatnonzero(~bad)
        good = good[np.argsort(x[good], kind="stable")]  # by value (FP8 codes are not)
        xs = x[good]
        i = np.clip(np.searchsorted(xs, x[bad]), 1, max(len(xs) - 1, 1))
        below = np.maximum(i - 1, 0)
        pick = np.where(np.abs(x[bad] - xs[below]) <= np.abs(xs[i % len(xs)] - x[bad]),
                        below, i % len(xs))
        y[bad] = y[good[pick]]
    table = np.empty(1 << bits, dtype=np.int64)
    table[codes & ((1 << bits) - 1)] = out.encode(y)
    return table


def _quantize_clamp(graph: FGraph, node: FNode, tensors: Mapping[str, TensorQ],
                    config: QuantConfig) -> QNode:
    """A clamp fused into its producer: lo, hi codes of the shared TensorQ (a no-op)."""
    lo, hi = clamp_codes(node, tensors[node.output])
    return QNode(node.name, "clamp", node.inputs, node.output, {"lo": lo, "hi": hi})


_QUANTIZERS = {
    "conv2d": _quantize_layer,
    "linear": _quantize_layer,
    "add": _quantize_add,
    "mul": _rescale(_product),
    "avgpool2d": _rescale(lambda n, t: _unit(t, n.inputs[0])
                          / (n.attrs["divisor"] * _unit(t, n.output))),
    "upsample_bilinear": _rescale(lambda n, t: _unit(t, n.inputs[0]) / (16 * _unit(t, n.output))),
    "resize": _quantize_resize,
    "lut": _quantize_lut,
    "clamp": _quantize_clamp,
    **QUANTIZERS,  # matmul, softmax, norm, embedding, constant
}
