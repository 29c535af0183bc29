"""Energy: bit-width sets the price, and every number has a unit and a source."""

from __future__ import annotations

import dataclasses
import itertools
import re
import tomllib

import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import ConfigError
from qasic.isa.encoding import Instr
from qasic.sim.energy import REQUIRED, EnergyModel, load_table
from qasic.sim.run import simulate
from tests.graphs import cnn_graph, random_codes

ARCH = default_arch()
TABLE = ARCH.energy_table_path()


@pytest.fixture(scope="module")
def model() -> EnergyModel:
    return EnergyModel(ARCH)


def test_mac_energy_strictly_rises_with_weight_bits(model):
    prices = [model.mac_pj(8, w) for w in range(2, 9)]
    assert all(a < b for a, b in itertools.pairwise(prices)), prices
    assert model.mac_pj(8, 4) < model.mac_pj(8, 8) / 1.5
    assert model.mac_pj(4, 8) < model.mac_pj(8, 8)


def test_mac_energy_matches_the_bit_fusion_fit(model):
    # 0.0031 a w + 0.0035 (a + w + 8) + 0.008 (a + w) / 2, at 45 nm (scale 1.0)
    assert model.mac_pj(8, 8) == pytest.approx(0.0031 * 64 + 0.0035 * 24 + 0.008 * 8)


def test_gemm_energy_falls_with_weight_bits(model):
    """MACs are priced at the array's PE width; weight SRAM reads at the bits moved."""
    gemm = {"lines": 1, "rows": 64, "k": 16, "n": 16, "accumulate": 1}
    e = [model.instr(Instr("GEMM", dict(gemm, wbits=w))) for w in (2, 4, 8)]
    assert e[0]["mac"] == e[1]["mac"] == e[2]["mac"]  # the same 8-bit PEs do the work
    assert e[0]["sram"] < e[1]["sram"] < e[2]["sram"]
    narrow = [EnergyModel(dataclasses.replace(ARCH, weight_bits=w)).instr(
        Instr("GEMM", dict(gemm, wbits=w))) for w in (2, 4, 8)]
    assert narrow[0]["mac"] < narrow[1]["mac"] < narrow[2]["mac"] == e[2]["mac"]


def test_dram_energy_is_per_bit_moved(model):
    load = Instr("LOAD", {"mem": "weight", "planes": 1, "rows": 2, "row_bytes": 10})
    assert model.instr(load)["dram"] == pytest.approx(2 * 10 * 8 * 8.0)  # 160 bits x 8 pJ/bit


def test_4_bit_weights_cost_less_dram_energy_than_8_bit():
    results = {}
    for bits in (4, 8):
        g = cnn_graph(wbits=(bits,) * 3)
        arch = dataclasses.replace(ARCH, weight_bits=bits)  # an array built for these weights
        results[bits] = simulate(compile_graph(g, arch), arch, codes=random_codes(g, 2))
    assert results[4].energy_pj["dram"] < results[8].energy_pj["dram"]
    assert results[4].energy_pj["mac"] < results[8].energy_pj["mac"]
    assert results[4].energy_pj["total"] < results[8].energy_pj["total"]
    assert results[4].dram_bytes < results[8].dram_bytes
    for r in results.values():
        assert r.energy_pj["total"] == pytest.approx(
            sum(v for k, v in r.energy_pj.items() if k != "total"))


def test_leakage_is_the_area_times_the_cited_rows(model):
    from qasic.rtl.area import area

    a, t = area(ARCH), model.table
    assert model.leakage_uw == pytest.approx(a.logic_mm2 * t["leakage_logic_uw_per_mm2"]
                                             + a.sram_mm2 * t["leakage_sram_uw_per_mm2"])
    # µW / MHz = pJ per cycle; a faster clock leaks less per cycle, the same per second
    assert model.leakage_pj_per_cycle == pytest.approx(model.leakage_uw / ARCH.clock_mhz)
    fast = EnergyModel(dataclasses.replace(ARCH, clock_mhz=2 * ARCH.clock_mhz))
    assert fast.leakage_pj_per_cycle == pytest.approx(model.leakage_pj_per_cycle / 2)
    bigger = EnergyModel(dataclasses.replace(ARCH, array_rows=32, input_sram_bytes=1 << 16))
    # twice the rows and 4x the input scratchpad; the units and program memories around them
    # (most of the area, docs/area.md) stay
    assert bigger.leakage_uw > 1.1 * model.leakage_uw


def test_leakage_is_priced_over_every_kernels_cycles(model):
    g = cnn_graph(wbits=(8,) * 3)
    r = simulate(compile_graph(g, ARCH), ARCH, codes=random_codes(g, 1))
    assert r.energy_pj["leakage"] == pytest.approx(model.leakage_pj_per_cycle * r.cycles)
    for layer in r.layers:
        e = layer["energy_pj"]
        assert e["leakage"] == pytest.approx(model.leakage_pj_per_cycle * layer["cycles"])
        assert e["total"] == pytest.approx(sum(v for k, v in e.items() if k != "total"))
    assert sum(la["energy_pj"]["leakage"] for la in r.layers) == pytest.approx(
        r.energy_pj["leakage"])


def test_every_table_row_has_value_unit_and_source():
    raw = tomllib.loads(TABLE.read_text())
    assert set(REQUIRED) <= set(raw)
    for name, row in raw.items():
        assert set(row) == {"value", "unit", "source"}, name
        assert isinstance(row["value"], (int, float)) and row["value"] >= 0, name
        assert row["unit"].strip() and len(row["source"]) > 20, name
    assert {r["name"] for r in load_table(TABLE).cited()} == set(raw)


def _write_without(tmp_path, row: str, key: str | None = None):
    """The cited table with a whole ``[row]`` section (or one of its keys) removed."""
    sections = re.split(r"(?m)^(?=\[)", TABLE.read_text())
    kept = []
    for sec in sections:
        if sec.startswith(f"[{row}]"):
            if key is None:
                continue
            sec = re.sub(rf"(?m)^{key} = .*\n", "", sec)
        kept.append(sec)
    path = tmp_path / "energy.toml"
    path.write_text("".join(kept))
    tomllib.loads(path.read_text())  # still valid TOML: only the row is missing
    return path


@pytest.mark.parametrize("row", ["dram_pj_per_bit", "mac_mult_pj_per_bit2",
                                 "leakage_logic_uw_per_mm2", "leakage_sram_uw_per_mm2"])
def test_missing_row_is_a_config_error_naming_it(tmp_path, row):
    with pytest.raises(ConfigError, match=rf"row {row} needs value, unit and source"):
        load_table(_write_without(tmp_path, row))


def test_row_without_a_source_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="row sram_pj_per_bit_8kib needs value, unit and source"):
        load_table(_write_without(tmp_path, "sram_pj_per_bit_8kib", "source"))


def test_missing_table_file_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="set tech.energy_table"):
        load_table(tmp_path / "nope.toml")
