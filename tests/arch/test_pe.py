"""Shift-add PEs: levels split exactly; the design point picks the cheaper PE."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from qasic.arch.config import arch_from_dict, default_arch
from qasic.arch.pe import MAX_SHIFT_BITS, fits, significand_bits, split
from qasic.errors import ConfigError
from qasic.quant.formats import get_format, integer_levels
from qasic.sim.energy import EnergyModel


def levels(name: str) -> np.ndarray:
    return integer_levels(get_format(name).element).levels


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "int8"])
@pytest.mark.parametrize("shift_bits", range(MAX_SHIFT_BITS + 1))
def test_split_is_exact_and_respects_the_shift_cap(name, shift_bits):
    lv = levels(name)
    sig, sh = split(lv, shift_bits)
    np.testing.assert_array_equal(sig << sh, lv)
    assert sh.min() >= 0 and sh.max() <= (1 << shift_bits) - 1


def test_significand_widths_of_the_minifloats():
    assert [significand_bits(levels("fp8_e4m3"), s) for s in range(6)] == [19, 18, 16, 12, 5, 5]
    assert significand_bits(levels("fp4_e2m1"), 0) == 5
    assert significand_bits(np.array([-8, 7]), 0) == 4 and significand_bits(np.array([0]), 3) == 2
    assert fits(levels("fp8_e4m3"), 5, 4) and not fits(levels("fp8_e4m3"), 4, 4)


def test_mac_prices_follow_the_cited_format_ratios():
    """FP8 E4M3 1.0-1.6x an INT8 MAC on shift-add PEs (2x decoded to 19-bit integers);
    FP4 ~ INT4 on 5-bit integer PEs (docs/energy.md)."""
    e = EnergyModel(default_arch())
    int8, int4 = e.mac_pj(8, 8), e.mac_pj(8, 4)
    assert 1.0 <= e.mac_pj(8, 5, 4) / int8 <= 1.6
    assert e.mac_pj(8, 19) / int8 > 1.9
    assert 1.0 < e.mac_pj(8, 5) / int4 < 1.25
    assert e.mac_pj(8, 8, 0) == pytest.approx(e.mac_pj(8, 8))  # shift 0 is the integer PE


def test_weight_shift_bits_is_optional_and_validated():
    with pytest.raises(ConfigError, match="array.weight_shift_bits = 6 must be in 0..5"):
        dataclasses.replace(default_arch(), weight_shift_bits=6)
    toml = {"name": "x", "array": {"rows": 4, "cols": 4, "dataflow": "weight_stationary",
                                   "input_bits": 8, "weight_bits": 8, "acc_bits": 32,
                                   "gemm_max_rows": 8},
            "sram": {"input_bytes": 1024, "weight_bytes": 1024, "acc_bytes": 1024,
                     "output_bytes": 1024, "param_bytes": 1024},
            "dram": {"bytes_per_cycle": 8, "latency_cycles": 10}, "clock": {"mhz": 100},
            "tech": {"node_nm": 45, "energy_table": "energy_45nm.toml"}}
    assert arch_from_dict(toml).weight_shift_bits == 0
