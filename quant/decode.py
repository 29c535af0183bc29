"""Generation graphs: a causal language model's QGraph cut into a prefill and a decode step that
share KV caches (persistent state tensors).

The model's QGraph ``full`` runs C tokens (its positions; input ids (C,)). Its *cache tensors*
are the sequence tensors (C, D) that reach a matmul's second operand (the keys and values of
attention) through head reshapes and permutes (and, before they are token-major, tables of each
value and concatenations: MiniCPM3's keys are two caches concatenated).

    prefill_graph(full, P)  the same model on P <= C prompt tokens; after each cache tensor a
                            ``cache_write`` stores its P rows into the state tensor
                            ``cache.<name>`` (C, D) at rows 0..P-1
    decode_graph(full)      one new token at a runtime position p: the input is the step
                            (token id, p) as two int32 ids; the token's embedding and its
                            position embedding are gathered (the position table is the full
                            graph's constant); each cache tensor's new row is written into its
                            state at row p (``cache_write``: a SCATTER by p), and the attention
                            reads the whole state (C keys) with the keys after p masked: a
                            causal softmax becomes a masked one whose key mask is row p of the
                            lower-triangular table, gathered by p; a softmax not over an
                            attention's keys (``key_scores``: a mixture of experts' routing
                            softmax over its experts, with its top-k row mask) and the
                            ``topk_mask`` run on the step's token alone, like an MLP

Rotary position embeddings and grouped-query heads (the Llama family) need two more things:
    token_major(full)       the same graph with every head permute (one that keeps the last axis)
                            moved below the elementwise ops and linears that read it, so that
                            RoPE runs on (tokens, heads, d) tensors and the roped keys are a
                            token-major cache (exact: a permute only moves codes)
    constants over the positions (a RoPE table (C, heads, d), a position table (C, D), a head
    selection over the tokens (C, 2, 4) as a matmul's batch: DiffLlama's) are read where an op
    uses them: their first P rows in the prefill, row p (a gather by p, or row 0 of a constant
    that is the same at every position) in a decode step; a cache may be (C, heads, d)
    (stored as (C, heads * d) rows), and the ops between a cache and the attention that reads
    it (head views, the grouped-query head repeat: a matmul by a constant 0/1 matrix) run on
    the whole cache in a decode step, as in ``full``.

An encoder-decoder (``seq2seq``: ids [source S | target T], each slice read by one embedding)
is split by dependence: ``encoder_tensors`` are what the source ids alone compute; C is T, the
target's positions (the target embedding's rows). The prefill runs the encoder as in ``full``
and the decoder on the target's first ``prompt`` ids, and also writes each cross-attention
cache (``cross_tensors``: the encoder tensors, S rows, that reach an attention's keys or values
through views) into its state; a decode step runs no encoder node and reads those states with
``cache_read`` (the views to the heads then run on them, as in ``full``); a cross-attention
softmax is not over the tokens, so it is not masked causally; its key mask, the source's
padding mask if the model computes one from the source ids (``ids[:, :S] != pad``: a source
shorter than S is right-padded, qasic.quant.srcpad), is a cross tensor too: the prefill
writes it into a state, a step reads it.

A causal convolution over the tokens (LFM2's short convolution: ``token_convs``) caches its
input with its K - 1 rows of padding; a decode step writes its row and runs the conv on the K
rows ending at p (``cache_window``), and a slice of the conv's outputs becomes its 1x1 corner
(quant.decode_conv); a token shift (a constant band below the diagonal: ``token_shifts``) reads
the same window. Learned memory keys and values, constant rows before the tokens', stay
constants in front of the caches (quant.decode_memory). A recurrence unrolled over the
positions and stacked by one concat (Mamba's selective scan; Mamba2's, captured in that
recurrent form: quant.recurrent_scan; RecurrentGemma's RG-LRU; RWKV's WKV; the gated delta rule
of Qwen3-Next, Qwen3.5, OLMo-Hybrid and Kimi; xLSTM's mLSTM) is found by its selections
(quant.recurrence) and keeps its states: the prefill runs positions 0..P-1 and writes each
state of position P-1; a decode step runs position 1's nodes on the step's token, reading
every state before (``cache_read``) and writing it after them (``cache_write``); its nodes
have no token axis and stay where they are (``token_major``). A state is stored as rows (one
per index of its first axis: Mamba's h (d_inner, n), Mamba2's (heads, head_dim * n), the
gated delta rule's S as (heads, dk * dv)), a vector as one row.

Both produce, row for row, the codes of ``full``: a causal query row depends only on the keys up
to it, and a masked key contributes an exact 0 (its exp-table entry is not summed, its
probability code is 0, so its value row is multiplied by 0). tests/quant/test_decode.py checks
prefill + decode steps against ``full`` bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant import (
    decode_consts,
    decode_conv,
    decode_groups,
    decode_memory,
    decode_mix,
    decode_planes,
    decode_queries,
    intops,
    key_bits,
    lastrow,
    recurrence,
)
from qasic.quant.encodings import KEY_MASK
from qasic.quant.geometry import pair
from qasic.quant.graph import SCAN_STATE, QGraph, QNode
from qasic.quant.srcpad import source_masks

STEP = "step"            # the decode program's input: (token id, position)
MASK = "decode.mask"     # row p of the causal table: the keys a step may attend
VIEWS = ("reshape", "permute")
_ROWWISE = ("norm", "lut", "relu", "clamp", "softmax", "add", "mul", "topk_mask")
_ELEMENTWISE = ("add", "mul")  # ops whose operands may be constants over the positions
# token_major moves permutes below these: ops over the last axis or of each value
_SINKS = (*_ELEMENTWISE, "linear", "concat", "norm", "lut", "relu", "clamp")
_ONE_INPUT = ("linear", "norm", "lut", "relu", "clamp")
_TABLES = ("lut", "relu", "clamp")  # ops of each value


def state_name(tensor: str) -> str:
    return f"cache.{tensor}"


def ids_input(graph: QGraph) -> str:
    """The input tensor of the token ids a decode step takes: the graph's one input, or the
    target ids of an encoder-decoder of a float source (``features_source``)."""
    return graph.inputs[1] if features_source(graph) else graph.input


def features_source(graph: QGraph) -> bool:
    """An encoder-decoder of two inputs, a float source (Whisper's log-mel features) and the
    target ids (T,) that one embedding reads: the encoder is what the features compute."""
    from qasic.quant import graph_inputs

    names, layouts = graph_inputs.names(graph), graph_inputs.layouts(graph)
    return len(names) == 2 and layouts[0] != "tokens" and layouts[1] == "tokens" \
        and len(graph.shapes[names[1]]) == 1


def positions(graph: QGraph) -> int:
    """C: the token positions of a token model's graph (an encoder-decoder's: its target's)."""
    if features_source(graph):
        return int(graph.shapes[graph.inputs[1]][0])
    shape = graph.shapes[graph.input]
    if len(graph.inputs) > 1:
        raise UnsupportedOpError(f"model {graph.name} takes {len(graph.inputs)} inputs "
                                 f"({', '.join(graph.inputs)}); generation needs a language "
                                 "model over one input of int ids, or an encoder-decoder of "
                                 "float features and target ids (qasic generate joins source "
                                 "and target ids into one: quant.decode_inputs): wrap it in a "
                                 "forward of those inputs alone (the others held inside)")
    if graph.input_layout != "tokens" or len(shape) != 1:
        raise UnsupportedOpError(f"model {graph.name} does not take token ids (input "
                                 f"{graph.input} of shape {tuple(shape)}); generation needs a "
                                 "language model over int ids")
    split = seq2seq(graph)
    return int(shape[0]) if split is None else int(shape[0]) - split[0]


def seq2seq(graph: QGraph) -> tuple[int, QNode, QNode] | None:
    """An encoder-decoder's (S, source embedding, target embedding): the ids hold the S source
    ids, then the target's (quant.lowering.IdSlice: each slice is its embedding's rows from
    ``offset``); None for a decoder-only model. Any other slicing of the ids is refused. A
    padding mask of a slice (an embedding through a 1-D table of bits) is not a part."""
    parts = [n for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)
             and "offset" in n.attrs and np.ndim(n.params["table"]) == 2]
    if not parts:
        return None
    total = int(graph.shapes[graph.input][0])
    spans = sorted((int(n.attrs["offset"]), graph.shapes[n.output][0], n) for n in parts)
    if len(spans) == 2 and spans[0][0] == 0 and spans[1][0] == spans[0][1] \
            and spans[1][0] + spans[1][1] == total:
        return spans[1][0], spans[0][2], spans[1][2]
    first, rows, part = spans[0]
    steps = [n for o, r, n in spans[1:] if r == 1]
    if first == 0 and len(steps) == len(spans) - 1 > 1 \
            and [o for o, _, _ in spans[1:]] == list(range(rows, total)):
        raise UnsupportedOpError(
            f"{steps[0].name}..{steps[-1].name} embed the target ids {rows}..{total - 1} of "
            f"model {graph.name} one at a time (a decoder stepping over the target in a Python "
            "loop, an embedding per step: the seq2seq tutorial's AttnDecoderRNN); generation "
            "decodes an encoder-decoder whose target one embedding reads whole ([source | "
            "target] ids: nn.Transformer, T5, BART, Marian) or a decoder-only loop over "
            "selected positions (quant.recurrence): run the model with qasic evaluate")
    raise UnsupportedOpError(
        f"{part.name} embeds ids {first}..{first + rows - 1} of model {graph.name}'s {total}; "
        "generation runs decoder-only models or an encoder-decoder whose ids are [source | "
        "target], each read by one embedding")


