"""The accumulator proof of a GEMM layer: |sum x w| + |bias| < 2**(acc_bits-1) for every output
channel, else one refusal naming the layer, the width it needs and why.

Quantization does not see the arch: one quantized graph is compiled for many arches (a sweep's
bits x arch), and ``qasic evaluate --fit-arch`` sizes the arch from the quantized graph. So a
bias is sized for a 32-bit accumulator (every built-in arch's): at most
qasic.quant.quantize.BIAS_UNITS = 2**30 accumulator units, the other half of the range left to
the products. An ordinary layer's bias is ~1e3-1e4 units; only a bias over an input calibrated
to an almost-zero range reaches 2**29 (INT weights: the floor of bias_weight_scales; FP8
weights: no floor, more). A narrower arch is refused here with the width the layer needs.
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.compiler.gemm import GemmKernel
from qasic.errors import ConfigError

# a bias of at least this many units is one over a vanishing input, never an ordinary layer's
VANISHING_BIAS_UNITS = 1 << 29  # BIAS_UNITS / 2: INT weights' floored biases sit at BIAS_UNITS


def least_acc_bits(worst: int) -> int:
    """The narrowest two's complement accumulator holding +-``worst``."""
    return int(worst).bit_length() + 1


def overflow(arch: ArchConfig, layer: str, worst: int, why: str = "") -> ConfigError:
    """The refusal of ``layer`` whose |acc| reaches ``worst`` on ``arch``."""
    return ConfigError(
        f"arch config: array.acc_bits = {arch.acc_bits} can overflow in layer {layer} (worst "
        f"case |acc| = {worst}){why}; raise array.acc_bits to at least {least_acc_bits(worst)}")


def check_gemm(g: GemmKernel, arch: ArchConfig, x_max: int, src: tuple | None = None) -> None:
    """Prove the array's accumulator cannot overflow: |sum x w| + |bias| < 2**(acc_bits-1),
    with |x| <= x_max (128 for int8 codes, the largest level for FP8). ``src``: (the input
    tensor, its encoding), named when the bias alone is one over a vanishing input (its units
    are the input's scale times the weights')."""
    worst = max(int((x_max * np.abs(g.effective(b)).sum(axis=0) + np.abs(b.bias)).max())
                for b in g.blocks)
    if worst < 1 << (arch.acc_bits - 1):
        return
    bias = max(int(np.abs(b.bias).max(initial=0)) for b in g.blocks)
    why = ""
    if src is not None and bias >= max(VANISHING_BIAS_UNITS, 1 << (arch.acc_bits - 1)):
        name, tq = src
        why = (f": its bias alone is {bias} accumulator units, because its input '{name}' "
               f"was calibrated to an almost-zero range (scale {tq.scale:.3g}): the model's "
               "activations vanish there; check its weights or calibration data")
    elif bias >= 1 << (arch.acc_bits - 1):
        why = f": its bias alone is {bias} accumulator units"
    raise overflow(arch, g.name, worst, why)
