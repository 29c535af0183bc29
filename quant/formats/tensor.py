"""Quantize a whole tensor: element format x granularity x scale rule -> QuantizedTensor.

``real ~= dequantize(quantize_tensor(real, ...))``, with ``real = scale * (decode(code) - zp)``
per element, scale and zero point being those of the element's block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import InputError
from qasic.quant.formats.granularity import Granularity, PerTensor, to_blocks
from qasic.quant.formats.registry import FormatSpec, get_format
from qasic.quant.formats.scales import (
    MSE_GRID,
    ElementFormat,
    choose_scales,
    decode_blocks,
    encode_blocks,
)


@dataclass(frozen=True, eq=False)
class QuantizedTensor:
    """codes: uint8, ``shape``; scales: float64, ``granularity.scale_shape(shape)``;
    zero_points: int64 like scales, only for asymmetric integer formats. Arrays are read-only."""

    codes: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray | None
    fmt: ElementFormat
    granularity: Granularity
    shape: tuple[int, ...]

    def __post_init__(self) -> None:
        for a in (self.codes, self.scales, self.zero_points):
            if a is not None:
                a.flags.writeable = False


def quantize_tensor(w: np.ndarray, fmt: ElementFormat | FormatSpec | str,
                    granularity: Granularity | None = None, clip: str = "minmax",
                    mse_grid: int = MSE_GRID) -> QuantizedTensor:
    """Quantize ``w`` (any float array). ``fmt`` is an element format or a registry name/spec;
    ``granularity`` defaults to the spec's (PerTensor for a bare element format). ``clip``:
    'minmax' (the full range maps to the format's max) or 'mse' (scales.py)."""
    element, gran = _resolve(fmt, granularity)
    x = _checked(w, element.name)
    blocks = to_blocks(x, gran)
    scales, zps = choose_scales(blocks, element, gran, clip, mse_grid)
    codes = encode_blocks(blocks, element, scales, zps).reshape(x.shape)
    sshape = gran.scale_shape(x.shape)
    return QuantizedTensor(codes, scales.reshape(sshape),
                           None if zps is None else zps.reshape(sshape), element, gran, x.shape)


def dequantize(qt: QuantizedTensor) -> np.ndarray:
    """float64 array of ``qt.shape``."""
    codes = to_blocks(qt.codes, qt.granularity)
    zps = None if qt.zero_points is None else qt.zero_points.reshape(-1)
    return decode_blocks(codes, qt.fmt, qt.scales.reshape(-1), zps).reshape(qt.shape)


def _resolve(fmt: ElementFormat | FormatSpec | str,
             granularity: Granularity | None) -> tuple[ElementFormat, Granularity]:
    spec = get_format(fmt) if isinstance(fmt, str) else fmt
    if isinstance(spec, FormatSpec):
        return spec.element, spec.granularity if granularity is None else granularity
    return spec, PerTensor() if granularity is None else granularity


def _checked(w: np.ndarray, fmt_name: str) -> np.ndarray:
    x = np.asarray(w.detach().cpu().numpy() if hasattr(w, "detach") else w, dtype=np.float64)
    if x.size == 0:
        raise InputError(f"cannot quantize an empty tensor of shape {x.shape} to {fmt_name}")
    bad = x.size - int(np.count_nonzero(np.isfinite(x)))
    if bad:
        raise InputError(f"cannot quantize to {fmt_name}: the tensor holds {bad} NaN or inf "
                         "value(s), which have no scale; remove or replace them")
    return x
