"""Elementwise expressions of one activation: what a chain of pointwise ops folds into.

Capture of a sequence model (qasic.quant.lowering_pointwise) keeps a chain of elementwise ops
whose only activation operand is one tensor x (GPT-2's written-out GELU, ``x * sigmoid(x)``,
``0.5 * x``) as one expression tree, and lowers it to a single ``lut`` node: a table of 2^B
entries is exact for any function of one B-bit code, so fusing the chain loses nothing and adds
one rounding instead of one per op.

A tree is a tuple: ``("x",)`` the activation, ``("c", value)`` a constant, ``(op, *children)``
an op of OPS, or ``("fn", name, ((key, value), ...), child)`` a named function of
qasic.quant.functions with its arguments. Trees are plain tuples of strings and numbers, so a
lut's attrs stay data (``fn = "expr"``, ``fn_args = {"expr": tree}``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.special import erf

X = ("x",)


# op -> numpy function of its evaluated children (float64)
OPS: dict[str, Callable[..., np.ndarray]] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.divide,
    "pow": np.power,
    "neg": np.negative,
    "abs": np.abs,
    "exp": np.exp,
    "log": np.log,
    "erf": erf,
    "sqrt": np.sqrt,
    "rsqrt": lambda a: 1.0 / np.sqrt(a),
    "reciprocal": lambda a: 1.0 / a,
    "tanh": np.tanh,
    "sin": np.sin,
    "cos": np.cos,
    "acos": np.arccos,  # YOSO's collision probability 1 - acos(q . k) / pi
    "asin": np.arcsin,
    "atan": np.arctan,
    "remainder": np.mod,  # torch.remainder: the sign of the divisor (CANINE's id hashes)
    "minimum": np.minimum,
    "maximum": np.maximum,
    "expm1": np.expm1,
    # rounding (torch.round: half to even, as np.round; BitNet's per-token fake quantization
    # round(x * 127 / max|x|))
    "round": np.round,
    "floor": np.floor,
    "ceil": np.ceil,
    # comparisons are 1.0 / 0.0; where picks by a comparison (xIELU's two branches)
    "gt": lambda a, b: np.greater(a, b).astype(np.float64),
    "ge": lambda a, b: np.greater_equal(a, b).astype(np.float64),
    "lt": lambda a, b: np.less(a, b).astype(np.float64),
    "le": lambda a, b: np.less_equal(a, b).astype(np.float64),
    "eq": lambda a, b: np.equal(a, b).astype(np.float64),
    "ne": lambda a, b: np.not_equal(a, b).astype(np.float64),
    "where": lambda c, a, b: np.where(c != 0, a, b),
}
# the unary ops of OPS that are aten ops of the same name (aten.<name>.default)
UNARY = ("exp", "expm1", "erf", "sqrt", "rsqrt", "neg", "abs", "reciprocal", "log", "sin", "cos",
         "acos", "asin", "atan", "round", "floor", "ceil")


COMPARISONS = ("gt", "ge", "lt", "le", "eq", "ne")


def indicator(tree: tuple) -> bool:
    """Whether the tree's values are 0 and 1 only: a comparison, or a where() of one between
    the constants 0 and 1."""
    if tree[0] in COMPARISONS:
        return True
    return tree[0] == "where" and all(c[0] == "c" and c[1] in (0.0, 1.0) for c in tree[2:])


def const(value: float) -> tuple:
    return ("c", float(value))


def op(name: str, *children: tuple) -> tuple:
    if name not in OPS:
        raise ValueError(f"pointwise op {name!r} is unknown; known: {', '.join(OPS)}")
    return (name, *children)


def fn(name: str, args: dict, child: tuple) -> tuple:
    return ("fn", name, tuple(sorted(args.items())), child)


def evaluate(tree: tuple, x: np.ndarray) -> np.ndarray:
    """The tree's value at float64 ``x`` (numpy)."""
    from qasic.quant.functions import apply

    head = tree[0]
    if head == "x":
        return np.asarray(x, dtype=np.float64)
    if head == "c":
        return np.float64(tree[1])
    if head == "fn":
        return apply(tree[1], evaluate(tree[3], x), dict(tree[2]))
    with np.errstate(all="ignore"):  # a table entry may be inf or nan; encode saturates
        return OPS[head](*(evaluate(c, x) for c in tree[1:]))


def affine_form(tree: tuple) -> tuple[float, float] | None:
    """(scale, offset) when the tree is x * scale + offset, else None."""
    head = tree[0]
    if head == "x":
        return (1.0, 0.0)
    if head in ("c", "fn") or head not in _AFFINE:
        return None
    return _AFFINE[head](tree[1:])


def _consts(children: tuple) -> tuple[tuple | None, float | None, bool]:
    """(the affine form of the non-constant child, the constant, constant first) of two
    children, one of them constant; (None, None, False) otherwise."""
    a, b = children
    if b[0] == "c" and a[0] != "c":
        return affine_form(a), b[1], False
    if a[0] == "c" and b[0] != "c":
        return affine_form(b), a[1], True
    return None, None, False


def _add(children: tuple, sign: float = 1.0) -> tuple[float, float] | None:
    form, c, first = _consts(children)
    if form is None:
        return None
    s, o = form
    if sign < 0 and first:  # c - x
        return (-s, c - o)
    return (s, o + sign * c)


def _mul(children: tuple) -> tuple[float, float] | None:
    form, c, _ = _consts(children)
    return None if form is None else (form[0] * c, form[1] * c)


def _div(children: tuple) -> tuple[float, float] | None:
    form, c, first = _consts(children)
    if form is None or first or c == 0:
        return None
    return (form[0] / c, form[1] / c)


def _neg(children: tuple) -> tuple[float, float] | None:
    form = affine_form(children[0])
    return None if form is None else (-form[0], -form[1])


_AFFINE = {"add": _add, "sub": lambda ch: _add(ch, -1.0), "mul": _mul, "div": _div, "neg": _neg}


def lut_attrs(tree: tuple) -> dict:
    """The attrs of the lut node that computes ``tree``: the plainest equivalent form (a named
    function of x, an affine map, or the expression itself)."""
    if tree[0] == "fn" and tree[3] == X:
        return {"fn": tree[1], "fn_args": dict(tree[2])}
    form = affine_form(tree)
    if form is not None:
        return {"fn": "affine", "fn_args": {"scale": form[0], "offset": form[1]}}
    return {"fn": "expr", "fn_args": {"expr": tree}}
