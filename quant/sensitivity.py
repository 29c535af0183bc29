"""Mixed-precision sensitivity: a score per (weighted layer, candidate bits), lower = safer.

Layers are the conv2d/linear nodes of the captured FGraph, by node name (conv1, conv2, fc). Their
weights are the ones quantization sees (batch norm folded), and Q_b is our weight quantizer:
symmetric per output channel, clipping as QuantConfig(weight_clipping=...) picks ('auto': MSE at
<= 4 bits, max-abs above). Every method has the signature
``(model, calibration, labels=None, bits=CANDIDATE_BITS, ...) -> {layer: {bits: score}}``;
``model`` is an nn.Module, an ExportedProgram or an FGraph, ``calibration`` a float batch in the
model's layout. Without labels, the float model's own predictions stand in (pseudo-labels).

- hawq (HAWQ-V2): Omega_i(b) = Tr(H_i)/n_i * ||Q_b(W_i) - W_i||^2, H_i the block of the Hessian
  of the mean cross-entropy on the batch w.r.t. layer i's weights; Tr(H_i) by
  Hutchinson (mean of v^T H_i v over Rademacher v on layer i alone, H_i v by double backward;
  a negative estimate counts as 0).
- lim, zd (LayerwiseQuant, Dumitru et al. 2024): each ranks the layers by importance; a layer's
  score is its rank (1 = least important ... L = most) times the relative weight error
  ||Q_b(W) - W||^2 / ||W||^2, which estimates the relative noise power the layer adds to its
  output. Ranks, not raw values, because the paper uses only the order.
  LIM = -cos(block input, block output). The paper's layer is a transformer block, whose
  output is the next block's input; here a block runs from a weighted layer's input to the next
  weighted layer's input (conv, ReLU, pool: what the next layer sees), the last one to the
  model output. The two differ in width, so we compare them as the batch sees them: cos between
  their centred N x N Gram matrices (linear CKA). Higher LIM = the block reshapes its input more
  = more important. (The pre-activation output alone ranks mnist_deep's conv2 least important,
  where its Hessian trace per weight is the second highest, and loses to random assignments.)
  ZD = fraction of weights with |z-score| > 1 (population std); lower = more important.
- measured (ZeroQ's sensitivity, Cai et al. 2020): increase of the mean KL divergence of the
  output distribution from the fp32 model's when only layer i's weights are replaced by
  Q_b(W_i) (fake quantization: dequantized weights, float activations), run by the float64
  FGraph executor ``run_float``. Every other layer is float, or, with ``context``, quantized to
  its width there: ``qasic.policies`` re-measures around the allocation it picked, since layers'
  losses do not add (two layers at 3 bits cost more than twice one). KL, not the cross-entropy
  with the labels: on held-out data the cross-entropy is dominated by the few confidently wrong
  samples, and noise that shrinks the logits lowers it (mnist_deep's fc1 at 2 bits "improved"
  it by 0.012 nats on the validation split, so 'measured' spent 2.7 of a 4-bit budget); the KL
  divergence from the fp32 outputs only grows with the perturbation. Not the golden reference:
  it cannot keep the other layers float.
  With ``activations`` (a QuantConfig: activation_bits, activation_format, activation_observer,
  percentile) 'measured' is activation-aware: every activation tensor is fake-quantized to the
  TensorQ ``quantize`` calibrates for it (on ``act_calibration``, the model's calibration
  batch), in the base run and in every perturbed one, and a quantized layer's bias is rounded
  to its codes (the s_in s_w grid depends on the activations); the reference stays the pure
  fp32 output. A quantized model then runs as the golden reference does (the same output codes
  with INT activations on the digits CNN and mnist_deep), so a score is what the layer's
  weights add on top of the activations' noise (base KL on mnist_deep's validation split:
  7e-5 at A8, 0.021 at A4). At A4 a few codes flip at any weight change, so the scores carry
  ~0.003 nats of rounding noise (8-bit weights can score above 6-bit ones). Without
  ``activations``, the activations are float, as in ZeroQ.
  Only 'measured' sees them: HAWQ (the float model's Hessian), LIM (float activations'
  similarity) and ZD (weights alone) are defined by their papers on float activations.

Which data: ``qasic.policies`` passes a model's validation split (held out of training) with its
labels (``TrainedModel.scoring_data``). On training samples the model is confident and the
loss hardly moves under moderate noise: for the digits CNN trained on all 1,437 training
images, the calibration batch rated uniform 3 bits (96.7 % on test) as safe as 6/4/2 (98.3 %),
where held-out data told them apart.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from qasic.errors import ConfigError, UnsupportedOpError
from qasic.quant.calibrate import check_calibration, encode_activations
from qasic.quant.config import BITS_RANGE, QuantConfig
from qasic.quant.fgraph import FGraph, FNode, run_float
from qasic.quant.graph import TensorQ
from qasic.quant.observers import WEIGHT_SCALERS, quantize_weight
from qasic.quant.quantize import BIAS_LIMIT
from qasic.quant.torch_ops import TORCH_OPS, ops_for

CANDIDATE_BITS = (2, 3, 4, 6, 8)
HUTCHINSON_ITERS = 100  # PyHessian's default maximum

Scores = dict[str, dict[int, float]]  # layer -> bits -> sensitivity (lower = safer)


# --- shared pieces -------------------------------------------------------------------------

def as_graph(model: Any, calibration: Any) -> FGraph:
    """An FGraph as is; an nn.Module or ExportedProgram captured with one calibration sample."""
    if isinstance(model, FGraph):
        return model
    from qasic.quant.torch_export import capture

    x = calibration.detach() if hasattr(calibration, "detach") else torch.as_tensor(
        np.asarray(calibration))
    x = x[:1] if not x.dtype.is_floating_point else x[:1].float()  # token ids stay integers
    return capture(model, (x,), getattr(model, "name", None))


def check_bits(bits: Iterable[int]) -> tuple[int, ...]:
    """Sorted, distinct candidate widths, each in QuantConfig's range."""
    lo, hi = BITS_RANGE
    given = list(bits)
    if not given or any(isinstance(b, bool) or not isinstance(b, numbers.Integral)
                        or not lo <= b <= hi for b in given):
        raise ConfigError(f"candidate bits {given} must be integers in {lo}..{hi}")
    return tuple(sorted({int(b) for b in given}))


