from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError, InputError
from qasic.quant.formats import IntFormat


def test_symmetric_range_rounding_and_saturation():
    f = IntFormat(4)
    assert (f.qmin, f.qmax, f.name) == (-7, 7, "int4")
    x = np.array([0.5, 1.5, 2.5, -0.5, -2.5, 6.6, 100.0, -100.0, np.inf, -np.inf])
    assert list(f.decode(f.encode(x))) == [0, 2, 2, 0, -2, 7, 7, -7, 7, -7]  # ties to even


def test_codes_are_twos_complement_bit_patterns():
    f = IntFormat(4)
    assert list(f.encode(np.array([-7, -1, 0, 1, 7]))) == [9, 15, 0, 1, 7]
    assert list(IntFormat(8).decode(np.array([0, 127, 128, 129, 255]))) == [0, 127, -128, -127, -1]
    assert f.encode(np.arange(-20, 20)).dtype == np.uint8


def test_asymmetric_is_signed_with_the_full_range():
    f = IntFormat(4, symmetric=False)
    assert (f.qmin, f.qmax, f.name, f.has_zero_point) == (-8, 7, "int4_asym", True)
    assert list(f.decode(f.encode(np.array([-100.0, -8.0, 7.0])))) == [-8, -8, 7]


def test_unsigned():
    f = IntFormat(2, signed=False)
    assert (f.qmin, f.qmax, f.name) == (0, 3, "uint2")
    assert list(f.decode(f.encode(np.array([-1.0, 1.5, 9.0])))) == [0, 2, 3]


@pytest.mark.parametrize("bits", [1, 9, 2.0, True])
def test_bits_out_of_range(bits):
    with pytest.raises(ConfigError, match=f"IntFormat bits = {bits!r} is out of range: "
                                          r"allowed integers 2\.\.8"):
        IntFormat(bits)


def test_nan_is_refused():
    with pytest.raises(InputError, match="cannot encode NaN to int8"):
        IntFormat(8).encode(np.nan)
