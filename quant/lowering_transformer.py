"""Lowering rules of the transformer ops: embeddings, LayerNorm/RMSNorm, softmax, the matmul of
two activations and scaled_dot_product_attention; and the table of sequence-mode handlers.

Same handler contract as ``qasic.quant.lowering``. FNode forms (quantized by
qasic.quant.quantize_transformer):
- ``embedding``: params table (V, D) float; input the token ids;
- ``norm``: params gamma, beta (D,); attrs center (LayerNorm) or not (RMSNorm), eps; over the
  last axis;
- ``softmax``: over the last axis; attrs causal; optional second input the key mask; optional
  params valid, a constant (P, S, T) 0/1 attention pattern (qasic.quant.masks);
- ``matmul``: inputs a, b; attrs transpose_b, alpha (a constant scale of the product, folded
  into the requantization); a ``transpose(-2, -1)`` feeding b folds into transpose_b; a
  constant operand other than a right matrix (which makes a ``linear``) is a ``constant`` node
  ``<node>.a`` / ``<node>.b`` of its per-sample value (the same for every sample);
- sdpa becomes matmul(q, k, transpose_b, alpha = scale) -> softmax(causal, mask) ->
  matmul(p, v), named ``<node>.scores``, ``<node>.softmax`` and ``<node>``; with enable_gqa
  each K/V head is first repeated for its query heads (a selection matmul, ``<node>.k_heads``,
  ``.v_heads``), and a float attn_mask's finite non-zero part (T5's relative position bias) is a
  ``constant`` added to the scores (``<node>.bias``, ``<node>.biased``); an attn_mask
  computed from the activations (SAM's relative positions) an ``add`` to them (``.biased``).
In an image model these ops take vectors only (per-sample rank 1, where the layouts agree).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import fx

from qasic.quant import (
    grid_sample,
    hashing,
    inplace,
    largest_id,
    lastpool,
    lowering_gather,
    lowering_pointwise,
    lowering_reduce,
    lowering_seq,
    lowering_seqpool,
    lowering_ssm,
    masked_axis,
    masks,
    relshift,
    routers,  # noqa: F401  (registers the qasic:: torch ops handled here)
    row_masks,
    topk_select,
)
from qasic.quant.lowering import Act, IdSlice, _act, _arg, _const, _np
from qasic.quant.lowering_pointwise import Pointwise, materialize

aten = torch.ops.aten

SUPPORTED = (
    ("embedding (token ids, or a contiguous slice of them: an encoder-decoder's source and "
     "target in one input; position/token-type lookups fold into a constant)"),
    "layer_norm/native_layer_norm/rms_norm over the last axis; x * rsqrt(mean(x^2) + eps)",
    ("softmax/_softmax over the last axis, with causal, padding and constant masks (a "
     "padding mask and a sliding window at once: one row mask; LongT5's local blocks: each "
     "element its key's bit; logical_and/or/xor/not of the attention mask input's views); "
     "exp(x - logsumexp(x, -1, keepdim=True)); over another per-sample axis (slot "
     "attention, GroupViT's assignment): that axis permuted last and back"),
    ("matmul/bmm of two activations (a transpose(-2, -1) of the second folds in; leading "
     "axes of 1 broadcast), or of an activation and a constant (a right matrix: a linear; "
     "else a constant node, per head too)"),
    "baddbmm: beta input + alpha (a @ b), a matmul and an add",
    ("scaled_dot_product_attention (is_causal, attn_mask, scale, enable_gqa; a constant bias, "
     "or one computed from the activations: SAM's relative positions)"),
    ("RoPE (products by constant cos/sin tables; rotate_half, and rotate_every_two's stack "
     "along a new last axis, a +-1 linear; Llama 4's view_as_complex of channel pairs times "
     "a constant exp(i theta), view_as_real: rewritten as rotate_every_two's), repeat_kv"),
    "sequence models: linear on (batch, S, D), view/reshape/transpose/permute/split of heads",
    ("linalg_vector_norm (2-norm over per-sample axes before the channels), mean over the "
     "channels, div of two activations (a reciprocal table): ConvNeXt V2's GRN"),
    ("mixture-of-experts blocks with softmax or sigmoid top-k routers and stacked experts "
     "(Mixtral, Qwen2-/Qwen3-MoE, OLMoE, GLM-4-MoE, GraniteMoE, HunYuan-MoE, MiniMax, "
     "ERNIE-4.5-MoE, DBRX, GPT-OSS's, Llama 4's blocks; transformers 5's MiniMax-M2, HYV3, "
     "AFMoE, Kolibri, Inkling, Inkling2, Laguna, Aria, NemotronH, Ergo; Switch "
     "Transformers' top-1), run densely: "
     "qasic::topk_mask, qasic::masked_softmax"),
    ("DeepSeek sparse attention on up to index_topk keys (a top-k of every key is a "
     "constant mask: quant.alltopk)"),
    "sum over per-sample axes; broadcasts of size-1 axes between two activations",
    "in-place views (unsqueeze_, squeeze_, transpose_, t_) read by nothing after them",
    "lerp(x, y, w): x + w (y - x)",
    ("grid_sample at locations computed from the activations (bilinear or nearest, zeros or "
     "border padding, align_corners either: a tent table of each pixel's distance per axis, "
     "their product, a matmul with the map: multi-scale deformable attention), or at a "
     "constant grid (a linear; per head, a matmul by constant weights)"),
    ("gather / x[arange(batch)[:, None], idx] of the rows a topk of scores picks (two-stage "
     "detectors' query selection): the matmul by the top-k's one-hot"),
    ("c / norm(x, dim=-1).clamp_min(eps) (a q/k norm to sqrt(d), ZAYA's): one norm node"),
    ("attention sinks: a constant logit per head (GPT-OSS) or one computed per token and head "
     "(Inkling2's sink_proj(x): one concat of T + 1 keys, generation refused)"),
    ("relative shifts: a view of scores (..., I, J) as (..., J, I), slices and constant "
     "index_selects of it (Transformer-XL / XLNet's rel_shift): row selections and per-row "
     "0/1 gathers"),
)


def _sequence_input(b: Any, node: Any, x: Any, what: str) -> Act:
    x = _act(b, node, x, what)
    if not b.sequence and len(b.shapes[x.name]) != 1:
        b.fail(node, f"{what} of a {len(b.shapes[x.name]) + 1}-D activation in an image model; "
                     "only in sequence models or on vectors")
    return x


def embedding(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.embedding(weight, ids, padding_idx, ...): rows of the table by token id."""
    table = _np(_const(b, node, args[0], "embedding table"))
    if isinstance(args[1], IdSlice):  # ids start.. of the input, one a row
        rows = (args[1].length, table.shape[-1])
        y = b.add(node, "embedding", (args[1].name,),
                  {"offset": args[1].start, "rows": args[1].length}, {"table": table},
                  shape=rows)
        if b.per_sample(node) != rows:  # one id of each sample selected: its row, unnested
            y = lowering_seq.reshaped(b, node, y, b.per_sample(node), ".row")
        return y
    if isinstance(args[1], Pointwise) and b.is_ids(args[1].src):
        rows = hashing.composed(table, args[1].tree, _direct_vocab(node.args[1]))
        if rows is None:
            b.fail(node, "an embedding of computed token ids; only of the ids, or of a hash "
                         "of them ending in a remainder by a constant (qasic.quant.hashing)")
        return b.add(node, "embedding", (args[1].src.name,), {"index_is": "hashed"},
                     {"table": rows})
    ids = _act(b, node, materialize(b, args[1]), "embedding indices")
    if not b.is_ids(ids):
        b.fail(node, "an embedding of computed indices; only of the model's token ids")
    return b.add(node, "embedding", (ids.name,), {}, {"table": table})


