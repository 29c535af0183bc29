"""docs/hardware_formats.md is generated, and its prices keep the cited ratios."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from qasic.isa.table import ACT_FORMATS
from qasic.reports.hwformats import activation_rows, render, weight_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "hardware_formats.md"


def test_checked_in_doc_is_generated():
    text = render()
    if os.environ.get("QASIC_UPDATE_GOLDEN") == "1":
        DOC.write_text(text)
    assert DOC.read_text() == text, ("docs/hardware_formats.md is stale: run python -m "
                                     "qasic.reports.hwformats --write docs/hardware_formats.md")


@pytest.fixture(scope="module")
def rows():
    return {r.name: r for r in weight_rows()}


def test_mac_prices_follow_the_cited_format_ratios(rows):
    assert 1.0 <= rows["fp8_e4m3"].mac_vs_int8 <= 1.6
    assert rows["mxfp4"].mac_vs_int8 / rows["int4"].mac_vs_int8 < 1.2  # FP4 ~ INT4 in block FP
    assert rows["int2"].mac_vs_int8 < rows["int4"].mac_vs_int8 < rows["int8"].mac_vs_int8


def test_fp8_e5m2_gets_a_4_bit_shift_add_pe_priced_above_e4m3(rows):
    """E5M2: 1.mm significands (4 bits signed) shifted by 0..31 (5 shift bits): a narrower
    multiplier than E4M3's 5-bit one, a wider shifter and adder, dearer in total."""
    e5, e4 = rows["fp8_e5m2"], rows["fp8_e4m3"]
    assert (e5.pe, e5.note) == ("4-bit x shift 0..31", "decoded via table")
    # the cited FP8 MAC range is 1.0-1.6x INT8: shifts up to 31 put E5M2 at its top
    assert e4.mac_vs_int8 < e5.mac_vs_int8 < 1.65


def test_mx_and_group_scales_are_stored(rows):
    assert rows["mxfp4"].stored_bits == 4.25 and rows["nf4"].stored_bits == 4.125
    assert rows["int4_g32"].stored_bits == 4.25 and rows["int4"].stored_bits == 4


def test_fp8_activations_get_shift_add_pes_in_the_cited_range():
    """E4M3 activations: 5-bit significands shifted 0..15; E3M4 (one exponent bit fewer, one
    mantissa bit more): 6-bit significands shifted 0..7, a wider multiplier but a narrower
    shifter and adder, cheaper in total; both inside the cited 1.0-1.6x INT8."""
    acts = {name: (pe, mac) for name, _, pe, mac in activation_rows()}
    assert set(ACT_FORMATS[1:]) <= set(acts)
    assert acts["fp8_e4m3"][0] == "5-bit x shift 0..15"
    assert acts["fp8_e3m4"][0] == "6-bit x shift 0..7"
    assert 1.0 <= acts["fp8_e3m4"][1] < acts["fp8_e4m3"][1] <= 1.6