def encoder_tensors(graph: QGraph) -> frozenset[str]:
    """An encoder-decoder's tensors computed from the source ids alone (the encoder, its
    padding mask, and the cross-attention keys and values made from its output); empty for a
    decoder-only model."""
    if features_source(graph):  # what the float source alone computes
        src, tgt = {graph.inputs[0]}, {graph.inputs[1]}
    else:
        split = seq2seq(graph)
        if split is None:
            return frozenset()
        src, tgt = {split[1].output, *source_masks(graph, split[0])}, {split[2].output}
    for n in graph.nodes:
        if tgt.intersection(n.inputs):
            tgt.add(n.output)
        elif src.intersection(n.inputs):
            src.add(n.output)
    return frozenset(src)


def cross_tensors(graph: QGraph) -> tuple[str, ...]:
    """An encoder-decoder's cross-attention caches: the encoder tensors (S, ...) that reach an
    attention matmul's second operand (its keys and values) through views (``_cached``), and
    the source's padding mask a cross-attention softmax reads (its keys' mask). A prefill
    computes them once into states; a decode step reads those states."""
    enc, producer = encoder_tensors(graph), {n.output: n for n in graph.nodes}
    out: list[str] = []
    for n in graph.nodes:
        if n.op == "matmul" and n.inputs[1] in enc and n.output not in enc \
                and not _is_constant(producer, n.inputs[0]):
            out += [t for t in _cached(producer, {}, n.inputs[1]) if t not in out]
        elif n.op == "softmax" and n.output not in enc:
            out += [t for m in n.inputs[1:] if m in enc
                    for t in _cached(producer, {}, m) if t not in out]
    return tuple(out)


def cache_tensors(graph: QGraph) -> tuple[str, ...]:
    """The tensors (C, ...) that reach an attention matmul's second operand through views,
    grouped-query head repeats, tables of each value and concatenations (``_cached``): a (C, D)
    projection, Llama's roped (C, heads, d) keys in a ``token_major`` graph, or both parts of
    MiniCPM3's keys (per-head keys next to a shared roped key broadcast to the heads). A model
    without any needs a causal convolution over the tokens (``token_convs``: its window is
    cached instead)."""
    producer = {n.output: n for n in graph.nodes}
    c, tokens, enc = positions(graph), _token_axes(graph), encoder_tensors(graph)
    scanned = {name for p in _recurrences(graph, c) for name in p.position}
    shifts = token_shifts(graph, tokens)  # a cumsum over the tokens is one (K = C)
    mixes = token_mixes(graph, tokens)  # a causal gMLP's: its input is cached
    _refuse_scan(graph, producer, c, scanned | set(lastrow.last_selects(graph, c)) | set(shifts))
    out = []
    for n in graph.nodes:
        if n.op != "matmul" or _is_constant(producer, n.inputs[0]) or n.inputs[1] in enc \
                or n.name in scanned or _is_constant(producer, n.inputs[1]) \
                or _per_token(n, graph.shapes, tokens):
            continue  # not an attention over the tokens (an encoder's, a cross-attention, a
            # recurrence's, Mamba's y_i = h_i @ C_i; a product by a constant matrix per
            # head: MiniMax's lightning attention's initial state, all zeros; a product per
            # token)
        for t in _cached(producer, tokens, n.inputs[1]):
            state = _summed_state(graph, producer, tokens, t)
            if state is not None:
                raise UnsupportedOpError(
                    f"matmul {n.name}: its second operand is linear attention's state {state} "
                    "(K^T V summed over token positions, carried from one block of positions "
                    "to the next: MiniMax's lightning attention over more than one block); "
                    "each block has its own encodings, so generation decodes linear attention "
                    f"within one block: set block_size to at least the {c} positions")
            if t not in producer or len(graph.shapes[t]) < 2 or graph.shapes[t][0] != c:
                memory = decode_memory.projected(graph, producer, t, c)
                if memory is not None:
                    raise UnsupportedOpError(f"matmul {n.name}: {memory}")
                made = f"{producer[t].op} " if t in producer else ""
                raise UnsupportedOpError(f"matmul {n.name}: its second operand does not come "
                                         "from (tokens, features) tensors through head "
                                         f"reshapes but from {t} ({made}of shape "
                                         f"{graph.shapes[t]}: e.g. keys mixed along the "
                                         "positions); generation caches those")
            if t not in out:
                out.append(t)
    out += [src for src, _ in mixes.values() if src not in out]
    decode_mix.refuse_acausal(graph, c, tokens)
    if not out and not token_convs(graph, tokens) and not shifts \
            and not scanned:
        raise UnsupportedOpError(f"model {graph.name} has no attention (no matmul of two "
                                 "activations) and no causal convolution over its tokens: "
                                 "nothing to cache; run it with qasic evaluate")
    return tuple(out)


def _summed_state(graph: QGraph, producer: dict, tokens: dict, tensor: str) -> str | None:
    """The matmul of two activations summing over the token positions (its first operand's
    tokens on its last axis: K^T V) that ``tensor`` is computed from, not through a
    token-major tensor; None if none."""
    todo, seen = [tensor], set()
    while todo:
        t = todo.pop()
        n = producer.get(t)
        if t in seen or n is None or n.op == "constant" or tokens.get(t, (None,))[0] == 0:
            continue
        seen.add(t)
        a = n.inputs[0] if n.op == "matmul" else None
        if a is not None and not _is_constant(producer, a) \
                and not _is_constant(producer, n.inputs[1]) \
                and tokens.get(a, (None,))[0] == len(graph.shapes[a]) - 1:
            return n.name
        todo.extend(n.inputs)
    return None


def _per_token(n: QNode, shapes: dict, tokens: dict) -> bool:
    """Whether matmul ``n`` multiplies each token's own matrices: both operands hold the
    tokens on one leading (batch) axis (Gemma 3n's AltUp mixes its streams by coefficients
    computed per token: (C, D, 4) @ (C, 4, 4)); a decode step runs it on its token alone."""
    axes = [tokens.get(t, (None,))[0] for t in n.inputs]
    return axes[0] is not None and axes[0] == axes[1] \
        and all(axes[0] < len(shapes[t]) - 2 for t in n.inputs)


def token_convs(graph: QGraph, tokens: dict | None = None) -> dict[str, tuple[str, int]]:
    """conv node name -> (its input's cache, K) for each causal conv over the tokens (LFM2's
    short convolution: quant.decode_conv)."""
    tokens = _token_axes(graph) if tokens is None else tokens
    producer = {n.output: n for n in graph.nodes}
    return decode_conv.token_convs(graph, positions(graph), tokens,
                                   lambda t: _token_major_source(producer, tokens, t),
                                   _left_pads(graph, tokens))


def token_mixes(graph: QGraph, tokens: dict | None = None) -> dict[str, tuple[str, str]]:
    """linear name -> (its cached input, its token-major output) for each causal linear mix
    of the positions (a causal gMLP's: quant.decode_mix)."""
    tokens = _token_axes(graph) if tokens is None else tokens
    producer = {n.output: n for n in graph.nodes}
    return decode_mix.token_mixes(graph, positions(graph), tokens,
                                  lambda t: _token_major_source(producer, tokens, t))


def _left_pads(graph: QGraph, tokens: dict) -> dict[str, int]:
    """Each placement's output (the C token rows after L constant rows: a left pad, or
    x-transformers' memory slots; quant.decode_memory) -> L."""
    by_name = {n.name: n.output for n in graph.nodes}
    return {by_name[name]: m for name, m in
            decode_memory.placements(graph, positions(graph), tokens).items()}


def _pad_steps(graph: QGraph, tokens: dict, windows: dict[str, int]) -> dict[str, int]:
    """Placement node name -> L for each left pad whose token-major view is a padded chain's
    window (its L + C rows: quant.decode_conv): a decode step runs it on its token
    (``decode_conv.pad_row``)."""
    producer, c = {n.output: n for n in graph.nodes}, positions(graph)
    roots = {decode_conv.view_root(producer, t) for t, k in windows.items()
             if graph.shapes[t][0] == c + k - 1}
    return {producer[t].name: m for t, m in _left_pads(graph, tokens).items() if t in roots}


def token_shifts(graph: QGraph, tokens: dict | None = None) -> dict[str, tuple[str, int]]:
    """matmul node name -> (its input's cache, K) for each token shift (x-transformers'
    ``shift_tokens``: quant.decode_conv)."""
    tokens = _token_axes(graph) if tokens is None else tokens
    producer = {n.output: n for n in graph.nodes}
    return decode_conv.token_shifts(graph, positions(graph), tokens,
                                    lambda t: _token_major_source(producer, tokens, t))


def _windows(*plans: dict[str, tuple[str, int]]) -> dict[str, int]:
    """Each windowed tensor (a token conv's or shift's input) -> K, the widest window read of
    it: its state keeps K - 1 rows of padding and the tokens; a reader of a narrower window k
    reads rows from K - k on (RecurrentGemma's Conv1D: shifted windows of 1..4 tokens of one
    tensor)."""
    out: dict[str, int] = {}
    for src, k in (v for p in plans for v in p.values()):
        out[src] = max(out.get(src, k), k)
    return out


def _token_major_source(producer: dict, tokens: dict, tensor: str) -> list[str]:
    """The first tensor with its tokens on axis 0 that ``tensor`` is a view of (views
    followed back), or [] if none."""
    while tokens.get(tensor, (None,))[0] != 0:
        n = producer.get(tensor)
        if n is None or n.op not in VIEWS:
            return []
        tensor = n.inputs[0]
    return [tensor]


def _over_positions(n: QNode, graph: QGraph, tokens: dict, rows: int,
                    mixes: dict | None = None) -> QNode:
    """A linear over the token positions (a token conv's slice; in a prefill, a causal mix in
    ``mixes``: quant.decode_mix) on ``rows`` of them; any other node as it is."""
    axis = tokens.get(n.inputs[0], (None,))[0]  # None: no token axis (a selected row's)
    if n.op != "linear" or axis != len(graph.shapes[n.inputs[0]]) - 1:
        return n
    if mixes and n.name in mixes:
        return decode_mix.prefilled(n, rows)
    return decode_conv.slice_linear(n, positions(graph), rows)