def _direct_vocab(index: Any) -> int:
    """The most rows of a table that the fx graph embeds the ids by directly (0 if none), the
    ids an input that the index ``index`` (an fx node) is computed from: the id range a hash
    of the same ids must cover."""
    src = index
    while isinstance(src, fx.Node) and src.op != "placeholder":
        src = next((a for a in src.args if isinstance(a, fx.Node)), None)
    rows = [int(u.args[0].meta["val"].shape[0]) for u in getattr(src, "users", ())
            if u.target is aten.embedding.default and u.args[1] is src
            and isinstance(u.args[0], fx.Node) and u.args[0].meta.get("val") is not None]
    return max(rows, default=0)


def layer_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.layer_norm(x, shape, weight, bias, eps, cudnn) over the last axis."""
    return _norm(b, node, args[0], args[1], _arg(args, kwargs, 2, "weight", None),
                 _arg(args, kwargs, 3, "bias", None), _arg(args, kwargs, 4, "eps", 1e-5), True)


def native_layer_norm(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten.native_layer_norm(x, shape, weight, bias, eps) -> (y, mean, rstd): y only."""
    return (_norm(b, node, *args[:5], center=True), None, None)


def rms_norm(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.rms_norm(x, shape, weight, eps): eps None is float32's machine epsilon (torch)."""
    eps = _arg(args, kwargs, 3, "eps", None)
    eps = float(torch.finfo(torch.float32).eps) if eps is None else eps
    return _norm(b, node, args[0], args[1], _arg(args, kwargs, 2, "weight", None), None, eps,
                 False)


def _norm(b: Any, node: Any, x: Any, shape: Any, gamma: Any, beta: Any, eps: float,
          center: bool) -> Act:
    x = _sequence_input(b, node, x, "normalization input")
    d = b.shapes[x.name][-1]
    if list(shape) != [d]:
        b.fail(node, f"normalization over {list(shape)}; only over the last axis ({d})")
    params = {"gamma": np.ones(d) if gamma is None else _np(_const(b, node, gamma, "gamma")),
              "beta": np.zeros(d) if beta is None else _np(_const(b, node, beta, "beta"))}
    return b.add(node, "norm", (x.name,), {"center": center, "eps": float(eps)}, params)


def softmax(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.softmax(x, dim, [dtype]) / _softmax(x, dim, half_to_float) over the last axis;
    masked scores (qasic.quant.masks) add causal and the key-mask input."""
    x = args[0]
    shape = tuple(node.args[0].meta["val"].shape)
    if int(args[1]) % len(shape) != len(shape) - 1:
        if isinstance(x, masks.Masked):  # sequence-first masked scores (Transformer-XL's)
            return masked_axis.softmax(b, node, x, int(args[1]) % len(shape), shape)
        return _softmax_before_ones(b, node, x, int(args[1]) % len(shape), shape)
    if isinstance(x, masks.Masked):
        inputs, causal, valid = masks.resolve(b, node, x, shape)
    else:
        inputs, causal, valid = (_sequence_input(b, node, x, "softmax input").name,), False, None
    return b.add(node, "softmax", inputs, {"causal": causal}, _valid_param(valid))


def _softmax_before_ones(b: Any, node: Any, x: Any, dim: int, shape: tuple) -> Act:
    """A softmax over an axis followed by size-1 axes only (ConvBERT's span kernels, (batch *
    S * H, k, 1) over k) is the softmax over the last axis of the view without them."""
    ones = len(shape) - 1 - dim
    have = b.shapes[x.name] if isinstance(x, Act) else ()
    if b.sequence and isinstance(x, Act) and any(int(s) != 1 for s in shape[dim + 1:]):
        return _softmax_moved(b, node, x, dim, shape)
    if not b.sequence or not isinstance(x, Act) or len(have) <= ones \
            or have[len(have) - ones:] != (1,) * ones:
        b.fail(node, f"softmax over dim {dim} of a rank-{len(shape)} tensor; only the last (or "
                     "one followed by size-1 axes)")
    rows = lowering_seq.reshaped(b, node, x, have[:len(have) - ones], suffix=".rows")
    y = b.add(node, "softmax", (rows.name,), {"causal": False}, shape=b.shapes[rows.name],
              suffix=".last")
    return lowering_seq.reshaped(b, node, y, have)


def _softmax_moved(b: Any, node: Any, x: Act, dim: int, shape: tuple) -> Act:
    """A softmax over a per-sample axis before the last (GroupViT's grouping assignment and
    slot attention: each input token's weights over the groups or slots, ``softmax(dim=-2)``
    of (batch, slots, tokens)): the axis moved last by a ``permute`` (``<node>.moved``), the
    softmax over the last axis (``<node>.last``), the axis moved back by a second permute. The
    same integer softmax, each row one token's values over the axis."""
    axis = lowering_seq.axis_map(b, node.args[0])[dim]
    if axis is None or lowering_seq.digit(b, node.args[0])[0] == dim:
        b.fail(node, f"softmax over dim {dim} of a rank-{len(shape)} tensor, the axis that "
                     "holds the batch (it would mix samples); only over per-sample axes")
    have = b.shapes[x.name]
    perm = tuple(a for a in range(len(have)) if a != axis) + (axis,)
    back = tuple(perm.index(a) for a in range(len(have)))
    moved = b.add(node, "permute", (x.name,), {"perm": perm},
                  shape=tuple(have[a] for a in perm), suffix=".moved")
    y = b.add(node, "softmax", (moved.name,), {"causal": False}, shape=b.shapes[moved.name],
              suffix=".last")
    return b.add(node, "permute", (y.name,), {"perm": back}, shape=have)


def _valid_param(valid: np.ndarray | None) -> dict:
    """The softmax's params: its constant attention pattern, when it has one."""
    return {} if valid is None else {"valid": valid}


def matmul(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.matmul/bmm(a, b): two activations make a matmul; a constant matrix (or vector) as
    the second operand (a weight) makes a linear; any other constant operand (a left one,
    SigLIP's probe query; one per head, DeBERTa's relative positions) a ``constant`` node the
    matmul reads."""
    x, y = args[0], args[1]
    if isinstance(y, torch.Tensor) and y.dim() in (1, 2) and not isinstance(x, torch.Tensor):
        w = _np(y)
        x = _sequence_input(b, node, x, "matmul input")
        if y.dim() == 1:  # x @ v: a linear of one output row, its axis dropped (hyper-
            # connections' mix of the residual streams, ``streams @ weights``)
            dot = b.add(node, "linear", (x.name,), {}, {"weight": w[None, :],
                                                        "bias": np.zeros(1)},
                        shape=b.shapes[x.name][:-1] + (1,), suffix=".dot")
            return lowering_seq.reshaped(b, node, dot, b.per_sample(node))
        return b.add(node, "linear", (x.name,), {}, {"weight": w.T, "bias": np.zeros(w.shape[1])})
    samples_apart(b, node, node.args[:2])
    x, y = (_operand(b, node, v, i) for i, v in enumerate((x, y)))
    if isinstance(args[1], torch.Tensor) and rows_are_samples(b, node.args[0]):
        return _row_per_sample(b, node, x, y)
    return matmul_node(b, node, x, y, False, 1.0)


def rows_are_samples(b: Any, x: Any) -> bool:
    """Whether activation ``x`` holds the batch alone in its row axis (its second last): a
    sequence-first einsum's queries (Transformer-XL's 'ibnd,jnd->ijbn' against the position
    keys every sample shares: x (i, n, batch, d)), whose per-sample value has no row axis."""
    shape = tuple(int(d) for d in x.meta["val"].shape)
    p, _ = lowering_seq.digit(b, x)
    return len(shape) >= 2 and p == len(shape) - 2 and shape[p] == b.batch


def _row_per_sample(b: Any, node: Any, x: Act, y: Act) -> Act:
    """x (..., K) per sample (its rows the samples) times a constant y (..., K, N): each
    sample's one row, x as (..., 1, K) (``<node>.row``), the matmul (``<node>.rows``), the
    unit row dropped again (memory-order no-op reshapes)."""
    sx = b.shapes[x.name]
    row = lowering_seq.reshaped(b, node, x, sx[:-1] + (1, sx[-1]), suffix=".row")
    out = matmul_node(b, node, row, y, False, 1.0, suffix=".rows")
    so = b.shapes[out.name]
    return lowering_seq.reshaped(b, node, out, so[:-2] + so[-1:])


def baddbmm(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """aten.baddbmm(input, a, b, *, beta, alpha) = beta input + alpha (a @ b) (BLOOM's scores
    with ALiBi): a matmul of the two operands (alpha folded into its requantization, named
    ``<node>.bmm``; a constant operand, diffusers' cross-attention keys, a ``constant`` node as
    in ``matmul``), then the add of beta input (a constant: ``constant`` + ``add``; an
    activation: an ``add``; beta = 0: torch ignores the input)."""
    beta, alpha = _arg(args, kwargs, 3, "beta", 1), _arg(args, kwargs, 4, "alpha", 1)
    if all(isinstance(v, torch.Tensor) for v in args[1:3]):
        b.fail(node, "baddbmm of two constants; one operand must be an activation")
    samples_apart(b, node, node.args[1:3])
    x, y = (_operand(b, node, v, i) for i, v in enumerate(args[1:3]))
    product = matmul_node(b, node, x, y, False, float(alpha), suffix=".bmm")
    if beta == 0:
        return product
    return lowering_pointwise.binary("add")(b, node, [product, args[0], beta], {})


def samples_apart(b: Any, node: Any, operands: Any) -> None:
    """Refuse, in one line, a product of activations one of which holds the batch in its last
    two (matrix) axes: traced at a batch of several, the samples are rows of one matrix (a
    model that packs them into one sequence, ``x.reshape(1, batch * S, D)``), so the product
    pairs rows of one sample with another's; the graph computes each sample alone. (A trace of
    one sample, a packing tower's, qasic.quant.grid_towers, has none to mix.)"""
    acts = [a for a in operands if isinstance(a, torch.fx.Node)
            and not isinstance(b.env.get(a.name), torch.Tensor)]
    if b.batch == 1 or len(acts) < 2:  # a constant operand: _per_sample_constant's rules
        return
    rows, cols = operands[0], operands[1]  # sdpa's keys are rows: its q @ k^T transposes
    key_rows = -2 if node.target is aten.scaled_dot_product_attention.default else -1
    if all(a in acts for a in (rows, cols)) and _batch_at(b, rows, -2) \
            and _batch_at(b, cols, key_rows):
        b.fail(node, f"a product of activations across the samples: '{rows.name}' "
                     f"{tuple(rows.meta['val'].shape)} holds the batch in its rows and "
                     f"'{cols.name}' {tuple(cols.meta['val'].shape)} in its columns, so "
                     "every sample's output would depend on the other samples of its batch "
                     "(q @ k.transpose(-1, -2) of (batch, N) tensors is (batch, batch)); make "
                     "the product per sample (q.unsqueeze(-1) @ k.unsqueeze(-2): (batch, N, "
                     "N)), or evaluate one sample at a time")
    for a in acts:
        rank, (p, _) = a.meta["val"].dim(), lowering_seq.digit(b, a)
        if rank >= 2 and p >= rank - 2:
            b.fail(node, f"a product of activations whose axis {p} of "
                         f"{tuple(a.meta['val'].shape)} ('{a.name}') holds the batch: the "
                         f"{b.batch} samples are packed into one sequence, which it would mix; "
                         "give each sample its own sequence (a packing VLM tower: one image per "
                         "sample, its grid a constant of the wrapper)")


def _batch_at(b: Any, a: Any, axis: int) -> bool:
    """Whether fx value ``a``'s matrix axis ``axis`` (-2 rows, -1 columns) is the batch alone
    (one row or column per sample; packed sequences hold several)."""
    val = a.meta["val"]
    return val.dim() >= 2 and lowering_seq.digit(b, a)[0] == val.dim() + axis \
        and int(val.shape[axis]) == b.batch


def _operand(b: Any, node: Any, v: Any, i: int) -> Act:
    """Matmul operand ``i``: an activation, or a constant made a ``constant`` node of its
    per-sample value (``<node>.a`` / ``.b``)."""
    if not isinstance(v, torch.Tensor):
        return _sequence_input(b, node, v, "matmul operand")
    per = _per_sample_constant(b, node, v, right=i == 1)
    return b.add(node, "constant", (), {}, {"value": per}, shape=per.shape,
                 suffix=f".{'ab'[i]}")


def _per_sample_constant(b: Any, node: Any, c: torch.Tensor, lead: tuple | None = None,
                         right: bool = False) -> np.ndarray:
    """A constant operand's value per sample: broadcast over the product's leading axes
    (``lead``, default the output's: sdpa's is a tuple), it holds the batch where the product
    does (a constant repeated over a batch folded into the heads, (batch * H, S, K)); it must
    be the same for every sample. A ``right`` operand of a product whose rows hold the batch
    (DeepSeek-V4's grouped output projection: the tokens of every sample as the rows of each
    group's bmm) multiplies each row alone: it is the constant as it is."""
    out = tuple(int(d) for d in node.meta["val"].shape)[:-2] if lead is None else lead
    if c.dim() < 2:
        b.fail(node, f"matmul by a constant of rank {c.dim()}; only by matrices")
    full = torch.broadcast_to(c, out + tuple(c.shape[-2:]))
    p, inner = lowering_seq.digit(b, node)
    if p == len(out) and right:
        return full.detach().to(torch.float64).numpy().copy()
    if p >= len(out):
        b.fail(node, f"a constant matmul operand of shape {tuple(c.shape)} multiplying rows "
                     "that hold the batch (it would mix samples)")
    v = full.detach().to(torch.float64).reshape(
        out[:p] + (out[p] // (b.batch * inner), b.batch, inner) + full.shape[p + 1:])
    v = v.movedim(p + 1, 0).numpy()
    if not lowering_seq.same_samples(v):
        b.fail(node, f"a constant matmul operand of shape {tuple(c.shape)} that differs "
                     "between samples")
    per = lowering_seq.per_sample(b, node)[:-2]
    return v[0].reshape(per + tuple(c.shape[-2:])).copy()


def matmul_node(b: Any, node: Any, x: Act, y: Act, transpose_b: bool, alpha: float,
                suffix: str = "") -> Act:
    """A matmul FNode of x (..., S, K) and y (..., K, T) (transpose_b: (..., T, K)); a permute
    swapping y's last two axes folds into transpose_b."""
    prev = b.nodes.get(y.name)
    rank = len(b.shapes[y.name])
    swap = tuple(range(rank - 2)) + (rank - 1, rank - 2)
    if prev is not None and prev.op == "permute" and tuple(prev.attrs["perm"]) == swap:
        y, transpose_b = Act(prev.inputs[0]), not transpose_b
    sx, sy = b.shapes[x.name], b.shapes[y.name]
    k_y, t = (sy[-1], sy[-2]) if transpose_b else (sy[-2], sy[-1])
    if len(sx) >= 2 and len(sy) >= 2 and sx[:-2] != sy[:-2] and sx[-1] == k_y:
        if math.prod(sy[:-2]) == 1 and len(sy) <= len(sx):  # one matrix for all heads
            return _shared_matrix(b, node, x, y, transpose_b, alpha, suffix)
        x, y = _broadcast(b, node, x, y, suffix)
        sx, sy = b.shapes[x.name], b.shapes[y.name]
    if len(sx) < 2 or sx[:-2] != sy[:-2] or sx[-1] != k_y:
        b.fail(node, f"matmul of per-sample shapes {sx} and {sy}"
                     f"{' (b transposed)' if transpose_b else ''}; only equal leading (head) "
                     "axes and matching inner sizes")
    return b.add(node, "matmul", (x.name, y.name),
                 {"transpose_b": transpose_b, "alpha": float(alpha)},
                 shape=sx[:-1] + (t,), suffix=suffix)


def _shared_matrix(b: Any, node: Any, x: Act, y: Act, transpose_b: bool, alpha: float,
                   suffix: str) -> Act:
    """x (..., S, K) times one matrix y (1, ..., K, T) broadcast over x's leading axes (DeepSeek
    sparse attention's indexer: every index head's queries times the one key): the leading
    axes merged with the rows, x (L S, K) @ y (K, T), reshaped back (memory-order no-ops)."""
    sx, sy = b.shapes[x.name], b.shapes[y.name]
    n = math.prod(sx[:-1])
    rows = lowering_seq.reshaped(b, node, x, (n, sx[-1]), suffix=suffix + ".rows_x")
    mat = lowering_seq.reshaped(b, node, y, sy[-2:], suffix=suffix + ".matrix_y")
    out = matmul_node(b, node, rows, mat, transpose_b, alpha, suffix + ".merged")
    return lowering_seq.reshaped(b, node, out, sx[:-1] + b.shapes[out.name][-1:], suffix=suffix)


def _broadcast(b: Any, node: Any, x: Act, y: Act, suffix: str) -> tuple[Act, Act]:
    """x and y with torch's broadcast of their leading axes made explicit: a missing axis is
    one of size 1, and an axis of size 1 against n is repeated n times (a selection by a column
    of ones, ``lowering_seq.rows``); operands that do not broadcast come back as they are."""
    sx, sy = b.shapes[x.name], b.shapes[y.name]
    rank = max(len(sx), len(sy))
    lx, ly = ((1,) * (rank - len(s)) + s[:-2] for s in (sx, sy))
    if any(p != q and 1 not in (p, q) for p, q in zip(lx, ly)):
        return x, y
    out = []
    for a, lead, tag in ((x, lx, "x"), (y, ly, "y")):
        a = lowering_seq.reshaped(b, node, a, lead + b.shapes[a.name][-2:],
                                  suffix=f"{suffix}.rank_{tag}")
        for axis, (n, full) in enumerate(zip(lead, (max(p, q) for p, q in zip(lx, ly)))):
            if n != full:
                shape = b.shapes[a.name]
                a = lowering_seq.rows(b, node, a, np.ones((full, 1)), axis,
                                      suffix=f"{suffix}.{tag}{axis}",
                                      out_shape=shape[:axis] + (full,) + shape[axis + 1:])
        out.append(a)
    return out[0], out[1]


def sdpa(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.scaled_dot_product_attention(q, k, v, attn_mask, dropout_p, is_causal, *, scale,
    enable_gqa): matmul -> softmax -> matmul. Constant keys or values (cross-attention to a
    fixed context, a diffusion U-Net's text conditioning) or queries (MaskFormer's learned
    queries cross-attending to the image) are ``constant`` nodes ``<node>.k``, ``<node>.v``,
    ``<node>.q`` the matmuls read."""
    gqa = bool(kwargs.get("enable_gqa"))
    if isinstance(args[0], torch.Tensor) and all(isinstance(a, torch.Tensor) for a in args[1:3]):
        b.fail(node, "attention of constant queries, keys and values; one must be an activation")
    samples_apart(b, node, node.args[:3])
    q = _key_or_value(b, node, args[0], "q", False)  # constant queries: MaskFormer's learned
    k, v = (_key_or_value(b, node, a, tag, gqa) for a, tag in ((args[1], "k"), (args[2], "v")))
    mask = _arg(args, kwargs, 3, "attn_mask", None)
    if _arg(args, kwargs, 4, "dropout_p", 0.0):
        b.fail(node, "attention dropout (call model.eval())")
    causal = bool(_arg(args, kwargs, 5, "is_causal", False))
    dh = b.shapes[q.name][-1]
    scale = kwargs.get("scale")
    scale = 1.0 / math.sqrt(dh) if scale is None else float(scale)
    sq, sk = b.shapes[q.name], b.shapes[k.name]
    if sq[:-2] != sk[:-2] and gqa and len(sq) == len(sk) == 3 \
            and sk[0] and sq[0] % sk[0] == 0:
        # grouped-query attention: query head h reads K/V head h // (Hq / Hkv)
        pick = np.eye(sk[0])[np.arange(sq[0]) // (sq[0] // sk[0])]
        k, v = (lowering_seq.rows(b, node, a, pick, 0, suffix=f".{tag}_heads",
                                  out_shape=(sq[0],) + b.shapes[a.name][1:])
                for a, tag in ((k, "k"), (v, "v")))
    if b.shapes[q.name][:-2] != b.shapes[k.name][:-2]:
        b.fail(node, f"attention of {b.shapes[q.name]} queries on {b.shapes[k.name]} keys; "
                     "only equal head counts, or a multiple with enable_gqa")
    scores = matmul_node(b, node, q, k, True, scale, suffix=".scores")
    qt, kt = node.args[0].meta["val"].shape, node.args[1].meta["val"].shape
    shape = tuple(int(d) for d in qt[:-1]) + (int(kt[-2]),)
    if isinstance(mask, masks.KeyMask):  # T5's relative positions plus the padding mask
        bias, mask = masks.bias_part(b, node, mask)
        if bias is not None:
            scores, _ = _attention_bias(b, node, scores, bias, shape)
    if isinstance(mask, torch.Tensor) and mask.dtype != torch.bool:
        scores, mask = _attention_bias(b, node, scores, mask, shape)
    if isinstance(mask, (Act, *lowering_pointwise.SYMBOLIC)):
        scores, mask = _activation_bias(b, node, scores, mask), None
    if isinstance(mask, masks.Masked):  # a bias of the activations, masked (Doge's)
        m = masks.Masked(_activation_bias(b, node, scores, mask.scores),
                         torch.broadcast_to(mask.allowed, shape), mask.key)
    else:
        m = masks.Masked(scores, *masks.allowed(b, node, mask, shape, "sdpa"))
    if causal:
        s, t = shape[-2:]
        if s != t:
            b.fail(node, f"is_causal with {s} queries and {t} keys (torch aligns the triangle "
                         "top-left); pass an explicit mask")
        m = masks.merge(b, node, m, torch.ones(s, t, dtype=torch.bool).tril().expand(shape),
                        None)
    inputs, causal, valid = masks.resolve(b, node, m, shape)
    p = b.add(node, "softmax", inputs, {"causal": causal}, _valid_param(valid),
              shape=b.shapes[scores.name], suffix=".softmax")
    return matmul_node(b, node, p, v, False, 1.0)


def _key_or_value(b: Any, node: Any, a: Any, tag: str, gqa: bool) -> Act:
    """An attention query, key or value: an activation, or a constant (the same for every
    sample) made a ``constant`` node of its per-sample value, broadcast to the queries' leading
    axes (with enable_gqa, each K/V head repeated for its query heads)."""
    if not isinstance(a, torch.Tensor):
        return _act(b, node, a, "attention input")
    qs = tuple(int(d) for d in node.args[0].meta["val"].shape)
    if a.dim() != len(qs):
        b.fail(node, f"attention {tag} of rank {a.dim()} for queries of rank {len(qs)}; only "
                     "equal ranks")
    if gqa and a.dim() >= 3 and a.shape[-3] and qs[-3] % a.shape[-3] == 0:
        a = a.repeat_interleave(qs[-3] // a.shape[-3], dim=-3)
    per = _per_sample_constant(b, node, a, qs[:-2])
    return b.add(node, "constant", (), {}, {"value": per}, shape=per.shape, suffix=f".{tag}")


def _attention_bias(b: Any, node: Any, scores: Act, mask: torch.Tensor, shape: tuple
                    ) -> tuple[Act, torch.Tensor]:
    """A float attn_mask carrying a bias (T5's relative positions, ALiBi): the scores plus a
    ``constant`` of the bias (the same for every sample), and the mask part left."""
    v = torch.broadcast_to(mask, shape)
    keep = v > masks.NEG
    bias = torch.where(keep, v, torch.zeros_like(v))
    if not bool((bias != 0).any()):
        return scores, mask
    per = bias.detach().to(torch.float64).numpy().reshape(b.batch, *b.shapes[scores.name])
    if not (per == per[:1]).all():
        b.fail(node, "an attention bias that differs between samples")
    const = b.add(node, "constant", (), {}, {"value": per[0].copy()}, shape=per.shape[1:],
                  suffix=".bias")
    out = b.add(node, "add", (scores.name, const.name), shape=per.shape[1:], suffix=".biased")
    return out, torch.where(keep, torch.zeros_like(v), v)


def _activation_bias(b: Any, node: Any, scores: Act, bias: Any) -> Act:
    """A float attn_mask computed from the activations (SAM's decomposed relative positions,
    query @ a constant table per row and column): an ``add`` to the scores, ``<node>.biased``;
    it must have the scores' per-sample shape (torch broadcasts it; we do not)."""
    bias = materialize(b, bias)
    if b.shapes[bias.name] != b.shapes[scores.name]:
        b.fail(node, f"an attention bias of per-sample shape {b.shapes[bias.name]} for scores "
                     f"of {b.shapes[scores.name]}; only a bias of the scores' shape")
    return b.add(node, "add", (scores.name, bias.name), shape=b.shapes[scores.name],
                 suffix=".biased")


def sdpa_tuple(b: Any, node: Any, args: list, kwargs: dict) -> tuple:
    """aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, dropout_p, is_causal, *,
    attn_mask, scale) -> (out, logsumexp)."""
    kw = {"attn_mask": kwargs.get("attn_mask"), "is_causal": _arg(args, kwargs, 4, "is_causal",
                                                                    False),
          "dropout_p": _arg(args, kwargs, 3, "dropout_p", 0.0), "scale": kwargs.get("scale")}
    return (sdpa(b, node, list(args[:3]), kw), None)


def compare(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """ids != pad (or ==, <, ...; of the ids or of a slice of them: an encoder-decoder's
    source): the bit of a padding mask; of another activation and a scalar, a pointwise op
    (``lowering_pointwise.compare``)."""
    cmp = lowering_pointwise.compare(b, node, args, kwargs)
    if cmp is not None:
        return cmp
    x = materialize(b, args[0])
    if isinstance(x, IdSlice):  # an encoder-decoder's source padding mask
        return masks.from_ids(b, node, x, args[1])
    if isinstance(x, Act) and not b.is_ids(x) and isinstance(args[1], torch.Tensor) \
            and args[1].numel() > 1:
        b.fail(node, f"a comparison of an activation with a {tuple(args[1].shape)} tensor of "
                     "thresholds (efficient-kan's B-spline bases: (x >= grid[:, :-1]) & (x < "
                     "grid[:, 1:])); an activation compares only with a scalar (a 0/1 table "
                     "of it), with a table along a new last axis that is the same for every "
                     "channel (x.unsqueeze(-1) >= grid: one table per column, qasic.quant."
                     "column_tables), a tensor only with the token ids (a padding mask)")
    return masks.from_ids(b, node, _act(b, node, x, "comparison input"), args[1])


def where(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """where(comparison of an activation, ...): a pointwise op (``lowering_pointwise.where``);
    else a mask (``masks.where``)."""
    pick = lowering_pointwise.where(b, node, args, kwargs)
    if pick is not None:
        return pick
    return masks.where(b, node, [materialize(b, a) for a in args],
                       {k: materialize(b, v) for k, v in kwargs.items()})


def data_dependent(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """topk / sort / argsort / argmax: which elements come out depends on the values (a
    mixture of experts' top-k routing of each token to its experts); a compiled program's
    data movement is fixed, so it is refused."""
    name = node.target.__name__.split(".")[0]
    if name == "argmax" and args and isinstance(args[0], Act) and masks._mask_input(b, args[0]):
        # the first token a runtime attention mask keeps (sentence-transformers' CLS pooling:
        # ``attention_mask.int().argmax(1)``): the argmax of its bits (qasic.quant.lastpool)
        key = masks.from_ids(b, node, args[0], 0, aten.ne.Scalar, torch.int64)
        return lastpool.argmax(b, node, key, args, kwargs)
    b.fail(node, f"aten.{name} selects by value: indices that gather or move rows (a k-NN "
                 "graph's neighbours, DGCNN's) are a data-dependent movement a compiled "
                 "program cannot make; its rank runs as a 0/1 mask only (experts' routing, "
                 "a one-hot or top-k mask scattered from the indices, a codebook lookup at "
                 "an argmax, a max unpooling: `qasic ops`); fixed neighbours run as constant "
                 "indices (points[batch_indices, idx], PointNet++'s index_points)")


def whole_extreme(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """torch.max(x) / torch.min(x) without a dim: one value of every element, the batch axis
    included, so that the samples of a batch would change each other's outputs; refused."""
    name = node.target.__name__.split(".")[0]
    b.fail(node, f"torch.{name}(x) without a dim reduces every element, the batch axis "
                 "included (the Nystromformer's iterative_inv init 1 / torch.max(K.sum(-2))): "
                 "each sample's output would depend on the others in its batch; reduce over "
                 f"per-sample axes (torch.{name}(x, dim=-1), torch.a{name}(x, dim=(-2, -1)))")


def fill_(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """An in-place fill of a view of an activation (ToMe's ``scores[..., 0, :] = -math.inf``),
    refused naming the functional form that runs."""
    b.fail(node, "an in-place fill of a slice of an activation (x[..., i, :] = value, as "
                 "ToMe's scores[..., 0, :] = -math.inf); write it as x.masked_fill(mask, "
                 "value) with a constant boolean mask of x's shape")


def cdist(b: Any, node: Any, args: list, kwargs: dict) -> None:
    """aten.cdist read other than by the codebook lookup at its argmin (which runs:
    qasic.quant.cdist_scores): the distances themselves, refused naming the forms that run."""
    b.fail(node, "aten.cdist: Euclidean distances as values (a square root of sums of squares "
                 "over the codebook); only an embedding (codebook lookup) at their argmin runs "
                 "(diffusers' VQModel: argmin(cdist(z, E), dim=1) then the embedding), p = 2")


def topk_mask(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """qasic::topk_mask(scores, k) (qasic.quant.routers): the 0/1 mask of each row's k largest."""
    x = _sequence_input(b, node, args[0], "top-k scores")
    k, n = int(args[1]), b.shapes[x.name][-1]
    if not 1 <= k <= n:
        b.fail(node, f"top-{k} of {n} scores; k must be 1..{n}")
    return b.add(node, "topk_mask", (x.name,), {"k": k})


def masked_softmax(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """qasic::masked_softmax(x, mask) (qasic.quant.routers): a softmax whose second input masks
    each row's keys (x's shape)."""
    x = _sequence_input(b, node, args[0], "softmax input")
    m = _act(b, node, args[1], "softmax mask")
    if b.shapes[m.name] != b.shapes[x.name]:
        b.fail(node, f"a softmax mask of shape {b.shapes[m.name]} for scores of shape "
                     f"{b.shapes[x.name]}; a row mask must have the scores' shape")
    return b.add(node, "softmax", (x.name, m.name), {"causal": False})


GRID_SAMPLERS = (aten.grid_sampler.default, aten.grid_sampler_2d.default)
DATA_DEPENDENT = (aten.topk.default, aten.sort.default, aten.argsort.default,
                  aten.argmax.default, aten.argmin.default)


def _table() -> dict:
    t = dict(lowering_seq.HANDLERS)
    t.update(lowering_pointwise.HANDLERS)
    t.update(lowering_reduce.HANDLERS)
    t.update(lowering_gather.HANDLERS)
    t.update(lowering_seqpool.HANDLERS)
    t.update({
        aten.embedding.default: embedding,
        aten.layer_norm.default: layer_norm,
        aten.native_layer_norm.default: native_layer_norm,
        aten.rms_norm.default: rms_norm,
        aten.softmax.int: softmax,
        aten._softmax.default: softmax,
        aten._safe_softmax.default: softmax,
        aten.matmul.default: matmul,
        aten.bmm.default: matmul,
        aten.baddbmm.default: baddbmm,
        aten.mm.default: matmul,  # image models keep qasic.quant.lowering's (a weight only)
        aten.scaled_dot_product_attention.default: sdpa,
        aten._scaled_dot_product_flash_attention_for_cpu.default: sdpa_tuple,
        **dict.fromkeys((aten.logical_and.default, aten.logical_or.default,
                         aten.logical_xor.default, aten.logical_not.default), masks.logical),
        aten.masked_fill.Scalar: row_masks.filled(masks.masked_fill),
        aten.masked_fill.Tensor: row_masks.filled(masks.masked_fill),
        aten.masked_fill_.Scalar: row_masks.filled(masks.masked_fill_),
        aten.masked_fill_.Tensor: row_masks.filled(masks.masked_fill_),
        aten.where.self: where,
        aten.where.ScalarOther: where,
        aten.where.ScalarSelf: where,
        aten.where.Scalar: where,  # where(cond, 1.0, 0.0): a 0/1 indicator
    })
    t.update(lowering_ssm.HANDLERS)  # masked_fill by 0, exp of -inf masked values, cumsum
    t.update(dict.fromkeys(DATA_DEPENDENT, data_dependent))
    t[aten.argmax.default] = largest_id.handled(data_dependent)  # of the ids: the largest id
    t[aten.cdist.default] = cdist
    t[aten.max.default] = t[aten.min.default] = whole_extreme
    t[aten.fill_.Scalar] = t[aten.fill_.Tensor] = fill_
    t.update(dict.fromkeys(GRID_SAMPLERS, grid_sample.sample))
    t[torch.ops.qasic.topk_mask.default] = topk_mask
    t[torch.ops.qasic.masked_softmax.default] = masked_softmax
    t[torch.ops.qasic.topk_onehot.default] = topk_select.onehot
    t[aten.copy_.default] = inplace.copy_
    t.update({v: inplace.view_(t) for v in inplace.VIEWS})
    for view in (aten.view.default, aten.reshape.default, aten._unsafe_view.default):
        t[view] = relshift.viewed(masks.viewed(t[view]))
    for name in ("ne", "eq", "gt", "ge", "lt", "le"):
        t[getattr(aten, name).Scalar] = compare
        t[getattr(aten, name).Tensor] = compare
    return t


HANDLERS = _table()
# ops that accept symbolic pointwise values (the others get them as lut nodes first)
POINTWISE_AWARE = set(lowering_pointwise.HANDLERS) | set(lowering_reduce.HANDLERS) | {
    t for t, h in lowering_seq.HANDLERS.items() if h is lowering_seq.identity} | {
    t for t, h in HANDLERS.items() if h in (compare, where)} | {aten.embedding.default}
# ops new to sequence models, which image models may use on vectors
NEW_OPS = {aten.embedding.default, aten.layer_norm.default, aten.native_layer_norm.default,
           aten.rms_norm.default, aten.softmax.int, aten._softmax.default,
           aten._safe_softmax.default, aten.matmul.default, aten.bmm.default,
           aten.baddbmm.default,
           aten.scaled_dot_product_attention.default,
           aten._scaled_dot_product_flash_attention_for_cpu.default, *DATA_DEPENDENT,
           aten.cdist.default, aten.max.default, aten.min.default, aten.fill_.Scalar,
           aten.fill_.Tensor, *GRID_SAMPLERS,
           *(getattr(getattr(aten, c), o) for c in ("ne", "eq", "gt", "ge", "lt", "le")
             for o in ("Scalar", "Tensor"))}
