"""Float functions of one activation, by name: what a ``lut`` node computes.

The float executor applies FUNCTIONS[fn](x, **fn_args) to float64 values; the quantizer builds a
lut's table from the same function (table[i] = out.encode(f(in.decode(code_i)))), so the two
agree code for code on fake-quantized inputs. Formulas follow torch's definitions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.special import erf  # math.erf to ~1 ulp, vectorized (scikit-learn needs scipy)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # stable for any |x|


def _gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _softplus(x: np.ndarray, beta: float = 1.0, threshold: float = 20.0) -> np.ndarray:
    # torch: x where beta x > threshold, else log(1 + exp(beta x)) / beta (Mamba's time step)
    bx = beta * x
    return np.where(bx > threshold, x, np.logaddexp(0.0, np.minimum(bx, threshold)) / beta)


def _elu(x: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0.0)))


FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "requant": lambda x: x,  # identity: a change of encoding (e.g. onto a concat's TensorQ)
    "hardtanh": lambda x, min_val=-1.0, max_val=1.0: np.clip(x, min_val, max_val),
    "hardsigmoid": lambda x: np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "hardswish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "sigmoid": _sigmoid,
    "silu": lambda x: x * _sigmoid(x),
    "tanh": np.tanh,
    "gelu": _gelu,
    "leaky_relu": lambda x, negative_slope=0.01: np.where(x >= 0, x, negative_slope * x),
    "elu": _elu,
    "softplus": _softplus,
    "log_sigmoid": lambda x: -np.logaddexp(0.0, -x),  # xLSTM's forget gates, stable for any x
    # x shrunk toward 0 by lambd, 0 inside [-lambd, lambd] (AFNO's sparsity on its spectrum)
    "softshrink": lambda x, lambd=0.5: x - np.clip(x, -lambd, lambd),
    "hat": lambda x: np.maximum(0.0, 1.0 - np.abs(x)),  # one-hot of integers (quant.positions)
    # nearest-pixel weight of a distance in pixels (quant.grid_sample's 'nearest')
    "box": lambda x: (np.abs(x) < 0.5).astype(np.float64),
    "affine": lambda x, scale=1.0, offset=0.0: x * scale + offset,  # x * c, x + c, x / c
    "expr": lambda x, expr: _expr(expr, x),  # a fused chain of pointwise ops (quant.pointwise)
    # values[n] of an integer count n in 0..len - 1 (quant.lengths: a mean's 1 / tokens)
    "table": lambda x, values: np.asarray(values, np.float64)[
        np.clip(np.rint(x), 0, len(values) - 1).astype(np.int64)],
}


def _expr(tree: tuple, x: np.ndarray) -> np.ndarray:
    from qasic.quant.pointwise import evaluate

    return evaluate(tree, x)


def apply(fn: str, x: np.ndarray, fn_args: dict | None = None) -> np.ndarray:
    """FUNCTIONS[fn] on float64 ``x``."""
    return FUNCTIONS[fn](np.asarray(x, dtype=np.float64), **(fn_args or {}))
