"""Granularity: which elements share one scale. Small frozen configs; each knows the shape of its
scale array, and ``to_blocks`` views a tensor as (number of scales, elements per scale).

Groups and MX blocks run along the **last** axis (the input / reduction axis of a (out, in)
weight); channels are axis 0 (the output channel). Reshape a conv weight to 2-D first if its
groups should span channels and taps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qasic.errors import ConfigError, InputError

SCALE_BITS = 16  # a float scale is counted as fp16/bf16 storage
E8M0_BITS = 8    # an MX shared scale


@dataclass(frozen=True)
class PerTensor:
    scale_bits: int = SCALE_BITS

    label = "tensor"

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return ()


@dataclass(frozen=True)
class PerChannel:
    """One scale per index of axis 0 (the output channel)."""

    scale_bits: int = SCALE_BITS

    label = "channel"

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        _need_axes(shape, "per-channel")
        return shape[:1]


@dataclass(frozen=True)
class PerGroup:
    """One scale per ``group_size`` consecutive elements of the last axis."""

    group_size: int
    scale_bits: int = SCALE_BITS

    def __post_init__(self) -> None:
        _check_size("group size", self.group_size)

    @property
    def label(self) -> str:
        return f"group {self.group_size}"

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _blocked(shape, self.group_size, "group size")


@dataclass(frozen=True)
class MXBlock:
    """OCP MX: ``block_size`` (32 in the spec) consecutive elements of the last axis share an
    E8M0 power-of-two scale (``scales.mx_shared_exponent``)."""

    block_size: int = 32

    scale_bits = E8M0_BITS

    def __post_init__(self) -> None:
        _check_size("MX block size", self.block_size)

    @property
    def label(self) -> str:
        return f"MX block {self.block_size}"

    def scale_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return _blocked(shape, self.block_size, "MX block size")


Granularity = PerTensor | PerChannel | PerGroup | MXBlock


def to_blocks(x: np.ndarray, gran: Granularity) -> np.ndarray:
    """(n_scales, elements per scale) view of ``x``, rows in the order of the scale array."""
    return x.reshape(math.prod(gran.scale_shape(x.shape)), -1)


def _need_axes(shape: tuple[int, ...], what: str) -> None:
    if len(shape) == 0:
        raise InputError(f"{what} quantization needs a tensor with at least one axis, got a "
                         "scalar")


def _blocked(shape: tuple[int, ...], size: int, what: str) -> tuple[int, ...]:
    _need_axes(shape, what)
    n = shape[-1]
    if n % size:
        raise ConfigError(f"{what} {size} does not divide the last-axis size {n} of a tensor "
                          f"of shape {tuple(shape)}; use a divisor of {n}, e.g. "
                          f"{', '.join(map(str, _divisors_near(n, size)))}")
    return (*shape[:-1], n // size)


def _divisors_near(n: int, size: int, k: int = 4) -> list[int]:
    divisors = [d for d in range(1, n + 1) if n % d == 0]
    return sorted(sorted(divisors, key=lambda d: abs(d - size))[:k])


def _check_size(what: str, v: object) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"{what} = {v!r} must be a positive integer")
