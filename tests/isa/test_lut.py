"""GEMM decode-table entries (isa.lut): sig << shift words hold every format's levels exactly."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

from qasic.arch.config import default_arch
from qasic.errors import ProgramFormatError
from qasic.isa import lut
from qasic.isa.encoding import assemble
from qasic.isa.program import Program, Region
from qasic.isa.table import LUT_ENTRY_BYTES, LUT_MAX_SHIFT
from qasic.quant.formats import get_format, integer_levels
from qasic.quant.weights import CODEBOOK_FRAC_BITS
from qasic.sim.kernels import _lut_level
from qasic.sim.machine import Machine

E5M2 = integer_levels(get_format("fp8_e5m2").element)
NARROW = ("fp8_e4m3", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "fp8_e1m6", "fp6_e4m1", "fp4_e3m0")


def test_every_e5m2_code_decodes_to_its_exact_level():
    """Against ml_dtypes: level * 2^-16 is the value; inf saturates to +-57344, NaN gives 0."""
    codes = np.arange(256, dtype=np.uint8)
    v = codes.view(ml_dtypes.float8_e5m2).astype(np.float64)
    v = np.where(np.isnan(v), 0.0, np.where(np.isinf(v), np.sign(v) * 57344.0, v))
    want = (v * 2.0**16).astype(np.int64)
    entries = lut.encode(E5M2.levels)
    assert E5M2.lsb == 2.0**-16 and E5M2.width == 33
    np.testing.assert_array_equal(lut.decode(entries), want)
    assert lut.shifts(entries).max() == 9  # 57344 << 16 = 7 << 29: significand 7 << 20
    assert int(entries[0x7B]) == 0x70000009 and int(entries[0xFB]) == 0x90000009  # -(7 << 20)


@pytest.mark.parametrize("name", NARROW + ("int8_asym", "nf4", "nupes4"))
def test_levels_of_24_bits_or_fewer_are_stored_unshifted(name):
    """Every other format: shift 0 and the level itself as the significand (values unchanged
    from the int32 table of Program version 2, whose word was the level)."""
    spec = get_format(name)
    if name.startswith("int"):
        levels = spec.element.table.astype(np.int64) - 3  # q - z with a zero point
    elif name in NARROW:
        levels = integer_levels(spec.element).levels
    else:
        levels = integer_levels(spec.element, CODEBOOK_FRAC_BITS).levels
    entries = lut.encode(levels)
    np.testing.assert_array_equal(lut.shifts(entries), 0)
    np.testing.assert_array_equal(entries.view(np.int32) >> 8, levels)
    np.testing.assert_array_equal(lut.decode(entries), levels)


def test_encoder_takes_the_smallest_shift_and_refuses_what_no_entry_holds():
    top = 1 << 23  # the first level a 24-bit significand misses
    levels = np.array([top - 1, -top, top, -top - 2, 3 << 40, -(1 << 54)])
    np.testing.assert_array_equal(lut.entry_shifts(levels), [0, 0, 1, 1, 19, 31])
    np.testing.assert_array_equal(lut.decode(lut.encode(levels)), levels)
    assert lut.misfit(levels) is None
    assert lut.misfit(np.array([5, top + 1])) == top + 1  # odd: no shift leaves it exact
    assert lut.misfit(np.array([1 << 55])) == 1 << 55     # shift 32 > LUT_MAX_SHIFT
    with pytest.raises(ValueError, match=r"level 8388609 does not fit a decode-table entry \(a "
                                         r"24-bit significand shifted by 0\.\.31\)"):
        lut.encode(np.array([top + 1]))


def test_numba_kernel_decodes_entries_like_isa_lut():
    entries = lut.encode(np.concatenate([E5M2.levels, [(1 << 23) - 1, -(1 << 54)]]))
    par = entries.astype("<u4").view(np.uint8).reshape(1, -1)
    got = [_lut_level(par, 0, LUT_ENTRY_BYTES * i) for i in range(len(entries))]
    np.testing.assert_array_equal(got, lut.decode(entries))


def test_simulator_refuses_a_shift_field_past_the_limit():
    arch = default_arch()
    regions = (Region("x", 0, 1024, "input", (1, 1, 1024, 0)),
               Region("constants", 1024, 0, "constants"))
    instrs = tuple(assemble("GEMM lines=1 rows=1 k=1 n=1 wbits=2 lut=1 lut_addr=64\nEND"))
    m = Machine(Program(instrs, (0,) * len(instrs), b"", regions), arch, batch=1)
    m.mem["param"][0, 64 + 4 * 2] = LUT_MAX_SHIFT + 1  # entry 2: sig 0, shift 32
    with pytest.raises(ProgramFormatError, match=r"^instruction 0 \(GEMM\): decode-table entry 2 "
                                                 r"\(param byte 72, batch 0\) has shift field "
                                                 r"32 > 31$"):
        m.run()