def _refuse_scan(graph: QGraph, producer: dict, c: int, scanned: set[str]) -> None:
    """A state-space model's scan that a decode step cannot run, refused: a chunked scan (Mamba2's
    state space duality form, if not captured recurrently: quant.recurrent_scan) takes
    cumulative sums along the positions of each chunk (a matmul by a constant
    lower-triangular matrix of ones: its codes, one nonzero value); a selection of one of the C
    positions at a time (a matmul by a constant (1, C) selector) outside a recurrence that
    quant.recurrence finds (Mamba's scan, RWKV's WKV, the gated delta rule's; all in
    ``scanned``) is a recurrence of another shape, or one over fewer than 3 positions."""
    for n in graph.nodes:
        if n.op != "matmul" or not _is_constant(producer, n.inputs[0]) \
                or n.attrs.get("transpose_b") or n.name in scanned:
            continue  # not a selection, or one of a recurrence generation decodes
        sel = np.asarray(producer[n.inputs[0]].params["value"])
        k, m = sel.shape[-2:]
        if (k, m) == (1, c) and graph.shapes[n.inputs[1]][-2] == c and c < 3:
            raise UnsupportedOpError(
                f"{n.name}: model {graph.name} reads one of its {c} token positions at a time "
                "(a recurrence over the tokens); generation decodes a recurrence over at least "
                "3 positions (a step runs position 1, which writes the states position 2 "
                "reads): capture the model over more tokens")
        if (k, m) == (1, c) and graph.shapes[n.inputs[1]][-2] == c:
            raise UnsupportedOpError(
                f"{n.name}: model {graph.name} reads one of its {c} token positions at a time "
                "outside a recurrence generation decodes (positions that run the same nodes on "
                "the previous position's states, stacked by one concat, as Mamba's h_i = dA_i "
                "* h_(i-1) + dBx_i, y_i = h_i @ C_i: quant.recurrence); run the model with "
                "qasic evaluate")
        if k == m > 1 and ((sel != 0) == np.tril(np.ones((k, k), bool))).all() \
                and np.unique(sel[sel != 0]).size == 1:
            raise UnsupportedOpError(
                f"{n.name}: model {graph.name} takes cumulative sums along its token positions "
                f"within chunks of {k} (a chunked scan, as Mamba2's state space duality form, "
                "fla's chunked GLA): a decode step's program would depend on its place in the "
                "chunk (decay matrices exp(cum_i - cum_j) over the chunk's earlier positions; "
                "the chunk's last one folds them all into the state), and generation runs one "
                "program per step: write the mixer as its recurrent step (h_t = a_t h_(t-1) + "
                "B_t x_t: fla's naive_recurrent_gla; transformers' Mamba2 mixers, which qasic "
                "captures so: quant.recurrent_scan) or run the model with qasic evaluate")


def _cached(producer: dict, tokens: dict, tensor: str) -> list[str]:
    """The tensors ``tensor`` is computed from by ops that a decode step can run on whole caches
    as ``full`` does: views and head repeats, and where ``tensor`` is not token-major yet (its
    tokens not on axis 0: ``_token_axes``), tables of each value (one input) and
    concatenations (each part; a token-major concatenation, Phi's partial rotary keys, is one
    cache)."""
    n = producer.get(tensor)
    if n is None:
        return [tensor]
    if n.op in VIEWS or _head_repeat(producer, tensor) or (
            n.op == "channels" and n.inputs[0] in producer
            and _head_repeat(producer, n.inputs[0]) and _places_rows(producer, n.inputs[0])):
        # (channels of placed rows: a fused qkv's keys, Transformer-XL's, placed after memory
        # rows as a whole: quant.cat_linear)
        inner = _cached(producer, tokens, n.inputs[-1])
        if tokens.get(tensor, (None,))[0] == 0 and any(
                t in producer and tokens.get(t, (0,))[0] != 0 for t in inner):
            return [tensor]  # a token-major view of a per-head op (nGPT's keys normed per head
            # after a heads-first rotary): the step computes it on its row, the view is cached
        return inner
    acts = [t for t in n.inputs if not _is_constant(producer, t)]
    if n.op == "add" and len(acts) == 1 and _head_repeat(producer, acts[0]):
        return _cached(producer, tokens, acts[0])  # memory rows added (decode_memory)
    if tokens.get(tensor, (None,))[0] == 0:
        return [tensor]
    if n.op == "concat":
        return [t for part in n.inputs for t in _cached(producer, tokens, part)]
    if n.op in _TABLES and len(n.inputs) == 1:
        return _cached(producer, tokens, n.inputs[0])
    return [tensor]


def token_major(graph: QGraph) -> QGraph:
    """``graph`` with each permute that keeps the last axis (and each reshape that only adds or
    drops axes of 1) moved below the ops that read it alone or with constants and with views
    alike: ``add``/``mul`` (a constant operand is
    permuted back), linears, norms and concatenations (over the last axis) and tables (of each
    value: lut, relu, clamp). Repeated until none
    moves, so Llama's rotary embedding (q and k permuted to (heads, C, d), multiplied by
    cos/sin tables, a rotate_half linear, a partial rotary's halves concatenated; Gemma-3's
    per-head q/k norms before it) runs on (C, heads, d). Exact: the moved ops compute the
    same codes in another order; the original tensor names keep their shapes (each moved op
    writes ``<name>.tm``, a permute ``<name>``).

    One pass in graph order: a moved op is looked at again where it now stands (its inputs may
    be views too), and the view it writes is met at its readers, which come later; nothing
    earlier can change (its inputs' producers do not), so this is the fixed point."""
    nodes, shapes, tensors = list(graph.nodes), dict(graph.shapes), dict(graph.tensors)
    producer = {n.output: n for n in nodes}
    # a recurrence's nodes stay as they are (a step reads them by position)
    fixed = {name for p in _recurrences(graph, positions(graph)) for name in p.position}
    i = 0
    while i < len(nodes):
        n = nodes[i]
        moved = _sunk(n, producer, shapes, tensors) if n.op in _SINKS \
            and n.name not in fixed else None
        if moved is None:
            i += 1
            continue
        nodes[i:i + 1] = moved
        producer.update((m.output, m) for m in moved)
        i += len(moved) - 2  # the moved op, after the constants it now reads
    return replace(graph, nodes=_live(nodes, graph.output), shapes=shapes, tensors=tensors)


def _sunk(n: QNode, producer: dict, shapes: dict, tensors: dict) -> list[QNode] | None:
    """[constants moved back, ``n`` on the views' inputs, the view] or None: the activation
    inputs of ``n`` must all be the same layout view (``_layout_view``) of tensors shaped alike
    but for the last axis (a concatenation's parts)."""
    acts = [t for t in n.inputs if not _is_constant(producer, t)]
    views = [producer.get(t) for t in acts]
    if not views or any(v is None or not _layout_view(v, shapes) for v in views):
        return None
    first = views[0]
    if any(v.op != first.op or dict(v.attrs) != dict(first.attrs)
           or shapes[v.inputs[0]][:-1] != shapes[first.inputs[0]][:-1] for v in views):
        return None
    if n.op in _ONE_INPUT and len(n.inputs) != 1:
        return None
    inner, outer = tuple(shapes[first.inputs[0]]), tuple(shapes[first.output])
    back = tuple(int(a) for a in np.argsort(first.attrs["perm"])) if first.op == "permute" \
        else None
    out, new, inputs = [], f"{n.output}.tm", []
    for t in n.inputs:
        if not _is_constant(producer, t):
            inputs.append(producer[t].inputs[0])
            continue
        value = np.asarray(producer[t].params["value"])
        if value.ndim > len(outer):
            return None
        value = value.reshape((1,) * (len(outer) - value.ndim) + value.shape)
        value = value.transpose(back) if back is not None else \
            np.broadcast_to(value, outer).reshape(inner)
        name = f"{t}.tm"
        out.append(replace(producer[t], name=name, output=name,
                           params={**producer[t].params, "value": np.ascontiguousarray(value)}))
        shapes[name], tensors[name] = value.shape, tensors[t]
        inputs.append(name)
    ours = tuple(shapes[n.output])
    shapes[new] = tuple(ours[a] for a in back) if back is not None else \
        (*inner[:-1], ours[-1])
    tensors[new] = tensors[n.output]
    return [*out, replace(n, name=f"{n.name}.tm", inputs=tuple(inputs), output=new),
            replace(first, name=n.name, inputs=(new,), output=n.output,
                    attrs={**first.attrs, "shape": ours} if back is None else first.attrs)]


def _layout_view(v: QNode, shapes: dict) -> bool:
    """A view that keeps the last axis and moves no value along it: a permute of the other
    axes (heads to the front), or a reshape that only adds or drops axes of 1 (a single
    head's (1, C, d))."""
    if v.op == "permute":
        perm = tuple(v.attrs["perm"])
        return perm[-1] == len(perm) - 1
    if v.op != "reshape":
        return False
    a, b = tuple(shapes[v.inputs[0]]), tuple(shapes[v.output])
    return a != b and a[-1] == b[-1] and [d for d in a if d != 1] == [d for d in b if d != 1]


