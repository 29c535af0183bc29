"""Generation with a padding mask of the decoder's own ids (PyTorch's translation tutorial:
``tgt_padding_mask = (tgt == PAD_IDX)`` into nn.Transformer's decoder self-attention; a
decoder-only model's ``ids != pad``): each token's mask bit is an embedding of its id (a 0/1
table over the vocabulary, quant.masks), so it is cached as keys are. The prefill writes the
prompt's P bits into a (C, 1) state; a decode step computes its token's bit, writes it at row
p and reads the C bits; its causal softmax masks by row p of the causal table times those
bits (a ``mul`` of two 0/1 KEY_MASK tensors, multiplier 1: exact), so a generated pad token is
masked as a key exactly as ``full`` masks it. A mask bit read other than by softmaxes is
refused in one line."""

from __future__ import annotations

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.encodings import KEY_MASK
from qasic.quant.fixedpoint import quantize_multiplier
from qasic.quant.graph import QGraph, QNode


def tensors(graph: QGraph, enc: frozenset[str]) -> set[str]:
    """The decoder's padding-mask bits: embeddings of the input ids through a 0/1 table (an
    encoder's source mask, in ``enc``, is a cross-attention state instead)."""
    return {n.output for n in graph.nodes if n.op == "embedding" and n.inputs == (graph.input,)
            and np.ndim(n.params["table"]) == 1 and n.output not in enc}


def refuse_other_readers(graph: QGraph, n: QNode, enc: frozenset[str]) -> None:
    """One line when mask bits ``n`` reach anything but a softmax's mask input."""
    bad = next((m for m in graph.nodes if n.output in m.inputs
                and (m.op != "softmax" or m.inputs[0] == n.output)), None)
    if bad is not None:
        raise UnsupportedOpError(
            f"{n.name}: a padding mask of the {'target ' if enc else ''}ids read by {bad.name} "
            f"({bad.op}), not as an attention's key mask; generation decodes a mask bit per "
            "token only as a softmax's key mask: give the mask to the attention alone")


def both(causal: str, bits: str, nodes: list, shapes: dict, tensors: dict) -> str:
    """The step's key mask: its causal row ``causal`` (keys,) times the cached bits ``bits``
    (a view of them as (keys,)), 1 where both keep the key."""
    keys = shapes[causal][-1]
    flat, name = f"{bits}.keys", f"{causal}.and.{bits}"
    if flat not in shapes:
        nodes.append(QNode(flat, "reshape", (bits,), flat, {"shape": (keys,)}))
        shapes[flat], tensors[flat] = (keys,), KEY_MASK
    if name not in shapes:
        q, s = quantize_multiplier(1.0)
        nodes.append(QNode(name, "mul", (causal, flat), name, {},
                           {"multiplier": np.array([q], np.int32),
                            "shift": np.array([s], np.int32)}))
        shapes[name], tensors[name] = (keys,), KEY_MASK
    return name
