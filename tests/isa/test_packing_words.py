"""pack_bits / unpack_bits of whole-byte codes (8, 16, 32 bits) take a numpy cast; the bytes are
those of the general bit loop (little-endian bit order, two's complement, low bits kept)."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.isa import packing


def bit_loop(codes: np.ndarray, bits: int) -> bytes:
    """The general path: pack_bits as it runs for widths that are not whole bytes."""
    saved = packing.WHOLE_BYTES.pop(bits)
    try:
        return packing.pack_bits(codes, bits)
    finally:
        packing.WHOLE_BYTES[bits] = saved


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_whole_byte_codes_pack_as_the_bit_loop(bits):
    rng = np.random.default_rng(bits)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    codes = rng.integers(lo, hi + 1, (5, 7))
    codes[0, :2] = lo, hi
    blob = packing.pack_bits(codes, bits)
    assert blob == bit_loop(codes, bits)
    np.testing.assert_array_equal(packing.unpack_bits(blob, 5, 7, bits), codes)


def test_codes_outside_the_width_keep_their_low_bits():
    codes = np.array([[256 + 5, -129, 1 << 40]])
    assert packing.pack_bits(codes, 8) == bit_loop(codes, 8) == bytes([5, 127, 0])