def prefill_graph(full: QGraph, prompt: int) -> QGraph:
    """``full`` on ``prompt`` tokens, writing every cache tensor into its state. An
    encoder-decoder's input is its S source ids then the ``prompt`` target ids: the encoder runs
    as in ``full`` and its cross-attention keys and values go into states too (S rows each)."""
    full = decode_consts.folded(token_major(full))  # tables of constants: constants
    sinks = computed_sinks(full)
    probs = {n.output for n in full.nodes if n.name in sinks}
    c = positions(full)
    if not 1 <= prompt <= c:
        raise UnsupportedOpError(f"a prompt of {prompt} tokens does not fit model {full.name}'s "
                                 f"{c} positions")
    caches, cross = set(cache_tensors(full)), set(cross_tensors(full))
    caches |= key_bits.tensors(full, encoder_tensors(full))  # the prompt's padding-mask bits
    mixes = token_mixes(full)
    mixed = {out for _, out in mixes.values()}  # their P rows into states too
    enc, ids = encoder_tensors(full), ids_input(full)
    convs, shifts = token_convs(full), token_shifts(full)
    windows = _windows(convs, shifts)  # a token conv's or shift's input -> K
    scans = {name: p for p in _recurrences(full, c) for name in (*p.position, p.concat)}
    consts = {n.output: n for n in full.nodes if n.op == "constant"}
    tokens = _token_axes(full)
    memory = decode_memory.placements(full, c, tokens)
    planes = decode_planes.masked_planes(full, c)  # zeros where causal softmaxes read them
    unread = decode_planes.unread(full, planes)
    last = set(lastrow.last_selects(full, c))  # the logits of the last position alone
    sums: set[str] = set()  # row sums over the keys cut to the prompt (_widening_sliced)
    nodes, shapes = [], {ids: (int(full.shapes[ids][0]) - c + prompt,)}
    if ids != full.input:  # a float source runs whole
        shapes[full.input] = full.shapes[full.input]
    tensors = dict(full.tensors)
    for n in full.nodes:
        if n.name in unread:
            continue
        if n.name in planes:  # its first P queries' zeros at the first P keys
            _append(decode_planes.zeros(n, (*full.shapes[n.output][:-3], prompt, 1, prompt),
                                        tensors), full, nodes, shapes)
            continue
        if n.name in scans and n.name != scans[n.name].concat:  # positions 0..P-1 of a scan
            plan = scans[n.name]
            _recurrence_prefilled(n, plan, prompt, full, nodes, shapes, tensors)
            continue
        if n.name in scans:
            n = scans[n.name].prefill(n, prompt)  # the first P outputs stacked
        if n.op == "constant" or n.output in enc:  # the encoder runs whole, as in full
            shapes[n.output] = full.shapes[n.output]
            nodes.append(n)
        else:
            if n.op == "embedding" and n.inputs == (full.input,) and "offset" in n.attrs:
                n = replace(n, attrs={**n.attrs, "rows": prompt})  # the target's first ids
            if n.name in shifts:  # S's first P rows and columns (decode_conv)
                n = decode_conv.shift_prefill(n, consts[n.inputs[0]], prompt, nodes, shapes,
                                              tensors)
            n = lastrow.cut(n, consts, nodes, shapes, tensors, prompt) if n.name in last \
                else _positions_read(n, full, consts, nodes, shapes, tensors, c, prompt, memory)
            n = _pattern_sliced(_reshaped(n, shapes, full, tokens, prompt), prompt, sinks)
            n = _over_positions(_sink_dropped(n, full, probs, prompt), full, tokens, prompt,
                                mixes)
            if n.name in convs:
                n = decode_conv.causal_only(n)
            n = _widening_sliced(n, c, prompt, shapes, sums)
            shapes[n.output] = _infer(full, n, shapes)
            nodes.append(n)
        if n.output in caches or n.output in cross or n.output in mixed:
            name, rows = state_name(n.output), _as_rows(n.output, nodes, shapes, tensors)
            nodes.append(QNode(name, "cache_write", (rows,), name, {"state": name}))
            shapes[name] = (full.shapes[n.output][0], *shapes[rows][1:])
            tensors[name] = full.tensors[n.output]
        if n.output in windows:  # its rows after K - 1 of padding (decode_conv)
            name, k = state_name(n.output), windows[n.output]
            rows = n.output if full.shapes[n.output][0] == c + k - 1 else \
                decode_conv.padded_rows(n.output, k, prompt, nodes, shapes, tensors)
            if rows == n.output and not tensors[rows].is_fp and tensors[rows].bits < 8:
                # padded by the model (F.pad before the conv) and read by the depthwise conv,
                # a code per byte: re-stored token-major as the decode step's row is, so both
                # programs store the state alike (compiler.memory)
                rows = decode_conv.padded_rows(rows, 1, shapes[rows][0], nodes, shapes, tensors)
            nodes.append(QNode(name, "cache_write", (rows,), name, {"state": name}))
            shapes[name] = (c + k - 1, full.shapes[n.output][1])
            tensors[name] = full.tensors[n.output]
    nodes = decode_groups.shared(nodes, shapes, tensors)  # where the head repeat is exact
    return replace(full, name=f"{full.name}.prefill{prompt}", nodes=_live(nodes, full.output),
                   shapes=shapes, tensors=tensors)


def decode_graph(full: QGraph) -> QGraph:
    """One token at a runtime position: input (token id, position), output its logits row. An
    encoder-decoder's step does not run the encoder: its cross-attention reads the keys and
    values the prefill wrote (``cache_read``: the states as they are, S rows)."""
    full = decode_consts.folded(token_major(full))  # tables of constants: constants
    sinks = computed_sinks(full)  # their key mask rows allow the sink's column
    c = positions(full)
    caches, cross = set(cache_tensors(full)), set(cross_tensors(full))
    caches |= key_bits.tensors(full, encoder_tensors(full))  # each token's padding-mask bit
    mixed = {out for _, out in token_mixes(full).values()}  # computed whole, row p read back
    enc = encoder_tensors(full)
    consts = {n.output: n for n in full.nodes if n.op == "constant"}
    tokens = _token_axes(full)
    memory = decode_memory.placements(full, c, tokens)  # (the queries after M rows)
    placed = {c + m for m in memory.values()}
    scores = key_scores(full, tokens)  # the other softmaxes are per token (a router's)
    own_rows = decode_queries.query_readers(full, caches, scores)  # the step's queries
    convs, shifts = token_convs(full, tokens), token_shifts(full, tokens)
    windows = _windows(convs, shifts)  # a token conv's or shift's input -> K
    pads = _pad_steps(full, tokens, windows)  # a padded chain's left pad -> L
    scans = {name: p for p in _recurrences(full, c) for name in (*p.position, p.concat)}
    last = set(lastrow.last_selects(full, c))  # the logits of the last position alone
    ids = ids_input(full)
    tensors = {**full.tensors, STEP: full.tensors[ids]}
    shapes: dict[str, tuple[int, ...]] = {STEP: (2,)}
    rename: dict[str, str] = {}
    whole: set[str] = set()  # over all C positions: the caches and what only they feed
    masks: dict[str, np.ndarray] = {}  # the key-mask tables gathered so far, by node name
    planes = decode_planes.masked_planes(full, c)  # zeros where causal softmaxes read them
    unread = decode_planes.unread(full, planes)
    nodes: list[QNode] = []
    for n in full.nodes:
        if n.name in unread:
            continue
        if n.name in planes:  # the step's query's zeros at the C keys
            _append(decode_planes.zeros(n, (*full.shapes[n.output][:-3], 1, 1, c), tensors),
                    full, nodes, shapes)
            continue
        n = replace(n, inputs=tuple(t if n.name in own_rows and t in caches else
                                    rename.get(t, t) for t in n.inputs))
        acts = [t for t in n.inputs if t not in consts]
        if n.output in cross:  # computed once by the prefill: read its state
            name = state_name(n.output)
            nodes.append(QNode(name, "cache_read", (), name, {"state": name}))
            shapes[name] = (full.shapes[n.output][0], int(np.prod(full.shapes[n.output][1:])))
            tensors[name] = full.tensors[n.output]
            rename[n.output] = _shaped(name, full.shapes[n.output], nodes, shapes, tensors)
            whole.add(rename[n.output])
            continue
        if n.name in scans:  # a scan's position 1 on the step's token, h from the state
            plan = scans[n.name]
            _recurrence_decoded(n, plan, full, nodes, shapes, tensors, rename)
            continue
        if n.name in convs:  # on the window of K rows ending at p, from its state
            src, k = convs[n.name]
            n = decode_conv.window(decode_conv.causal_only(n), k, state_name(src), STEP,
                                   nodes, shapes, tensors, windows[src] - k)
        elif n.name in shifts:  # the band's row times the window of K rows ending at p
            src, k = shifts[n.name]
            n = decode_conv.shift_window(n, consts[n.inputs[0]], k, state_name(src), STEP,
                                         nodes, shapes, tensors, windows[src] - k)
        elif n.name in pads:  # the step's token at row L + p of a left pad (decode_conv)
            n = decode_conv.pad_row(n, consts[n.inputs[0]], pads[n.name], nodes, shapes,
                                    tensors)
        elif n.op == "constant" or (acts and all(t in whole for t in acts) and not (
                n.inputs[0] in consts and _expands_rows(
                    n, 0, np.asarray(consts[n.inputs[0]].params["value"]), shapes, c,
                    lambda: tokens)) and not (n.inputs[0] in consts and (
                        decode_memory.selects_queries(
                            n, 0, np.asarray(consts[n.inputs[0]].params["value"]),
                            shapes[acts[0]], c, placed)))):
            if n.output in mixed:  # a causal token mix's C rows: the step's row p of them
                decode_mix.row_of(n, state_name(n.output), STEP, nodes, shapes, tensors,
                                  full.shapes[n.output], _state_written)
                continue
            nodes.append(n)  # a constant (read at use), or computed from the caches as in full
            # (but a per-key value of the caches expanded over the queries: the step's one)
            shapes[n.output] = full.shapes[n.output]
            if n.op != "constant":
                whole.add(n.output)
            continue
        if n.output in enc:
            continue  # the encoder: not run by a decode step (_unread checks nothing needs it)
        if n.op == "embedding" and n.inputs == (ids,):
            if np.ndim(n.params["table"]) == 1:
                key_bits.refuse_other_readers(full, n, enc)
            n = replace(n, inputs=(STEP,), attrs={**n.attrs, "offset": 0, "rows": 1})
        elif n.op == "softmax" and (n.output in scores or n.attrs.get("causal", False)
                                    or "valid" in n.params):
            n = _masked(n, full, nodes, shapes, tensors, masks, c, n.name in sinks,
                        frozenset(rename.get(t, t) for t in key_bits.tensors(full, enc)))
        elif ids in n.inputs:
            raise UnsupportedOpError(f"{n.name} ({n.op}) reads the token ids; generation "
                                     "supports token embeddings only")
        _unread(n, enc, whole)
        n = lastrow.cut(n, consts, nodes, shapes, tensors, 1) if n.name in last \
            else _positions_read(n, full, consts, nodes, shapes, tensors, c, None, memory)
        n = _over_positions(_reshaped(n, shapes, full, tokens, 1), full, tokens, 1)
        shapes[n.output] = _infer(full, n, shapes)
        nodes.append(n)
        if n.output in caches:  # the new row goes into the cache; attention reads the cache
            name, rows = state_name(n.output), _as_rows(n.output, nodes, shapes, tensors)
            nodes.append(QNode(name, "cache_write", (rows, STEP), name,
                               {"state": name, "index": 1}))
            shapes[name], tensors[name] = (c, *shapes[rows][1:]), full.tensors[n.output]
            rename[n.output] = _shaped(name, full.shapes[n.output], nodes, shapes, tensors)
            whole.add(rename[n.output])
        if n.output in windows:  # its row at K - 1 + p of the padded state (decode_conv)
            name, k = state_name(n.output), windows[n.output]
            row = n.output
            if not tensors[row].is_fp and tensors[row].bits < 8:  # re-stored packed (a
                # channels-first step's (D, 1) column keeps a code per byte: compiler.memory)
                row = decode_conv.padded_rows(row, 1, 1, nodes, shapes, tensors)
            nodes.append(QNode(name, "cache_write", (row, STEP), name,
                               {"state": name, "index": 1, "base": k - 1}))
            shapes[name] = (c + k - 1, shapes[n.output][1])
            tensors[name] = full.tensors[n.output]
    # grouped-query attention on the caches themselves where the head repeat is exact
    nodes = decode_groups.shared(nodes, shapes, tensors)
    return replace(full, name=f"{full.name}.decode", input=STEP, inputs=(), input_layouts=(),
                   input_layout="tokens", nodes=_live(nodes, full.output), shapes=shapes,
                   tensors=tensors)


