"""LLM-FP4's format search (Liu et al. 2023) for per-channel weights on the integer array.

For a weight tensor (output channels on axis 0) and a total bit budget (1 sign + e + m bits),
try every exponent/mantissa split in SPLITS[bits] and, per output channel, a real-valued
exponent bias, and keep the split with the least ||Q(W) - W||^2.

A per-channel real bias b scales the format by 2^-b, which is a per-channel scale
``s = 2^-b``: the search tries s = r * max|w[c]| / max_value for r in {1/grid, ..., 1} and keeps
the best r per channel. That is exactly ``quantize_tensor(w, spec, clip="mse")``, so the hardware
path (``quant.weights.quantize_weights(w, name, "mse")``, which ``QuantConfig`` uses for weights
of <= 4 bits under weight_clipping="auto") reproduces the searched scales bit for bit. With
``clip="minmax"`` only r = 1 is tried (the max-abs scale, the format's own integer bias).
Scales above max-abs (r > 1) are not tried: nothing saturates there, and the hardware path
could not reproduce them.

Every candidate is a per-channel minifloat with no inf/NaN (OCP MX style; except the OCP
presets fp8_e4m3 and fp8_e5m2, whose NaN/inf codes the saturating encoder never produces) and
exact integer levels (``formats.integer_levels``) that a decode-table entry holds, so a searched
format runs on the array through the GEMM's decode table (E5M2's 33-bit levels on shift-add
PEs). E1M(b-2) is the uniform INT(b) grid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from qasic.errors import ConfigError
from qasic.quant.fgraph import FGraph
from qasic.quant.formats import dequantize, quantize_tensor
from qasic.quant.formats.scales import MSE_GRID
from qasic.quant.weights import hardware_format

# bit budget -> candidate formats; a tie keeps the earlier one (fewer exponent bits)
SPLITS = {
    4: ("fp4_e1m2", "fp4_e2m1", "fp4_e3m0"),
    6: ("fp6_e1m4", "fp6_e2m3", "fp6_e3m2", "fp6_e4m1"),
    # E5M2 (33-bit levels, shifted decode-table entries) is searched too; the squared error
    # hardly sees the small weights its range adds, so it wins only on rare, wide channels
    8: ("fp8_e1m6", "fp8_e2m5", "fp8_e3m4", "fp8_e4m3", "fp8_e5m2"),
}


@dataclass(frozen=True, eq=False)
class FormatChoice:
    """The search's result for one tensor. ``mse`` is the mean squared error per element;
    ``scales`` (one per output channel) give the real-valued bias -log2(scale)."""

    name: str
    scales: np.ndarray
    mse: float
    mse_by_format: Mapping[str, float]


def search(w: np.ndarray, bits: int, clip: str = "mse", grid: int = MSE_GRID) -> FormatChoice:
    """Best split of ``bits`` and its per-channel scales for ``w`` (shape (C, ...))."""
    best, mses = None, {}
    for name in _candidates(bits):
        qt = quantize_tensor(w, hardware_format(name), clip=clip, mse_grid=grid)
        mses[name] = float(np.mean((dequantize(qt) - np.asarray(w, dtype=np.float64)) ** 2))
        if best is None or mses[name] < mses[best[0]]:
            best = (name, qt.scales)
    return FormatChoice(best[0], best[1], mses[best[0]], mses)


def search_format(w: np.ndarray, bits: int, clip: str = "mse") -> tuple[str, float]:
    """(format name, mean squared error) of the best split of ``bits`` for ``w``."""
    choice = search(w, bits, clip)
    return choice.name, choice.mse


def search_model_formats(graph: FGraph, bits: int, clip: str = "mse") -> dict[str, str]:
    """{layer: format name} for every weighted layer of ``graph``, ready for
    ``QuantConfig(weight_format=...)``. Use the same ``clip`` as the config's weight clipping
    (weight_clipping="auto" is "mse" at <= 4 bits, "minmax" above)."""
    return {n.name: search_format(n.params["weight"], bits, clip)[0]
            for n in graph.weighted_nodes()}


def _candidates(bits: int) -> tuple[str, ...]:
    if bits not in SPLITS:
        raise ConfigError(f"format search bits = {bits!r} is unsupported: allowed "
                          f"{', '.join(map(str, SPLITS))}")
    return SPLITS[bits]
