"""An encoder-decoder's source shorter than its capture's S: right-padded to S with a pad id that
every attention over the source masks.

The model computes the mask from its source ids (``attention_mask=ids[:, :S] != pad`` in its
forward); capture follows it (qasic.quant.masks) to an ``embedding`` of the source's slice of
the ids through a 1-D table of bits (1: attend), the source's padding mask, which the
encoder's self-attention softmaxes and every cross-attention softmax read as their key mask.
On the accelerator the prefill gathers it from the ids like any padding mask and writes it into
a state next to the cross-attention keys and values; each decode step reads it
(qasic.quant.decode).

Right padding keeps every real token at its position, so T5's relative position bias and
BART's learned or Marian's sinusoidal positions are those of the unpadded source; a masked key
gets an exact 0 weight (its probability code is 0), so no padded position reaches the decoder.
In float the padded model equals the model on the unpadded source (to rounding); in integers
the codes are those of the golden reference of the padded ids, which the simulator matches.

A graph whose attentions over the source are not all masked by such a mask cannot be padded:
``pad_id`` refuses it in one line; ``refuse_unattended`` refuses a source of ids the mask drops
only (no key left to attend).
"""

from __future__ import annotations

import numpy as np

from qasic.errors import InputError, UnsupportedOpError

_VIEWS = ("reshape", "permute")
_PASS = (*_VIEWS, "add", "mul", "lut")  # between an attention's q @ k^T and its softmax


def source_masks(graph, source: int) -> list[str]:
    """The padding masks of an encoder-decoder's source: embeddings of ids within the first
    ``source`` through a 1-D table of bits, (S,) each."""
    return [n.output for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)
            and np.ndim(n.params["table"]) == 1 and "offset" in n.attrs
            and int(n.attrs["offset"]) + graph.shapes[n.output][0] <= source]


def source_attentions(graph, enc: frozenset[str]) -> list:
    """The softmaxes over the source's keys: of scores made by a matmul of two activations whose
    second operand (the keys) is an encoder tensor (``enc``): the encoder's self-attentions and
    the decoder's cross-attentions."""
    producer = {n.output: n for n in graph.nodes}
    return [n for n in graph.nodes if n.op == "softmax"
            and _keys(producer, n.inputs[0]) in enc]


def _keys(producer: dict, tensor: str) -> str | None:
    """The second operand of the attention matmul that ``tensor`` (scores) comes from through
    views, scalings, constant biases and tables; None if it comes from none."""
    n = producer.get(tensor)
    while n is not None and n.op in _PASS:
        acts = [t for t in n.inputs if t in producer and producer[t].op != "constant"]
        if len(acts) != 1:
            return None
        n = producer[acts[0]]
    if n is None or n.op != "matmul" or any(producer.get(t) is None
                                            or producer[t].op == "constant" for t in n.inputs):
        return None
    return n.inputs[1]


def pad_id(graph, source: int, enc: frozenset[str], length: int,
           preferred: int | None = None) -> int:
    """The id that pads a source of ``length`` < ``source`` ids: ``preferred`` (the model's
    ``pad_token_id``) if every attention over the source drops it, else the smallest id they
    all drop. Refused in one line when an attention over the source reads no padding mask of
    the source ids, or when no id is dropped by all."""
    producer = {n.output: n for n in graph.nodes}
    masks = set(source_masks(graph, source))
    dropped = None
    for n in source_attentions(graph, enc):
        mask = _unviewed(producer, n.inputs[1]) if len(n.inputs) > 1 else None
        if mask not in masks:
            raise UnsupportedOpError(
                f"{n.name}: model {graph.name} attends its source without a padding mask of "
                f"the source ids, so a source of {length} tokens cannot be padded to its "
                f"{source}: give exactly {source} ids, or compute the mask in its forward "
                f"(attention_mask=ids[:, :{source}] != pad_id)")
        keep = np.asarray(producer[mask].params["table"]) != 0
        dropped = ~keep if dropped is None else dropped & ~keep
    ids = np.flatnonzero(dropped) if dropped is not None else np.zeros(0, np.int64)
    if ids.size == 0:
        raise UnsupportedOpError(f"model {graph.name}'s source padding masks drop no common id, "
                                 f"so a source of {length} tokens cannot be padded to its "
                                 f"{source}; give exactly {source} ids")
    return int(preferred) if preferred is not None and preferred in ids else int(ids[0])


def _unviewed(producer: dict, tensor: str) -> str:
    n = producer.get(tensor)
    while n is not None and n.op in _VIEWS:
        tensor, n = n.inputs[0], producer.get(n.inputs[0])
    return tensor


def refuse_unattended(graph, source: int, ids: np.ndarray) -> None:
    """Refuse a source all of whose ``ids`` a padding mask of the source drops: no key would be
    left to attend (the golden reference's masked rows are 0s; the float model's, undefined)."""
    for n in graph.nodes:
        if n.output in source_masks(graph, source) \
                and not np.asarray(n.params["table"])[np.asarray(ids, np.int64)].any():
            raise InputError(f"every id of the source {[int(i) for i in ids]} is one its "
                             f"padding mask {n.name} drops: no source token to attend; give "
                             "at least one other id")


def padded(ids: np.ndarray, source: int, pad: int) -> np.ndarray:
    """``ids`` (1..``source`` of them) right-padded with ``pad`` to ``source``."""
    ids = np.asarray(ids, np.int64).reshape(-1)
    if not 1 <= len(ids) <= source:
        raise InputError(f"a source of {len(ids)} tokens; the model takes 1..{source}")
    return np.concatenate([ids, np.full(source - len(ids), pad, np.int64)])
