"""Pooling at the largest token id: ``h[arange(B), ids.argmax(-1)]``, the text pooling of
OWL-ViT, OWLv2, X-CLIP, OpenCLIP's text tower and CLIP's with the legacy ``eos_token_id`` 2
(every real checkpoint): the end-of-text token has the largest id of the vocabulary. Torch's
argmax returns the first position of the largest id (HF's tokenizer pads with the eos, so the
largest id repeats). The index depends on the ids only: it becomes a one-hot row selection
as the first eos does (qasic.quant.lastpool's ``.select`` matmul by it), computed from the ids
on the accelerator in exact integer codes. Every pair of tokens is compared in one matmul of
two id embeddings:

    P   ``embedding`` of the ids through [127]*n + [1] + [-a_1, ..., -a_n, -r]     (T, 2n + 2)
    Q   ``embedding`` of the ids through [a_1, ..., a_n, r] + [127]*n + [1]        (T, 2n + 2)
        (id = 127 (a_1 + ... + a_n) + r, r = id mod 127, each a_k in 0..127)
    D   ``matmul`` Q P^T: D[j, i] = id_j - id_i (exact in the accumulator), requantized by 1
        to int8 codes of scale 1: the clamp to -128..127 keeps the sign and the zeros
    M   ``maxpool2d`` of D over j (the tokens i along the channels): 0 where no token's id
        exceeds token i's, else >= 1
    e   ``lut`` hat(M) = [M == 0]: the tokens of the largest id
    c   ``matmul`` of the strict lower triangle (T, T) by e: the largest ids before t
    o   ``mul`` e * hat(c): the first token of the largest id (one always has it), which
        selects the row as lastpool's one-hot does

P and Q are exact int8 codes of scale 1, zero point 0 (the matmul's symmetric operands);
n = ceil((vocab - 1) // 127 / 127): 2 for vocabularies up to 32,385 ids, 4 for CLIP's 49,408,
5 for 2^16. The comparison is exact for every input (ties, the largest id repeated as padding,
ids differing in r alone, all ids equal: every token has M = 0 and the first is chosen). Cost
per sample: (2n + 2) T^2 MACs (CLIP's T = 77: 59,290). Refused in one line: more than
MAX_TOKENS tokens, a vocabulary above MAX_VOCAB, an argmax of the ids along another axis or
with keepdim, ids of another layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from qasic.quant import lastpool, lowering_seq, masks
from qasic.quant.encodings import INTEGER_CODES as INTEGER
from qasic.quant.lowering import Act, token_vocab

aten = torch.ops.aten
DIGIT = 127                # the largest int8 code of a symmetric operand
MAX_VOCAB = 1 << 18        # 36 columns per embedding (Gemma's 256,000 ids fit)


@dataclass(frozen=True, eq=False)
class LargestId:
    """(batch,) int: per sample the first token of the largest id among ``keys`` tokens."""

    keys: int
    batch: int
    source: str | None = None  # the ids input (None: the model's input)

    def onehot(self, b: Any, node: Any) -> str:
        """The (T, 1) one-hot of the first token of the largest id (the module doc)."""
        return _onehot(b, node, self)


def handled(refuse: Any) -> Any:
    """The aten.argmax handler: of the token ids over the tokens, a LargestId; else
    ``refuse`` (a value-dependent selection)."""

    def handler(b: Any, node: Any, args: list, kwargs: dict) -> Any:
        if args and isinstance(args[0], Act) and b.is_ids(args[0]) \
                and not masks._mask_input(b, args[0]):  # a runtime mask: its first kept token
            return argmax(b, node, args[0], args, kwargs)
        return refuse(b, node, args, kwargs)

    return handler


def argmax(b: Any, node: Any, ids: Act, args: list, kwargs: dict) -> LargestId:
    """``ids.argmax(dim)`` of the (batch, tokens) ids: the first token of the largest id."""
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    shape = tuple(int(d) for d in node.args[0].meta["val"].shape)
    if dim is None or len(shape) != 2 or dim % 2 != 1 or keepdim \
            or lowering_seq.digit(b, node.args[0]) != (0, 1):
        b.fail(node, f"an argmax of the token ids {list(shape)} (dim {dim}, keepdim "
                     f"{bool(keepdim)}); only over the tokens of (batch, tokens) ids without "
                     "keepdim (ids.argmax(-1): pooling at the largest id)")
    keys = shape[1]
    if keys > lastpool.MAX_TOKENS:
        b.fail(node, f"the largest token id of {keys} tokens; at most {lastpool.MAX_TOKENS} "
                     "(the one-hot's token counts are int8 codes)")
    return LargestId(keys, shape[0], None if ids.name == b.input_name else ids.name)


def digits(vocab: int) -> tuple[np.ndarray, np.ndarray]:
    """The (vocab, 2n + 2) tables P and Q of the module doc: P[i] . Q[j] = j - i."""
    n = max(1, -(-((vocab - 1) // DIGIT) // DIGIT))
    ids = np.arange(vocab)
    high = ids // DIGIT
    parts = np.clip(high[:, None] - DIGIT * np.arange(n)[None, :], 0, DIGIT)  # sum: high
    own = np.concatenate([parts, (ids % DIGIT)[:, None]], axis=1)
    weights = np.broadcast_to(np.array([DIGIT] * n + [1]), own.shape)
    return (np.concatenate([weights, -own], axis=1).astype(np.float64),
            np.concatenate([own, weights], axis=1).astype(np.float64))


def _vocab(b: Any, node: Any, pick: LargestId) -> int:
    from qasic.quant import positions

    vocab = token_vocab(b, node, "pooling at the largest token id") if pick.source is None \
        else positions.vocab(b, node, pick.source)
    if vocab > MAX_VOCAB:
        b.fail(node, f"the largest token id of a vocabulary of {vocab} ids; at most "
                     f"{MAX_VOCAB} (its digit columns grow as the vocabulary / 127^2)")
    return vocab


def _onehot(b: Any, node: Any, pick: LargestId) -> str:
    t, ids = pick.keys, pick.source or b.input_name
    p, q = digits(_vocab(b, node, pick))
    width = p.shape[1]
    left, right = (b.add(node, "embedding", (ids,), {INTEGER: 8}, {"table": table},
                         shape=(t, width), suffix=f".id_{name}")
                   for table, name in ((p, "minus"), (q, "plus")))
    # D (j, i): token i's comparisons along W, the tokens i along the channels, which the
    # pool unit runs side by side (pooled as T rows of one channel: 5x the cycles at T = 77)
    d = b.add(node, "matmul", (right.name, left.name), {"transpose_b": True, "alpha": 1.0,
                                                        INTEGER: 8},
              shape=(t, t), suffix=".id_diff")
    image = b.add(node, "reshape", (d.name,), {"shape": (1, t, t)}, shape=(1, t, t),
                  suffix=".id_diff_image")
    most = b.add(node, "maxpool2d", (image.name,), {"kernel": (1, t), "stride": (1, t),
                                                     "padding": (0, 0, 0, 0)},
                 shape=(1, 1, t), suffix=".id_exceeded")
    column = b.add(node, "reshape", (most.name,), {"shape": (t, 1)}, shape=(t, 1),
                   suffix=".id_exceeded_rows")
    e = b.add(node, "lut", (column.name,), {"fn": "hat", INTEGER: 8}, shape=(t, 1),
              suffix=".largest")
    before = b.add(node, "constant", (), {}, {"value": np.tril(np.ones((t, t)), -1)},
                   shape=(t, t), suffix=".before")
    count = {INTEGER: 8, lastpool.ZERO_POINT: 0 if t <= 128 else -128}
    c = b.add(node, "matmul", (before.name, e.name), {"transpose_b": False, "alpha": 1.0,
                                                       **count}, shape=(t, 1),
              suffix=".count_before")
    z = b.add(node, "lut", (c.name,), {"fn": "hat", INTEGER: 8}, shape=(t, 1),
              suffix=".none_before")
    return b.add(node, "mul", (e.name, z.name), {INTEGER: 8}, shape=(t, 1),
                 suffix=".onehot").name


SUPPORTED = (("x[arange(batch), ids.argmax(-1)] (pooling at the largest token id, the first on "
              "ties: OWL-ViT, X-CLIP, OpenCLIP, CLIP's legacy eos 2) and x[arange(batch), "
              "(ids == eos).int().argmax(-1)] (at the first eos): a one-hot selection from the "
              f"ids; at most {lastpool.MAX_TOKENS} tokens, {MAX_VOCAB} ids"),)
