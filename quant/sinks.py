"""Attention sinks at capture: a learned logit per head appended to each row of the scores
before the softmax, its probability dropped after (GPT-OSS).

HF writes it as

    combined = cat([scores (+ mask), sinks.reshape(1, H, 1, 1).expand(N, H, S, 1)], -1)
    combined = combined - combined.max(-1, keepdim=True).values   # (overflow guard)
    probs = softmax(combined, -1)[..., :-1]

Capture follows it symbolically: the cat is ``Sunk`` (the scores, masked or not, and the
sinks (H,)), its max ``SunkMax``, the subtraction of that max the same ``Sunk`` (a softmax does
not change when a row is shifted by a constant), its softmax one ``softmax`` node over the
scores alone with the float ``sink`` parameter (its probabilities ``SinkProbs``) and the slice
that drops the sink's column those probabilities. The integer softmax treats each sink as one
more key of the row that has no output (``intops.softmax_rows``; its code is the logit in the
scores' scale, ``intops.sink_codes``). Any other use of these values, or a sink that is not a
constant per head, is refused in one line. The same guard on masked scores without sinks
(MiMo-V2-Flash's full-attention layers) is the masked scores again: only a softmax reads them
(``masks.Masked``), and it does not change when a row is shifted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from qasic.quant import masks
from qasic.quant.lowering import Act, _arg


@dataclass(frozen=True, eq=False)
class Sunk:
    """Scores (an activation or Masked) with a sink column appended: ``sink`` (H,) floats."""

    scores: Any
    sink: np.ndarray


@dataclass(frozen=True, eq=False)
class SunkMax:
    """The row maxima of ``of``, Sunk or masked scores (only subtracted from it)."""

    of: Any


@dataclass(frozen=True, eq=False)
class SinkProbs:
    """A softmax of Sunk scores: ``probs`` over the scores' keys, plus the sink's column."""

    probs: Act
    keys: int


@dataclass(frozen=True, eq=False)
class Lse:
    """logsumexp over the last axis of the scores made by fx node ``of`` (Act or Masked)."""

    of: Any
    sink: np.ndarray | None = None  # after a constant per head is subtracted
    scale: bool = False             # after the sigmoid: the probabilities' sink scale
    rank: int = 0                   # its torch rank (one more after unsqueeze(-1))
    keepdim: bool = False           # a row of ones kept: only subtracted from the scores


@dataclass(frozen=True, eq=False)
class LogProbs:
    """scores - logsumexp(scores, -1, keepdim=True), the log-softmax of the scores (Reformer's
    softmax): only its exp, the softmax of ``scores`` (fx node ``of``), reads it."""

    scores: Any
    of: Any


VALUES = (Sunk, SunkMax, SinkProbs, Lse, LogProbs)
_WHAT = ("the sink column is only appended to attention scores, its rows' max subtracted, "
         "the softmax taken and its column dropped")


def appended(b: Any, node: Any, args: list, kwargs: dict) -> Sunk:
    """aten.cat([scores, sinks], -1): scores (masked or not) and a constant last column, the
    same for every sample and row of a head."""
    rank = node.meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    parts = list(args[0])
    if dim == rank - 1 and len(parts) == 2 and isinstance(parts[0], masks.Masked) \
            and isinstance(parts[1], Act) and parts[0].key is None \
            and int(node.args[0][1].meta["val"].shape[-1]) == 1:
        return computed(b, node, parts[0], parts[1])
    if dim != rank - 1 or len(parts) != 2 or not isinstance(parts[1], torch.Tensor) \
            or not isinstance(parts[0], (Act, masks.Masked)) or parts[1].shape[-1] != 1:
        b.fail(node, "a cat of masked attention scores with another tensor other than a "
                     "constant last column (an attention sink: GPT-OSS's extra logit per head "
                     "in each softmax row); a softmax reads the scores alone")
    col = parts[1].detach().to(torch.float64)
    heads = col.reshape(col.shape[0], -1, col.shape[-2]) if rank >= 3 else None
    if heads is None or not bool((heads == heads[:1, :, :1]).all()):
        b.fail(node, "an attention sink column that varies over the samples or the rows of a "
                     "head; only a constant logit per head")
    return Sunk(parts[0], heads[0, :, 0].numpy().copy())


def computed(b: Any, node: Any, scores: masks.Masked, sink: Act) -> masks.Masked:
    """cat([masked scores, sink logits], -1) with the sink an activation, one logit per head
    and query (Inkling2's ``sink_proj(x)``: a linear of the token's hidden state): the scores
    and that column are one ``concat`` of T + 1 keys, its column always allowed (a constant
    pattern the softmax's ``valid`` holds); the slice that drops the column after the softmax
    is a slice of its probabilities (``lowering_seq``)."""
    from qasic.quant.lowering_seq import cat
    both = cat(b, node, [[scores.scores, sink], -1], {})
    allowed = scores.allowed.to(torch.bool)
    ones = torch.ones(allowed.shape[:-1] + (1,), dtype=torch.bool)
    return masks.Masked(both, torch.cat([allowed, ones], -1), None)


def row_max(b: Any, node: Any, x: Any) -> tuple:
    """aten.max.dim(x, -1, keepdim=True) / amax of Sunk or Masked scores: the (values, indices)
    it subtracts."""
    rank = node.args[0].meta["val"].dim()
    dims = _arg(node.args, node.kwargs, 1, "dim", -1)
    dims = [dims] if isinstance(dims, int) else list(dims)
    if [d % rank for d in dims] != [rank - 1]:
        b.fail(node, f"a max of attention scores with sinks over dims {dims}; {_WHAT}")
    out = SunkMax(x)
    return (out, None) if node.target is torch.ops.aten.max.dim else out


def shifted(b: Any, node: Any, op: str, x: Any, y: Any) -> Sunk:
    """Sunk (or Masked) scores minus their own row maxima: the same scores for the softmax that
    reads them."""
    if op != "sub" or not isinstance(x, (Sunk, masks.Masked)) or not isinstance(y, SunkMax) \
            or y.of is not x:
        b.fail(node, f"{op} of attention scores with sinks; {_WHAT}")
    return x


def softmax(b: Any, node: Any, x: Sunk, resolve: Any, valid_param: Any) -> SinkProbs:
    """The softmax over the scores' keys with the float ``sink`` parameter."""
    shape = tuple(node.args[0].meta["val"].shape)
    scores_shape = shape[:-1] + (shape[-1] - 1,)
    if isinstance(x.scores, masks.Masked):
        inputs, causal, valid = resolve(b, node, x.scores, scores_shape)
        act = x.scores.scores
    else:
        inputs, causal, valid, act = (x.scores.name,), False, None, x.scores
    per = b.shapes[act.name]
    heads = int(np.prod(per[:-2])) if len(per) > 2 else 1
    if heads != len(x.sink):
        b.fail(node, f"{len(x.sink)} attention sinks for scores of per-sample shape {per}; "
                     "one per head")
    y = b.add(node, "softmax", inputs, {"causal": causal}, {**valid_param(valid),
                                                            "sink": x.sink},
              shape=per)
    return SinkProbs(y, per[-1])


def dropped(b: Any, node: Any, args: list, kwargs: dict) -> Act:
    """aten.slice(SinkProbs, -1, 0, keys): the probabilities without the sink's column."""
    p = args[0]
    rank = node.args[0].meta["val"].dim()
    dim = int(_arg(args, kwargs, 1, "dim", 0)) % rank
    start, end = _arg(args, kwargs, 2, "start", None), _arg(args, kwargs, 3, "end", None)
    step = int(_arg(args, kwargs, 4, "step", 1))
    sel = range(*slice(start, end, step).indices(p.keys + 1))
    if dim != rank - 1 or sel != range(p.keys):
        b.fail(node, f"a slice {sel} along dim {dim} of a softmax with sinks; {_WHAT}")
    return p.probs


def logsumexp(b: Any, node: Any, args: list, kwargs: dict) -> Lse:
    """aten.logsumexp(scores, [-1]) of attention scores: followed symbolically (above); with
    keepdim, only subtracted from the same scores (``LogProbs``)."""
    rank = node.args[0].meta["val"].dim()
    dims = _arg(args, kwargs, 1, "dim", [-1])
    dims = [dims] if isinstance(dims, int) else list(dims)
    if not isinstance(args[0], (Act, masks.Masked)) or [d % rank for d in dims] != [rank - 1]:
        b.fail(node, f"logsumexp over dims {dims}; only of attention scores over their last "
                     f"axis, as a sink's scale ({_LSE}) or subtracted from them ({_LOG})")
    keep = bool(_arg(args, kwargs, 2, "keepdim", False))
    return Lse(node.args[0], rank=rank if keep else rank - 1, keepdim=keep)


def _log_probs(b: Any, node: Any, args: list) -> LogProbs:
    """scores - logsumexp(scores, -1, keepdim=True): the log-softmax of the scores."""
    lse = args[1]
    if node.target not in (aten.sub.Tensor, aten.subtract.Tensor) or len(args) != 2 \
            or node.args[0] is not lse.of or _arg(args, {}, 2, "alpha", 1) != 1:
        b.fail(node, f"op {node.target} with a logsumexp kept as a row of ones; {_LOG}")
    return LogProbs(args[0], lse.of)


def _softmax_of(b: Any, node: Any, x: LogProbs) -> Act:
    """exp(LogProbs): the softmax of its scores over the last axis (an integer ``softmax``)."""
    if node.target is not aten.exp.default:
        b.fail(node, f"op {node.target} on a log-softmax of attention scores; {_LOG}")
    from qasic.quant.lowering_transformer import _sequence_input, _valid_param
    shape = tuple(x.of.meta["val"].shape)
    if isinstance(x.scores, masks.Masked):
        inputs, causal, valid = masks.resolve(b, node, x.scores, shape)
    else:
        inputs = (_sequence_input(b, node, x.scores, "softmax input").name,)
        causal, valid = False, None
    return b.add(node, "softmax", inputs, {"causal": causal}, _valid_param(valid))


def _lse_op(b: Any, node: Any, args: list) -> Lse:
    """sub of a constant per head, sigmoid, unsqueeze(-1) and same-dtype casts of an Lse."""
    t, x = node.target, args[0]
    if len(args) > 1 and isinstance(args[1], Lse) and args[1].keepdim:
        return _log_probs(b, node, args)
    if isinstance(x, Lse) and x.keepdim:
        b.fail(node, f"op {t} on a logsumexp kept as a row of ones; {_LOG}")
    if t in (aten.mul.Tensor, aten.multiply.Tensor) and len(args) == 2:
        return scaled(b, node, *((args[1], x) if isinstance(x, Lse) else args))
    if not isinstance(x, Lse):
        b.fail(node, f"op {t} with a logsumexp of attention scores as a later operand; {_LSE}")
    if t in _CASTS and node.meta["val"].dtype == node.args[0].meta["val"].dtype:
        return x
    if t in (aten.sub.Tensor, aten.subtract.Tensor) and x.sink is None and not x.scale \
            and isinstance(args[1], torch.Tensor) and args[1].dim() <= x.rank:
        heads = node.args[0].meta["val"].shape[1] if x.rank == 3 else 0
        sink = torch.broadcast_to(args[1].detach().to(torch.float64), (1, heads, 1)) \
            if heads and args[1].dim() == 3 and args[1].shape[0] == args[1].shape[2] == 1 \
            else None
        if sink is None:
            b.fail(node, f"logsumexp of scores minus a {tuple(args[1].shape)} tensor; only "
                         f"minus a constant per head (1, H, 1) ({_LSE})")
        return replace(x, sink=sink[0, :, 0].numpy().copy())
    if t is aten.sigmoid.default and x.sink is not None and not x.scale:
        return replace(x, scale=True)
    if t is aten.unsqueeze.default and x.scale and int(args[1]) % (x.rank + 1) == x.rank:
        return replace(x, rank=x.rank + 1)
    b.fail(node, f"op {t} on a logsumexp of attention scores; {_LSE}")


def scaled(b: Any, node: Any, out: Any, scale: Any) -> Act:
    """attention output (softmax(scores) @ v) times its sinks' scale: the softmax node gets the
    sinks, the output is the matmul's as it is."""
    mm = b.nodes.get(out.name) if isinstance(out, Act) else None
    sm = b.nodes.get(mm.inputs[0]) if mm is not None and mm.op == "matmul" else None
    if not isinstance(scale, Lse) or not scale.scale or scale.rank != node.meta["val"].dim() \
            or sm is None or sm.op != "softmax" or "sink" in sm.params \
            or b.origin[sm.name].args[0] is not scale.of \
            or not b.sole_user(Act(sm.name), b.origin[mm.name]) or not b.sole_user(out, node):
        b.fail(node, f"a product with a sink's scale of another tensor than the attention "
                     f"output it scales; {_LSE}")
    per = b.shapes[sm.name]
    if (int(np.prod(per[:-2])) if len(per) > 2 else 1) != len(scale.sink):
        b.fail(node, f"{len(scale.sink)} attention sinks for scores of per-sample shape {per}; "
                     "one per head")
    b.replace(replace(sm, params={**sm.params, "sink": scale.sink}))
    return out


aten = torch.ops.aten
_SOFTMAX = (aten.softmax.int, aten._softmax.default, aten._safe_softmax.default)
_CASTS = (aten.to.dtype, aten._to_copy.default, aten.to.dtype_layout, aten.clone.default,
          aten.contiguous.default, aten.alias.default)
_LSE = ("a learned sink per head read as sigmoid(logsumexp(scores) - sink) and multiplied into "
        "softmax(scores) @ v, GraniteSWA's")
_LOG = ("the log-softmax scores - logsumexp(scores, -1, keepdim=True), only read by its exp "
        "(Reformer's softmax)")
HANDLERS = {aten.logsumexp.default: logsumexp}


def apply(b: Any, node: Any, args: list, kwargs: dict) -> Any:
    """An op reading a Sunk, SunkMax or SinkProbs (the module docstring)."""
    t, x = node.target, args[0]
    if t is aten._assert_tensor_metadata.default:
        return None
    if any(isinstance(a, Lse) for a in args):
        return _lse_op(b, node, args)
    if isinstance(x, LogProbs):
        return _softmax_of(b, node, x)
    if t in (aten.max.dim, aten.amax.default) and isinstance(x, Sunk):
        return row_max(b, node, x)
    if t in (aten.sub.Tensor, aten.subtract.Tensor):
        return shifted(b, node, "sub", x, args[1])
    if t in _SOFTMAX and isinstance(x, Sunk):
        rank = node.args[0].meta["val"].dim()
        if int(args[1]) % rank != rank - 1:
            b.fail(node, f"a softmax of attention scores with sinks over dim {args[1]}; {_WHAT}")
        from qasic.quant.lowering_transformer import _valid_param
        return softmax(b, node, x, masks.resolve, _valid_param)
    if t is aten.slice.Tensor and isinstance(x, SinkProbs):
        return dropped(b, node, args, kwargs)
    if t in (aten.detach.default, aten.alias.default) and isinstance(x, SunkMax):
        return x  # the guard's max detached (memory-efficient attention's): the same values
    b.fail(node, f"op {t} on {_what(x)}")


def _what(x: Any) -> str:
    """What the refused op read: scores with sinks, masked scores, or their row max."""
    of = x.of if isinstance(x, SunkMax) else x
    if not isinstance(of, masks.Masked):
        return f"attention scores with sinks; {_WHAT}"
    if isinstance(x, SunkMax):
        return ("the row max of masked attention scores, read other than subtracted from them "
                "(chunked attention combining its key chunks' maxima: memory-efficient "
                "attention's); only s - s.amax(-1, keepdim=True) before the softmax or exp")
    return ("masked attention scores; only a softmax, or the exp of the scores shifted by "
            "their row max, reads them")