def _append(n: QNode, full: QGraph, nodes: list, shapes: dict) -> None:
    """``n`` appended to a step's ``nodes``, its output's shape (a constant's value's, or
    inferred from its inputs') recorded."""
    shapes[n.output] = np.shape(n.params["value"]) if n.op == "constant" else \
        _infer(full, n, shapes)
    nodes.append(n)


def _widening_sliced(n: QNode, c: int, prompt: int, shapes: dict, sums: set[str]) -> QNode:
    """A prefill's linear of equal weights over the C keys of causal scores (RetNet's scores
    divided by their row sums: the sum over the keys, a linear (1, C), and its broadcast back
    over them, a linear (C, 1), ``_widened`` at capture): over the ``prompt`` keys the
    prefill's scores have (the first P queries' keys after P are masked: zeros in the sum).
    The broadcast must read such a sum (``sums``: the cut sums and the one-column values
    computed from them): a (C, 1) spread of a per-token value over C channels, where the
    channels happen to number C (Mamba2's, NemotronH's), is not over the keys."""
    if n.op != "linear" or prompt == c:
        if any(t in sums and shapes[t][-1] == 1 for t in n.inputs):
            sums.add(n.output)
        return n
    ps = {k: np.asarray(v) for k, v in n.params.items()}
    w, features = ps["weight"], shapes[n.inputs[0]][-1]
    if not (w == w.flat[0]).all():
        return n
    if w.shape == (c, 1) and features == 1 and n.inputs[0] in sums and all(
            v.shape[:1] == (c,) and (v == v[:1]).all() for v in ps.values()):
        return replace(n, params={k: v[:prompt] for k, v in ps.items()})
    if w.shape == (1, c) and features == prompt:
        sums.add(n.output)
        return replace(n, params={**n.params, "weight": w[:, :prompt]})
    return n


def _recurrences(graph: QGraph, c: int) -> list:
    """The recurrences over the tokens (quant.recurrence: Mamba's scans, RWKV's WKV, ...):
    plans with the nodes of each position and the concat stacking their outputs."""
    return recurrence.plans(graph, c)


def _recurrence_prefilled(n: QNode, plan: recurrence.Recurrence, prompt: int, full: QGraph,
                          nodes: list, shapes: dict, tensors: dict) -> None:
    """A prefill's node ``n`` of a recurrence (quant.recurrence): kept for positions 0..P-1,
    each state of position P-1 then written (``_state_rows``) into its DRAM state."""
    short = [s[0] for s in plan.states if prompt - 1 >= len(s)]
    if short and (n.name == plan.concat or n.name in plan.position):
        raise UnsupportedOpError(
            f"{plan.concat}: a prompt of {prompt} tokens ends at position {prompt - 1}, where "
            f"the recurrence no longer computes its state {short[0]} (the last positions drop "
            "the updates only a later position reads: a hand-written RWKV's decay of num); "
            f"give at most {prompt - 1} prompt tokens, or capture the model over more tokens")
    n = plan.prefill(n, prompt)
    if n is None:
        return
    _append(n, full, nodes, shapes)
    for k, s in enumerate(plan.states):
        if prompt - 1 < len(s) and n.output == s[prompt - 1]:
            _state_written(plan.state(k), n.output, nodes, shapes, tensors)


def _recurrence_decoded(n: QNode, plan: recurrence.Recurrence, full: QGraph, nodes: list,
                        shapes: dict, tensors: dict, rename: dict) -> None:
    """A decode step's node ``n`` of a recurrence: position TEMPLATE's, each state of the
    previous position read from DRAM (``cache_read`` into ``<state>.prev``, viewed back to its
    shape) before its first reader, every state written after the last node (after every
    read); the stack of the outputs is the step's output."""
    if n.name == plan.concat:
        rename[n.output] = plan.tails[recurrence.TEMPLATE]
        return
    shape = {k: tuple(full.shapes[s[0]]) for k, s in enumerate(plan.states)}
    reads = {k: f"{plan.state(k)}.prev" + ("" if _state_rows(shape[k]) == shape[k] else ".view")
             for k in shape}  # the state's rows, viewed back to its shape if it has another
    n = plan.decode(n, reads)
    if n is None:
        return
    for k, s in enumerate(plan.states):
        if reads[k] in n.inputs and reads[k] not in shapes:
            prev = f"{plan.state(k)}.prev"
            nodes.append(QNode(prev, "cache_read", (), prev, {"state": plan.state(k)}))
            shapes[prev], tensors[prev] = _state_rows(shape[k]), full.tensors[s[0]]
            if reads[k] != prev:
                _view(nodes, shapes, tensors, prev, reads[k], shape[k])
    _append(n, full, nodes, shapes)
    if n.name == plan.last:
        for k, s in enumerate(plan.states):
            _state_written(plan.state(k), s[recurrence.TEMPLATE], nodes, shapes, tensors)


def _state_written(state: str, tensor: str, nodes: list, shapes: dict, tensors: dict) -> None:
    """``tensor`` written whole into the DRAM state ``state``, as ``_state_rows``; the write is
    marked SCAN_STATE (its codes stored alike in the prefill and decode programs:
    compiler.memory.scan_tensors)."""
    rows = f"{tensor}.row"
    if _state_rows(shapes[tensor]) == tuple(shapes[tensor]):
        rows = tensor
    else:
        _view(nodes, shapes, tensors, tensor, rows, _state_rows(shapes[tensor]))
    nodes.append(QNode(state, "cache_write", (rows,), state, {"state": state, SCAN_STATE: True}))
    shapes[state], tensors[state] = shapes[rows], tensors[tensor]


def _state_rows(shape: tuple[int, ...]) -> tuple[int, int]:
    """A recurrence's state as DRAM rows: one per index of its first axis (the gated delta
    rule's S (heads, d_k, d_v) as (heads, d_k * d_v)), a vector as one row."""
    if len(shape) < 2:
        return (1, int(np.prod(shape)))
    return (int(shape[0]), int(np.prod(shape[1:])))


def _unread(n: QNode, enc: frozenset[str], whole: set[str]) -> None:
    """A decode step's ``n`` must not read the encoder but through the cross-attention
    caches (``cross_tensors``, and views of them: in ``whole``): the encoder does not run in a
    step."""
    bad = next((t for t in n.inputs if t in enc and t not in whole), None)
    if bad is not None:
        raise UnsupportedOpError(f"{n.name} ({n.op}) reads the encoder's {bad} other than as "
                                 "an attention's keys or values; generation caches only those")


def key_scores(graph: QGraph, tokens: dict | None = None) -> set[str]:
    """The tensors over an attention's keys: the output of a matmul of two activations whose
    second operand keeps its tokens on an axis it does not sum over (q @ k^T; p @ v sums over
    the keys), and what views, elementwise ops, tables and softmaxes make of them. A softmax
    of one of them is an attention's, masked in a decode step; any other (a mixture of
    experts' routing softmax over its experts) is per token, computed on the step's token
    alone like an MLP."""
    tokens = _token_axes(graph) if tokens is None else tokens
    producer = {n.output: n for n in graph.nodes}
    out: set[str] = set()
    for n in graph.nodes:
        acts = [t for t in n.inputs if not _is_constant(producer, t)]
        if n.op == "matmul" and len(acts) == 2:
            b = graph.shapes[n.inputs[1]]
            summed = len(b) - (1 if n.attrs.get("transpose_b", False) else 2)
            if tokens.get(n.inputs[1], (summed,))[0] != summed:
                out.add(n.output)
        elif n.op in (*VIEWS, *_ELEMENTWISE, *_TABLES, "softmax") and out.intersection(acts):
            out.add(n.output)
    return out


