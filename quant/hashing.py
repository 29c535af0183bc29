"""Embeddings of hashed token ids: CANINE's ``embedding_i(((ids + 1) * prime_i) % buckets)``.

Capture follows the arithmetic on the ids symbolically (a Pointwise tree of the input,
qasic.quant.lowering_pointwise); an embedding reading such a tree reads the ids themselves
through a composed table, ``rows[i] = table[f(i)]``. ``f`` must end in a remainder by a
positive integer m of an integer affine map ``s x + o``: it repeats every ``P = m / gcd(s, m)``
ids, so P rows give every id below P exactly (f(i) for i < P is every value f takes); the
GATHER has no modulo, so an id of P or more is the embedding's one-line out-of-range error
(CANINE with 16,384 buckets and odd primes: the code points below U+4000).
"""

from __future__ import annotations

import math

import numpy as np

from qasic.quant import pointwise as pw


def period(tree: tuple) -> int | None:
    """P for a tree ``remainder(s x + o, m)`` with integers s, o and m > 0; else None."""
    if tree[0] != "remainder" or tree[2][0] != "c":
        return None
    m, form = tree[2][1], pw.affine_form(tree[1])
    if form is None or m <= 0 or not all(float(v).is_integer() for v in (*form, m)):
        return None
    return int(m) // math.gcd(int(form[0]), int(m))


def composed(table: np.ndarray, tree: tuple, vocab: int = 0) -> np.ndarray | None:
    """The rows ``table[f(i)]`` for the ids i below f's period, or below ``vocab`` when that is
    larger (the rows of a table the same ids index directly: DeepCTR's DIN embeds an item id
    and its category ``id % 20``, so every item id has its category row), or None when
    ``tree`` is no such hash (module docstring) or takes values outside the table."""
    p = period(tree)
    if p is None:
        return None
    index = pw.evaluate(tree, np.arange(max(p, vocab), dtype=np.float64))
    if index.min() < 0 or index.max() >= len(table):
        return None
    return table[index.astype(np.int64)]
