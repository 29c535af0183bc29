from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import ConfigError
from qasic.quant.formats import (
    FP4_E2M1,
    FP8_E4M3,
    NF4,
    FormatSpec,
    IntFormat,
    MXBlock,
    PerChannel,
    PerGroup,
    PerTensor,
    format_names,
    get_format,
    quantize_tensor,
)

REQUIRED = [f"int{b}" for b in range(2, 9)] + ["int4_asym", "fp8_e4m3", "fp8_e5m2", "fp6_e3m2",
            "fp6_e2m3", "fp4_e2m1", "nf4", "mxfp8_e4m3", "mxfp6_e3m2", "mxfp6_e2m3", "mxfp4",
            "nupes4"]


def test_required_names_exist():
    assert set(REQUIRED) <= set(format_names())


@pytest.mark.parametrize("name", format_names())
def test_every_name_quantizes(name):
    x = np.random.default_rng(0).standard_normal((4, 64))
    qt = quantize_tensor(x, name)
    assert qt.codes.shape == x.shape and qt.fmt == get_format(name).element


def test_specs():
    assert get_format("int4") == FormatSpec("int4", IntFormat(4), PerChannel())
    assert get_format("int8_asym") == FormatSpec("int8_asym", IntFormat(8, symmetric=False),
                                                 PerTensor())
    assert get_format("mxfp4") == FormatSpec("mxfp4", FP4_E2M1, MXBlock(32))
    assert get_format("mxfp8_e4m3").element == FP8_E4M3
    assert get_format("nf4") == FormatSpec("nf4", NF4, PerGroup(64))
    assert get_format("int4_g32").granularity == PerGroup(32)
    assert get_format("mxfp4_g16").granularity == MXBlock(16)


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(ConfigError) as e:
        get_format("fp7")
    msg = str(e.value)
    assert msg.startswith("unknown number format 'fp7': allowed int2, int3, ")
    assert msg.endswith(", mxfp4; each optionally with _g<group size> (e.g. int4_g32)")
    for name in format_names():
        assert f" {name}," in msg or f" {name};" in msg


@pytest.mark.parametrize("name", ["int9", "int1_asym", "int16_g32"])
def test_int_bits_out_of_range(name):
    with pytest.raises(ConfigError, match=f"number format '{name}': .* bits is out of range: "
                                          r"integer formats have 2\.\.8 bits"):
        get_format(name)