def _masked(n: QNode, full: QGraph, nodes: list, shapes: dict, tensors: dict, masks: dict,
            c: int, sink: bool = False, bits: frozenset[str] = frozenset()) -> QNode:
    """A causal softmax of the step: masked by row p of the lower-triangular table, or of its
    constant pattern (a sliding window: ``valid`` (1, C, C), the same for every head); keys
    after M constant ones (memory: decode_memory) are seen from every position, and so is a
    computed sink's column after the C keys (``sink``: ``computed_sinks``)."""
    if len(n.inputs) > 2 or len(n.inputs) == 2 and n.inputs[1] not in bits:
        raise UnsupportedOpError(f"{n.name}: a softmax with a padding mask; generation runs "
                                 "unpadded prompts")
    causal = bool(n.attrs.get("causal", False))
    keys = full.shapes[n.inputs[0]][-1]
    # row p: the memory, then tokens 0..p (then the sink's column)
    seen = np.hstack([intops.causal_valid(c, c, 0), np.ones((c, 1), bool)]) if sink \
        else intops.causal_valid(c, keys, keys - c)
    if "valid" in n.params:
        pattern = np.asarray(n.params["valid"]) != 0
        if pattern.shape[-2:] != (c, keys) or keys < c:
            raise UnsupportedOpError(f"{n.name}: a softmax with a constant attention pattern "
                                     f"{pattern.shape} over keys that are not the {c} tokens "
                                     "(a cross-attention's); generation decodes patterns of a "
                                     "self-attention only")
        if pattern.shape[0] != 1:
            raise UnsupportedOpError(f"{n.name}: a softmax with a constant attention pattern "
                                     f"per head {pattern.shape}; generation decodes patterns "
                                     "shared by the heads (a sliding window) only")
        table = pattern[0] & (seen if causal else True)
        if (table & ~seen).any():
            raise UnsupportedOpError(f"{n.name}: its attention pattern lets a token see later "
                                     "ones; it cannot be decoded token by token")
    elif causal:
        table = seen
    else:
        raise UnsupportedOpError(f"{n.name}: a softmax that is not causal cannot be decoded "
                                 "token by token (the model sees later tokens)")
    table = table.astype(np.int64)
    name = _mask_row(table, nodes, shapes, tensors, masks, c)
    if len(n.inputs) == 2:  # and the cached padding-mask bits of the C tokens
        name = key_bits.both(name, n.inputs[1], nodes, shapes, tensors)
    params = {k: v for k, v in n.params.items() if k != "valid"}
    return replace(n, inputs=(n.inputs[0], name), attrs={**n.attrs, "causal": False},
                   params=params)


def _mask_row(table: np.ndarray, nodes: list, shapes: dict, tensors: dict, masks: dict,
              c: int) -> str:
    """The step's key mask: row p of ``table`` (C, keys) gathered by the position (one gather
    per distinct table, kept in ``masks`` by name: the causal one is ``decode.mask``)."""
    name = next((k for k, t in masks.items() if np.array_equal(t, table)), None)
    if name is not None:
        return f"{name}.keys"
    keys = table.shape[1]
    causal = np.array_equal(table, intops.causal_valid(c, keys, keys - c))
    name = MASK if causal else f"{MASK}.{len(masks)}"
    masks[name] = table
    nodes.append(QNode(name, "embedding", (STEP,), name,
                       {"offset": 1, "index_is": "position"}, {"table": table}))
    nodes.append(QNode(f"{name}.keys", "reshape", (name,), f"{name}.keys", {"shape": (keys,)}))
    shapes[name], shapes[f"{name}.keys"] = (1, keys), (keys,)
    tensors[name] = tensors[f"{name}.keys"] = KEY_MASK
    return f"{name}.keys"


def computed_sinks(graph: QGraph) -> dict[str, str]:
    """Softmax node name -> its scores' concatenation, for each softmax over attention scores
    concatenated with a computed column after the keys (a sink logit per token, Inkling2's
    ``sink_proj``: quant.sinks.computed), its constant pattern allowing that column in every
    row. A prefill keeps the column after its P keys (``_pattern_sliced``, ``_sink_dropped``);
    a step's mask row allows it (``_masked``)."""
    producer = {n.output: n for n in graph.nodes}
    out = {}
    for n in graph.nodes:
        cat = producer.get(n.inputs[0]) if n.op == "softmax" else None
        if cat is None or cat.op != "concat" or len(cat.inputs) != 2 \
                or graph.shapes[cat.inputs[1]][-1] != 1 or "valid" not in n.params:
            continue
        if (np.asarray(n.params["valid"])[..., -1] != 0).all():
            out[n.name] = cat.name
    return out


def _pattern_sliced(n: QNode, prompt: int, sinks: dict[str, str] | None = None) -> QNode:
    """A prefill's softmax with a constant pattern (Pp, C, M + C): its first ``prompt``
    queries and M + ``prompt`` keys (M memory keys before the tokens': decode_memory); with a
    computed sink column after the C keys (``sinks``), its first ``prompt`` keys and that
    column."""
    if n.op != "softmax" or "valid" not in n.params:
        return n
    valid = np.asarray(n.params["valid"])
    if n.name in (sinks or {}):
        valid = np.concatenate([valid[:, :prompt, :prompt], valid[:, :prompt, -1:]], -1)
    else:
        valid = valid[:, :prompt, :prompt + valid.shape[-1] - valid.shape[-2]]
    return replace(n, params={**n.params, "valid": valid})


def _sink_dropped(n: QNode, full: QGraph, probs: set[str], prompt: int) -> QNode:
    """A prefill's linear that drops a computed sink's column from the probabilities of
    ``probs`` (C + 1 keys -> C, a 0/1 slice): on P keys, its first P rows, the first P columns
    and the sink's. Any other linear of those probabilities is refused."""
    if n.op != "linear" or n.inputs[0] not in probs:
        return n
    p, c = n.params, full.shapes[n.inputs[0]][-1] - 1
    w = np.asarray(p["weight"])
    if set(p) != {"weight", "bias", "multiplier", "shift"} or w.shape != (c, c + 1) \
            or w[:, c].any() or not np.array_equal(w[:, :c], w[0, 0] * np.eye(c, dtype=w.dtype)):
        raise UnsupportedOpError(f"{n.name}: a linear of a softmax's probabilities with a "
                                 f"computed sink column (weight {w.shape}) that does not drop "
                                 "that column; generation decodes the slice that drops it")
    cols = [*range(prompt), c]
    return replace(n, params={"weight": w[:prompt][:, cols],
                              **{k: np.asarray(p[k])[:prompt]
                                 for k in ("bias", "multiplier", "shift")}})


def _is_constant(producer: dict, tensor: str) -> bool:
    return tensor in producer and producer[tensor].op == "constant"


def _places_rows(producer: dict, tensor: str) -> bool:
    """A matmul of a constant of more rows than columns: rows placed among constant ones (a
    memory's, quant.decode_memory), not a selection of some of them."""
    shape = np.shape(producer[producer[tensor].inputs[0]].params.get("value"))
    return len(shape) >= 2 and shape[-2] > shape[-1]


def _head_repeat(producer: dict, tensor: str) -> bool:
    """A grouped-query head repeat: a matmul of a constant (0/1 rows) by a cached tensor."""
    n = producer[tensor]
    return n.op == "matmul" and _is_constant(producer, n.inputs[0])