def weight_scale(w: np.ndarray, bits: int, clipping: str = "auto") -> np.ndarray:
    """Per-output-channel scale of our quantizer's ``bits``-bit codes of ``w``."""
    return WEIGHT_SCALERS[QuantConfig(weight_clipping=clipping).clipping_for(bits)](w, bits)


def dequantized_weight(w: np.ndarray, bits: int, clipping: str = "auto") -> np.ndarray:
    """Q_b(w): the real values our quantizer's per-channel codes stand for."""
    return _real_weight(w, weight_scale(w, bits, clipping), bits)


def _real_weight(w: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    return quantize_weight(w, scale, bits) * scale.reshape((-1,) + (1,) * (w.ndim - 1))


def dequantized_bias(bias: np.ndarray, input_unit: float, scale: np.ndarray) -> np.ndarray:
    """The real values of the int64 bias codes ``quantize`` stores: round(b / (s_in s_w[c]))
    (ties to even, saturated to the widest accumulator) times s_in s_w[c]; ``input_unit`` is
    the input TensorQ's unit, ``scale`` the weight scale s_w."""
    step = input_unit * scale
    return np.clip(np.rint(bias / step), -BIAS_LIMIT, BIAS_LIMIT - 1) * step


def weight_error(w: np.ndarray, bits: int, clipping: str = "auto") -> float:
    """||Q_b(w) - w||^2."""
    return float(np.sum((dequantized_weight(w, bits, clipping) - w) ** 2))


def pseudo_labels(graph: FGraph, x: np.ndarray) -> np.ndarray:
    """The float model's predictions on ``x`` (graph layout): the argmax of the last axis
    (one per sample, or per position of a sequence)."""
    return np.argmax(run_float(graph, x), axis=-1)


def _batch(graph: FGraph, calibration: Any) -> np.ndarray:
    """Calibration -> float64 in the graph layout (NHWC), checked."""
    return graph.to_internal(check_calibration(graph, calibration))


def _inputs(graph: FGraph, calibration: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """The batch and its labels (pseudo-labels if None)."""
    x = _batch(graph, calibration)
    if labels is None:
        return x, pseudo_labels(graph, x)
    y = np.asarray(labels).astype(np.int64)
    y = y.ravel() if y.size == len(x) else y  # (N,) classes, or (N, S) per position
    if len(y) != len(x):
        raise ConfigError(f"{len(y)} labels for {len(x)} calibration samples; give one each")
    return x, y


# --- HAWQ-V2 ------------------------------------------------------------------------------

def hawq_sensitivity(model: Any, calibration: Any, labels: Any = None,
                     bits: Iterable[int] = CANDIDATE_BITS, n_iter: int = HUTCHINSON_ITERS,
                     seed: int = 0, clipping: str = "auto") -> Scores:
    graph = as_graph(model, calibration)
    bits = check_bits(bits)
    traces = hessian_traces(graph, calibration, labels, n_iter, seed)
    out = {}
    for node in graph.weighted_nodes():
        w = node.params["weight"]
        # a negative estimate (sampling noise, or a saddle) means no curvature we can measure
        curvature = max(traces[node.name], 0.0) / w.size
        out[node.name] = {b: curvature * weight_error(w, b, clipping) for b in bits}
    return out


def hessian_traces(model: Any, calibration: Any, labels: Any = None,
                   n_iter: int = HUTCHINSON_ITERS, seed: int = 0) -> dict[str, float]:
    """Hutchinson estimate of Tr(H_i) per weighted layer, H the Hessian of the mean cross-entropy
    on the batch: the mean of v^T H_i v over ``n_iter`` Rademacher probes v of layer i alone
    (H_i v is the gradient of g_i . v w.r.t. W_i, g_i the loss gradient of W_i).

    One probe over all layers at once, v_i^T (Hv)_i, is unbiased too, but its cross-layer terms
    v_i^T H_ij v_j add variance that swamps a small layer next to large ones: on mnist_deep,
    100 joint probes put conv1's 72-weight block at 0.068 +- 0.019 (one seed gave a negative
    trace, i.e. 2 bits for the most sensitive layer) where per-layer probes give 0.027 +- 0.001,
    in about the same time. float32 on one thread (torch's float64 conv backward is ~7x
    slower): the same seed gives the same numbers."""
    from qasic.models.train import deterministic

    if n_iter < 1:
        raise ConfigError(f"n_iter = {n_iter} must be >= 1 Hutchinson samples")
    graph = as_graph(model, calibration)
    x, y = _inputs(graph, calibration, labels)
    with deterministic(seed):
        ws = {n.name: torch.tensor(n.params["weight"], dtype=torch.float32, requires_grad=True)
              for n in graph.weighted_nodes()}
        xt = torch.from_numpy(x)
        logits = torch_forward(graph, xt.float() if xt.dtype.is_floating_point else xt, ws)
        params = list(ws.values())
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                               torch.from_numpy(y).reshape(-1))
        grads = torch.autograd.grad(loss, params, create_graph=True)
        gen = torch.Generator().manual_seed(seed)
        total = np.zeros(len(params))
        for _ in range(n_iter):
            for i, (p, g) in enumerate(zip(params, grads)):
                v = torch.randint(0, 2, p.shape, generator=gen).to(p.dtype) * 2 - 1
                (hv,) = torch.autograd.grad(g, p, grad_outputs=v, retain_graph=True,
                                            allow_unused=True)
                total[i] += 0.0 if hv is None else float(torch.sum(v * hv))
    return dict(zip(ws, (total / n_iter).tolist()))


def torch_forward(graph: FGraph, x: torch.Tensor, weights: dict[str, torch.Tensor],
                  keep: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
    """The FGraph in torch, differentiable in ``weights`` ({layer: weight in FGraph layout});
    ``x`` is a float batch in the graph layout (NHWC), computed in its dtype. Same values as
    ``run_float`` (to rounding). ``keep``, a dict, receives every tensor (torch layout)."""
    if len(graph.inputs) > 1:
        raise UnsupportedOpError(f"model {graph.name} takes {len(graph.inputs)} inputs "
                                 f"({', '.join(graph.inputs)}); the gradient-based scores "
                                 "(Fisher observers, Hessian policies) run models of one input: "
                                 "use a min-max or percentile observer, or --bits")
    ops = ops_for(graph)
    if x.ndim == 4 and ops is TORCH_OPS:
        x = x.permute(0, 3, 1, 2)  # torch ops want NCHW
    env = {graph.input: x}
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()  # ids: integers
    for node in graph.nodes:
        w = weights.get(node.name)
        if w is None and "weight" in node.params:
            w = torch.from_numpy(node.params["weight"]).to(dtype)
        op = ops.get(node.op)
        if op is None:
            raise UnsupportedOpError(f"node {node.name!r}: op {node.op!r} has no torch form for "
                                     f"the Hessian; supported: {', '.join(ops)}")
        env[node.output] = op(node, w, *[env[i] for i in node.inputs])
    if keep is not None:
        keep.update(env)
    return env[graph.output]


# --- LayerwiseQuant: LIM and ZD -----------------------------------------------------------

def lim(x: np.ndarray, y: np.ndarray) -> float:
    """-cos(centred Gram of x, centred Gram of y) = -linear CKA; x, y batch first, any width.
    A side that is the same for every sample (zero centred Gram) counts as cos = 1."""
    gx, gy = _centred_gram(x), _centred_gram(y)
    norm = np.linalg.norm(gx) * np.linalg.norm(gy)
    return -1.0 if norm == 0 else -float(np.sum(gx * gy) / norm)


def _centred_gram(x: np.ndarray) -> np.ndarray:
    f = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    f = f - f.mean(axis=0)
    return f @ f.T


def zd(w: np.ndarray) -> float:
    """Fraction of the weights whose |z-score| exceeds 1 (population std over the tensor)."""
    w = np.ravel(w).astype(np.float64)
    std = w.std()
    return 0.0 if std == 0 else float(np.mean(np.abs(w - w.mean()) > std))


def lim_scores(model: Any, calibration: Any) -> dict[str, float]:
    """LIM per weighted layer on the batch: its input against the next weighted layer's input
    (the model output after the last one)."""
    graph = as_graph(model, calibration)
    values = run_float(graph, _batch(graph, calibration), keep=True)
    layers = graph.weighted_nodes()
    ends = [n.inputs[0] for n in layers[1:]] + [graph.output]
    return {n.name: lim(values[n.inputs[0]], values[end]) for n, end in zip(layers, ends)}


def zd_scores(model: Any, calibration: Any) -> dict[str, float]:
    graph = as_graph(model, calibration)
    return {n.name: zd(n.params["weight"]) for n in graph.weighted_nodes()}


def importance_ranks(importance: dict[str, float]) -> dict[str, int]:
    """1 for the least important layer ... L for the most; ties keep the layer order."""
    names = list(importance)
    order = sorted(range(len(names)), key=lambda i: importance[names[i]])
    return {names[i]: r + 1 for r, i in enumerate(order)}


def ranked_sensitivity(graph: FGraph, importance: dict[str, float], bits: Iterable[int],
                       clipping: str = "auto") -> Scores:
    """score(i, b) = rank_i * ||Q_b(W_i) - W_i||^2 / ||W_i||^2 (higher importance = higher rank)."""
    ranks = importance_ranks(importance)
    out = {}
    for node in graph.weighted_nodes():
        w = node.params["weight"]
        power = float(np.sum(w ** 2)) or 1.0
        out[node.name] = {b: ranks[node.name] * weight_error(w, b, clipping) / power
                          for b in check_bits(bits)}
    return out


def lim_sensitivity(model: Any, calibration: Any, labels: Any = None,
                    bits: Iterable[int] = CANDIDATE_BITS, clipping: str = "auto") -> Scores:
    """LIM ranks the layers (higher LIM = more important); labels are not used."""
    graph = as_graph(model, calibration)
    return ranked_sensitivity(graph, lim_scores(graph, calibration), bits, clipping)


def zd_sensitivity(model: Any, calibration: Any, labels: Any = None,
                   bits: Iterable[int] = CANDIDATE_BITS, clipping: str = "auto") -> Scores:
    """ZD ranks the layers (lower ZD = more important); calibration only captures the model."""
    graph = as_graph(model, calibration)
    importance = {k: -v for k, v in zd_scores(graph, calibration).items()}
    return ranked_sensitivity(graph, importance, bits, clipping)


# --- measured -----------------------------------------------------------------------------

def measured_sensitivity(model: Any, calibration: Any, labels: Any = None,
                         bits: Iterable[int] = CANDIDATE_BITS, clipping: str = "auto",
                         context: Mapping[str, int] | None = None,
                         activations: QuantConfig | None = None,
                         act_calibration: Any = None) -> Scores:
    """Increase of the mean KL divergence from the fp32 model's outputs when layer i's weights
    alone move to Q_b. The other layers are float, or quantized to their widths in ``context``
    ({layer: bits}, every weighted layer; then the increase may be < 0 by chance, and the
    allocator takes the numbers as they are). ``activations``: fake-quantize every activation
    tensor as ``quantize`` would with that config (its weight settings are ignored), calibrated
    on ``act_calibration`` (default: ``calibration``), in the base and in the perturbed runs,
    and round each quantized layer's bias to its codes (``quantized_params``); None: float
    activations. ``labels`` are not used."""
    graph = as_graph(model, calibration)
    x = _batch(graph, calibration)
    bits = check_bits(bits)
    names = [n.name for n in graph.weighted_nodes()]
    if context is not None and set(context) != set(names):
        raise ConfigError(f"context names layers {sorted(context)}; give bits for exactly "
                          f"{', '.join(names)}")
    reference = run_float(graph, x)
    encodings = activation_encodings(graph, _calibration(calibration, act_calibration), activations)
    around: dict[str, int | None] = dict(context) if context else dict.fromkeys(names)
    weights: dict[tuple[str, int], dict] = {}  # Q_b(W) (and bias) once per (layer, bits)

    def loss(widths: Mapping[str, int | None]) -> float:
        return float(np.mean(_divergences(graph, x, reference, widths, clipping, weights,
                                          encodings)))

    base = loss(around)
    return {name: {b: loss({**around, name: b}) - base for b in bits} for name in names}


def measured_losses(model: Any, calibration: Any, widths: Mapping[str, int],
                    clipping: str = "auto", activations: QuantConfig | None = None,
                    act_calibration: Any = None) -> np.ndarray:
    """Per sample, the KL divergence of the output distribution with every weighted layer
    fake-quantized to ``widths`` ({layer: bits}; a layer left out stays float) from the fp32
    model's; ``activations`` and ``act_calibration`` as in ``measured_sensitivity``."""
    graph = as_graph(model, calibration)
    x = _batch(graph, calibration)
    encodings = activation_encodings(graph, _calibration(calibration, act_calibration), activations)
    return _divergences(graph, x, run_float(graph, x), widths, clipping, None, encodings)


def measured_loss(model: Any, calibration: Any, widths: Mapping[str, int],
                  clipping: str = "auto", activations: QuantConfig | None = None,
                  act_calibration: Any = None) -> float:
    """The mean of ``measured_losses``."""
    return float(np.mean(measured_losses(model, calibration, widths, clipping, activations,
                                         act_calibration)))


def activation_encodings(graph: FGraph, calibration: Any,
                         config: QuantConfig | None) -> dict[str, TensorQ] | None:
    """Every tensor's TensorQ as ``quantize`` calibrates it on ``calibration`` (a float batch in
    the model's layout) under ``config``'s activation settings; None for float activations."""
    if config is None:
        return None
    if not isinstance(config, QuantConfig):
        raise ConfigError(f"activations = {config!r} must be a QuantConfig (or None: float "
                          "activations)")
    x = _batch(graph, calibration)
    weights = None
    if config.activation_observer == "fisher":
        from qasic.quant.fisher import fisher_weights

        weights = fisher_weights(graph, x)
    return encode_activations(graph, run_float(graph, x, keep=True), config, weights)


def _calibration(scored: Any, act_calibration: Any) -> Any:
    """The batch the activation encodings are calibrated on: the scored one by default."""
    return scored if act_calibration is None else act_calibration


def _divergences(graph: FGraph, x: np.ndarray, reference: np.ndarray,
                 widths: Mapping[str, int | None], clipping: str,
                 cache: dict[tuple[str, int], dict] | None = None,
                 encodings: Mapping[str, TensorQ] | None = None) -> np.ndarray:
    """KL of each sample's outputs from ``reference`` with the layers of ``widths`` at their
    bits and the activations fake-quantized to ``encodings`` (None: float); ``cache`` keeps
    the quantized parameters across calls (the clipping search is not free)."""
    cache = {} if cache is None else cache
    quantized = graph
    for name, b in widths.items():
        if b is not None:
            if (name, b) not in cache:
                cache[name, b] = quantized_params(graph.node(name), b, clipping, encodings)
            quantized = with_params(quantized, name, cache[name, b])
    return kl_divergence(reference, run_float(quantized, x, activations=encodings))


def quantized_params(node: FNode, bits: int, clipping: str,
                     encodings: Mapping[str, TensorQ] | None = None) -> dict[str, np.ndarray]:
    """{"weight": Q_b(W)}, and with activation ``encodings`` also the bias as ``quantize``
    rounds it to the s_in s_w grid: with both, ``run_float`` with those encodings gives the
    golden reference's codes (up to the requantization multipliers' 31-bit rounding)."""
    w = node.params["weight"]
    scale = weight_scale(w, bits, clipping)
    out = {"weight": _real_weight(w, scale, bits)}
    if encodings is not None:
        out["bias"] = dequantized_bias(node.params["bias"], encodings[node.inputs[0]].unit, scale)
    return out


def with_params(graph: FGraph, layer: str, params: Mapping[str, np.ndarray]) -> FGraph:
    """A copy of ``graph`` whose node ``layer`` has ``params`` in place of those it names."""
    nodes = tuple(dataclasses.replace(n, params={**n.params, **params})
                  if n.name == layer else n for n in graph.nodes)
    return dataclasses.replace(graph, nodes=nodes)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean softmax cross-entropy over the last axis, natural log, as torch's
    F.cross_entropy (a sequence's positions count as samples)."""
    logp = log_softmax(logits).reshape(-1, logits.shape[-1])
    labels = np.ravel(labels)
    return float(-np.mean(logp[np.arange(len(labels)), labels]))


def kl_divergence(p_logits: np.ndarray, q_logits: np.ndarray) -> np.ndarray:
    """Per sample, KL(softmax(p) || softmax(q)) in nats over the last axis (the mean over a
    sequence's positions): >= 0, 0 when the outputs agree."""
    logp, logq = log_softmax(p_logits), log_softmax(q_logits)
    kl = np.sum(np.exp(logp) * (logp - logq), axis=-1)
    return kl.reshape(len(kl), -1).mean(axis=1)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


METHODS: dict[str, Callable[..., Scores]] = {
    "hawq": hawq_sensitivity,
    "lim": lim_sensitivity,
    "zd": zd_sensitivity,
    "measured": measured_sensitivity,
}