def _positions_read(n: QNode, full: QGraph, consts: dict, nodes: list, shapes: dict,
                    tensors: dict, c: int, prompt: int | None,
                    memory: dict[str, int] | None = None) -> QNode:
    """``n`` (an elementwise op, a matmul on its batch axes, a concat of constant parts (a
    table of one, quant.decode_consts) and activations) reading the positions it runs at
    from each constant over all C positions (an axis of C where ``n``'s activation has
    ``prompt`` rows, or 1 in a decode step): the first ``prompt`` rows on every such axis (a
    sliced constant; an ALiBi bias (heads, C, C) has two), or row p (``prompt`` None: a gather
    by the step's position along the one axis where the step has 1, then views back to the
    constant's layout; row 0 of a constant that is the same at every position). In a prefill,
    ``memory`` (placement matmul -> M: decode_memory) cuts the placements and the constants
    over M + C keys to the first M + P."""
    if n.op not in _ELEMENTWISE and n.op not in ("matmul", "concat"):
        return n
    acts = [t for t in n.inputs if t not in consts]
    if not acts:
        return n
    act, whole = shapes[acts[0]], full.shapes.get(acts[0], shapes[acts[0]])
    rows = 1 if prompt is None else prompt
    memory = memory or {}
    if n.name in memory and prompt is not None:
        return _placed(n, memory[n.name], consts[n.inputs[0]], nodes, shapes, tensors, prompt)
    _refuse_mixing(n, consts, act, c, rows)
    placed = {c + m for m in memory.values()}
    keys = placed if prompt is not None else set()
    inputs = list(n.inputs)
    for i, t in enumerate(n.inputs):
        if t not in consts:
            continue
        value = np.asarray(consts[t].params["value"])
        queries = decode_memory.selects_queries(n, i, value, whole, c, placed) and (
            prompt is not None or tuple(act) == tuple(whole))  # (a step: of the whole rows)
        cut = None if prompt is None or not queries else \
            decode_memory.queries_cut(value, act, whole, c, prompt)
        queries = queries and (prompt is None or cut is not None)
        if cut is not None:  # a prefill's queries' rows after M memory rows (Transformer-XL)
            name = f"{t}.at{prompt}"
            if name not in shapes:
                nodes.append(replace(consts[t], name=name, output=name,
                                     params={**consts[t].params, "value": cut}))
                shapes[name], tensors[name] = cut.shape, full.tensors[t]
            inputs[i] = name
            continue
        if _expands_rows(n, i, value, shapes, c, lambda: _token_axes(full)):  # a per-key
            # value repeated over the queries
            name = f"{t}.rows{rows}"
            if name not in shapes:
                value = np.take(value, range(rows), axis=-2)
                nodes.append(replace(consts[t], name=name, output=name,
                                     params={**consts[t].params, "value": value}))
                shapes[name], tensors[name] = value.shape, full.tensors[t]
            inputs[i] = name
            continue
        axes = [value.ndim - 2] if queries else \
            _position_axes(n.op, value.shape, act, whole, c, rows) + \
            decode_memory.key_axes(value.shape, act, whole, keys)
        if not axes or (prompt is None and len(axes) != 1):
            continue
        k = axes[0]
        name = f"{t}.at{'_p' if prompt is None else prompt}"
        if name not in shapes:
            if prompt is not None or _same_along(value, k):
                # every token axis (an ALiBi bias's queries and keys, those of a memory's M + P
                # keys); a constant equal at every position (a head selection broadcast over
                # the tokens) needs no gather either
                for a in axes:
                    value = np.take(value, range(act[len(act) - value.ndim + a]), axis=a)
                if prompt is not None and _selects_keys(n, i, value.shape, axes, c,
                                                        set(memory.values())):
                    m = value.shape[-1] - c  # M memory keys before the tokens (or none)
                    value = np.take(value, range(m + prompt), axis=-1)
                nodes.append(replace(consts[t], name=name, output=name,
                                     params={**consts[t].params, "value": value}))
                shapes[name], tensors[name] = value.shape, full.tensors[t]
            else:
                moved = np.moveaxis(value, k, 0)
                row = name if moved.ndim == 2 else f"{name}.row"
                nodes.append(QNode(row, "embedding", (STEP,), row,
                                   {"offset": 1, "index_is": "position"},
                                   {"table": moved.reshape(c, -1)}))
                shapes[row] = (1, int(np.prod(moved.shape[1:])))
                tensors[row] = full.tensors[t]
                if row != name:
                    _view(nodes, shapes, tensors, row, name, (1, *moved.shape[1:]), k)
        inputs[i] = name
    return replace(n, inputs=tuple(inputs))


def _expands_rows(n: QNode, i: int, value: np.ndarray, shapes: dict, c: int,
                  tokens: Callable[[], dict]) -> bool:
    """A matmul's first operand, a constant of C equal rows over one row of the other (a
    column of ones: a value per key expanded along the C queries, Doge's dynamic mask): its
    rows are the queries, P in a prefill and 1 in a decode step. The row must hold the keys
    (its token axis, ``tokens()[name]``, the last): a per-token state of C channels spread
    over C rows, where the channels happen to number C (Mamba2's, NemotronH's), is not."""
    if not (n.op == "matmul" and i == 0 and value.ndim >= 2 and value.shape[-2] == c
            and shapes[n.inputs[1]][-2] == 1 and _same_along(value, value.ndim - 2)):
        return False
    axis = tokens().get(n.inputs[1], (None, 1))[0]
    return axis == len(shapes[n.inputs[1]]) - 1


def _selects_keys(n: QNode, i: int, value: tuple[int, ...], axes: list[int], c: int,
                  memory: set[int] | frozenset[int] = frozenset()) -> bool:
    """A matmul's second operand, a constant over the queries (a position axis among its batch
    axes) whose C columns are the keys: a per-query 0/1 gather of relative positions
    (lowering_gather: Inkling's relative position bias), whose prefill reads P keys; or M + C
    columns, M memory keys before the tokens (``memory``: Transformer-XL's relative position
    embeddings per (query, key), quant.rel_shift), whose prefill reads M + P."""
    return n.op == "matmul" and i == 1 and not n.attrs.get("transpose_b", False) \
        and bool(axes) and value[-1] - c in {0, *memory}


def _placed(n: QNode, m: int, const: QNode, nodes: list, shapes: dict, tensors: dict,
            prompt: int) -> QNode:
    """A prefill's placement of the prompt's P rows after M memory rows (decode_memory)."""
    name = f"{const.output}.at{prompt}"
    value = decode_memory.sliced(np.asarray(const.params["value"]), m, prompt)
    nodes.append(replace(const, name=name, output=name, params={**const.params, "value": value}))
    shapes[name], tensors[name] = value.shape, tensors[const.output]
    return replace(n, inputs=(name, *n.inputs[1:]))


def _refuse_mixing(n: QNode, consts: dict, act: tuple[int, ...], c: int, rows: int) -> None:
    """A matmul of a constant (M, C) by the ``rows`` positions a step computes (not whole
    caches: those run as in ``full``; a token shift, a band below the diagonal, reads a
    window: ``token_shifts``) mixes the tokens' rows (a pool, a cat along the positions):
    refused, not built."""
    if n.op != "matmul" or n.inputs[0] not in consts or n.attrs.get("transpose_b"):
        return
    value = np.shape(consts[n.inputs[0]].params["value"])
    if value[-1] == c and len(act) >= 2 and act[-2] == rows != c:
        raise UnsupportedOpError(
            f"{n.name}: mixes the {c} token positions by a constant {value[-2:]} matrix (a pool "
            "or a concatenation along the positions); generation caches attention's keys and "
            "values and windows of past tokens (a causal band of one value per diagonal): run "
            "the model with qasic evaluate")


def _position_axes(op: str, value: tuple[int, ...], act: tuple[int, ...],
                   whole: tuple[int, ...], c: int, rows: int) -> list[int]:
    """The axes of a constant of shape ``value`` that hold the C positions: where the
    activation it meets has ``rows`` (shape ``act``) and C in the full model (shape
    ``whole``), the shapes aligned from their last axes (an axis of C that the full model's
    activation broadcasts from 1 is not the positions); a matmul's constant meets the other
    operand on its batch axes only (the last two are the matrix), a concat's part the others
    on all axes but the last (the one it concatenates)."""
    last = {"matmul": 2, "concat": 1}.get(op, 0)  # axes not over the batch
    v, a, o = (value[:-last], act[:-last], whole[:-last]) if last else (value, act, whole)
    return [len(v) - 1 - k
            for k, (x, y, z) in enumerate(zip(v[::-1], a[::-1], o[::-1], strict=False))
            if x == c and y == rows != c and z == c]


def _same_along(value: np.ndarray, axis: int) -> bool:
    """``value`` is the same at every index of ``axis`` (a broadcast)."""
    return bool((value == np.take(value, [0], axis=axis)).all())


def _view(nodes: list, shapes: dict, tensors: dict, src: str, name: str,
          shape: tuple[int, ...], axis: int = 0) -> None:
    """``name``: ``src`` reshaped to ``shape`` (its first axis moved to ``axis`` if not 0)."""
    if axis and shape[0] == 1:  # moving one row's axis of 1 is a view: no permute
        shape, axis = (*shape[1:axis + 1], 1, *shape[axis + 1:]), 0
    mid = name if axis == 0 else f"{name}.view"
    nodes.append(QNode(mid, "reshape", (src,), mid, {"shape": tuple(shape)}))
    shapes[mid], tensors[mid] = tuple(shape), tensors[src]
    if axis:
        perm = (*range(1, axis + 1), 0, *range(axis + 1, len(shape)))
        nodes.append(QNode(name, "permute", (mid,), name, {"perm": perm}))
        shapes[name], tensors[name] = tuple(shape[p] for p in perm), tensors[src]


def _as_rows(tensor: str, nodes: list, shapes: dict, tensors: dict) -> str:
    """A cache tensor as (rows, features): itself, or (rows, heads * d) viewed."""
    shape = shapes[tensor]
    if len(shape) == 2:
        return tensor
    name = f"{tensor}.rows"
    _view(nodes, shapes, tensors, tensor, name, (shape[0], int(np.prod(shape[1:]))))
    return name


def _shaped(state: str, shape: tuple[int, ...], nodes: list, shapes: dict,
            tensors: dict) -> str:
    """The whole cache ``state`` (C, features) in the cached tensor's own shape."""
    if len(shape) == 2:
        return state
    name = f"{state}.view"
    _view(nodes, shapes, tensors, state, name, tuple(shape))
    return name


def _live(nodes: list[QNode], output: str) -> tuple[QNode, ...]:
    """The nodes the output or a cache write needs (a constant read only at its positions
    drops out)."""
    needed = {output} | {n.output for n in nodes if n.op == "cache_write"}
    needed |= {n.output for n in nodes if n.op == "cache_read"}  # the same states everywhere
    keep = []
    for n in reversed(nodes):
        if n.output in needed:
            keep.append(n)
            needed.update(n.inputs)
    return tuple(reversed(keep))


def _token_axes(graph: QGraph) -> dict[str, tuple[int, int]]:
    """Where each tensor of ``graph`` keeps the token positions: (axis, inner), the axis
    holding C * inner values, a token's ``inner`` consecutive ones (a reshape may merge the
    tokens with the axes after them: a head repeat's (heads, 1, C * d))."""
    shapes, producer = graph.shapes, {n.output: n for n in graph.nodes}
    enc = encoder_tensors(graph)  # an encoder-decoder's source positions are not the tokens
    # a selective scan's nodes are one position each (no token axis); its stack of outputs
    # has the tokens on its last axis
    plans = _recurrences(graph, positions(graph))
    scanned = {name for p in plans for name in p.position}
    stacks = {p.concat for p in plans}
    last = set(lastrow.last_selects(graph, positions(graph)))  # one row: no token axis
    ids = ids_input(graph)
    out = {ids: (0, 1)}
    for n in graph.nodes:
        if n.output in enc or n.name in scanned or n.name in last:
            continue
        if n.name in stacks:
            out[n.output] = (len(shapes[n.output]) - 1, 1)
            continue
        src = next((out[t] for t in n.inputs if t in out and not _is_constant(producer, t)),
                   None)
        if src is None:
            continue
        axis, inner = src
        if n.op == "permute":
            out[n.output] = (list(n.attrs["perm"]).index(axis), inner)
        elif n.op == "reshape":
            stride = inner * int(np.prod(shapes[n.inputs[0]][axis + 1:]))
            new = shapes[n.output]
            for j in range(len(new)):
                below = int(np.prod(new[j + 1:]))
                if below <= stride < below * new[j] and stride % below == 0:
                    out[n.output] = (j, stride // below)
                    break
        elif n.op == "matmul" and _is_constant(producer, n.inputs[0]) and _expands_rows(
                n, 0, np.asarray(producer[n.inputs[0]].params["value"]), shapes,
                positions(graph), lambda: out):
            out[n.output] = (len(shapes[n.output]) - 2, 1)  # per key over the C queries
        elif n.op == "matmul" and _is_constant(producer, n.inputs[0]):
            b = shapes[n.inputs[1]]  # (..., K, N) @: the tokens stay on the axis they were
            rel = axis - len(b)
            if n.attrs.get("transpose_b", False):  # b (..., N, K): its N is the output's last
                if rel == -1:
                    continue  # summed over
                rel = -1 if rel == -2 else rel
            out[n.output] = (rel + len(shapes[n.output]), inner)
        elif n.op != "embedding" or n.inputs[0] == ids:
            out[n.output] = (axis, inner)
    return out


def _reshaped(n: QNode, shapes: dict, full: QGraph | None = None,
              tokens: dict | None = None, prompt: int | None = None) -> QNode:
    """A reshape on ``prompt`` positions (a decode step: 1): the axis that holds the tokens in
    the full graph (``tokens``) shrinks from C to ``prompt`` (from M + C to M + P after a
    memory's M rows: decode_memory; the only axis whose size changes, it takes what the
    input's size leaves); a reshape the tokens do not reach keeps its input's leading axis."""
    if n.op != "reshape":
        return n
    shape = tuple(n.attrs.get("shape", ()))
    if tokens is not None and n.output in tokens and full is not None:
        j, _ = tokens[n.output]
        size, rest = int(np.prod(shapes[n.inputs[0]])), int(np.prod(shape[:j] + shape[j + 1:]))
        rows = size // rest if rest and size % rest == 0 else shape[j] // positions(full) * prompt
        new = (*shape[:j], rows, *shape[j + 1:])
        was, now = tuple(full.shapes[n.inputs[0]]), tuple(shapes[n.inputs[0]])
        if len(was) == len(now) and sum(a != b for a, b in zip(was, now, strict=True)) > 1:
            # the queries and a memory's M + P keys both cut (Transformer-XL's relative
            # scores): each group of axes takes its new sizes
            new = _regrouped(was, shape, now, positions(full), prompt) or new
    elif full is not None and tuple(shapes[n.inputs[0]]) == tuple(full.shapes[n.inputs[0]]):
        return n  # no token axis, its input as in full (after the last position's selection)
    else:
        rows = shapes[n.inputs[0]][0]
        new = (rows, *shape[1:]) if len(shape) > 1 else (rows * int(np.prod(
            shapes[n.inputs[0]][1:])),)
    if full is not None and int(np.prod(new)) != int(np.prod(shapes[n.inputs[0]])):
        # two axes over the positions (attention probabilities (H, S, S_k) merged into
        # (H S, S_k) to meet one key/value head, multi-query attention): each group of axes
        # the reshape merges or keeps takes its new sizes
        new = _regrouped(full.shapes[n.inputs[0]], shape, shapes[n.inputs[0]],
                         positions(full), prompt) or new
    return replace(n, attrs={**n.attrs, "shape": new})


def _regrouped(old_in: tuple, old_out: tuple, new_in: tuple, c: int,
               prompt: int | None = None) -> tuple | None:
    """The shape a reshape of ``old_in`` into ``old_out`` gives ``new_in`` (same rank): the
    axes fall into groups of equal size on both sides (a merge, a split, an axis kept); a
    group's output is one axis of the new product, or, split, its axes as they were but the
    one of the ``c`` positions, which takes the rest; split into queries and keys (two axes of
    ``c``: Doge's per-key mask expanded over the queries, merged with them), both ``prompt``
    in a prefill, the keys whole in a decode step. None where that is not one answer."""
    if len(old_in) != len(new_in):
        return None
    out, i, k = [], 0, 0
    while i < len(old_in) or k < len(old_out):
        j, l_, a, b = i + 1, k + 1, int(np.prod(old_in[i:i + 1])), int(np.prod(old_out[k:k + 1]))
        while a != b:
            if (a < b and j < len(old_in)) or l_ >= len(old_out):
                if j >= len(old_in):
                    return None
                a, j = a * old_in[j], j + 1
            else:
                b, l_ = b * old_out[l_], l_ + 1
        size, group = int(np.prod(new_in[i:j])), list(old_out[k:l_])
        if len(group) > 1:
            token = [t for t, s in enumerate(group) if s == c]
            rest = int(np.prod(group)) // c
            if len(token) == 2 and prompt is not None and size * c * c == prompt * prompt \
                    * int(np.prod(group)):
                group[token[0]], group[token[1]] = prompt, prompt
            elif len(token) == 2 and prompt is not None and size * c == prompt * int(
                    np.prod(group)):
                group[token[0]] = prompt  # the queries; the keys stay whole
            elif len(token) != 1 or size % rest:
                return None
            else:
                group[token[0]] = size // rest
        else:
            group = [size]
        out += group
        i, k = j, l_
    return tuple(out)



def _infer(full: QGraph, n: QNode, shapes: dict) -> tuple[int, ...]:
    """The output shape of ``n`` from its (new) input shapes."""
    ins = [shapes[t] for t in n.inputs]
    if n.op == "embedding":
        table = np.asarray(n.params["table"])
        # a slice of the ids (an encoder-decoder's target) or a decode step's one row
        rows = int(n.attrs.get("rows", 1)) if "offset" in n.attrs else ins[0][0]
        return (rows, *table.shape[1:])
    if n.op == "linear":
        return (*ins[0][:-1], int(np.asarray(n.params["weight"]).shape[0]))
    if n.op == "conv2d":  # a token conv (decode_conv): stride 1, a dilation (a TCN's)
        (h, w, _), (oc, kh, kw, _) = ins[0], np.shape(n.params["weight"])
        top, left, bottom, right = n.attrs["padding"]
        dh, dw = pair(n.attrs.get("dilation", 1))
        return (h + top + bottom - dh * (kh - 1), w + left + right - dw * (kw - 1), oc)
    if n.op in _ELEMENTWISE:
        if not all(len(set(d) - {1}) <= 1 for d in zip(*(s[::-1] for s in ins))):
            raise UnsupportedOpError(
                f"{n.name}: {n.op} of shapes {', '.join(map(str, ins))} in a generation graph: "
                "an operand that keeps the full model's positions (a value expanded along the "
                "queries, Doge's dynamic mask); generation slices caches, constants over the "
                "positions and their views: run the model with qasic evaluate")
        return tuple(np.broadcast_shapes(*ins))
    if n.op in _ROWWISE:
        return tuple(ins[0])
    if n.op == "channels":  # a chunk of each token's features (over the tokens: a linear)
        return (*ins[0][:-1], int(n.attrs["stop"]) - int(n.attrs["start"]))
    if n.op == "reshape":
        return tuple(n.attrs["shape"])
    if n.op == "permute":
        return tuple(ins[0][p] for p in n.attrs["perm"])
    if n.op == "matmul":
        a, b = ins
        cols = b[-2] if n.attrs.get("transpose_b", False) else b[-1]
        try:
            lead = np.broadcast_shapes(a[:-2], b[:-2])
        except ValueError:
            raise UnsupportedOpError(
                f"{n.name}: matmul of shapes {a}, {b} in a generation graph: leading axes that "
                "do not match once the caches are sliced (an operand that keeps the full "
                "model's positions); run the model with qasic evaluate") from None
        return (*lead, a[-2], cols)
    if n.op == "constant":
        return tuple(np.shape(n.params["value"]))
    if n.op == "maxpool2d":  # along each row's values alone (log_softmax's row maximum)
        (h, w, ch), (kh, kw), (sh, sw) = ins[0], n.attrs["kernel"], n.attrs["stride"]
        top, left, bottom, right = n.attrs["padding"]
        if (kh, sh, top, bottom) != (1, 1, 0, 0):
            raise UnsupportedOpError(f"{n.name}: a max pool across rows (kernel {kh}, stride "
                                     f"{sh}) in a generation graph; generation runs a max "
                                     "within each token's row (a max over the last axis)")
        return (h, (w + left + right - kw) // sw + 1, ch)
    if n.op == "concat":  # along the last axis
        if len({tuple(s[:-1]) for s in ins}) > 1:
            raise UnsupportedOpError(
                f"{n.name}: concat of shapes {', '.join(map(str, ins))} in a generation graph: "
                "parts whose leading axes differ once the positions are cut (a part that keeps "
                "the full model's positions); run the model with qasic evaluate")
        return (*ins[0][:-1], sum(s[-1] for s in ins))
    raise UnsupportedOpError(f"{n.name}: op {n.op} is not supported in generation graphs; "
                             f"supported: embedding, linear, matmul, {', '.join(_ROWWISE)}, "
                             "reshape, permute, channels, constant, concat, a max pool within "
                             "rows, a causal conv over the tokens")
