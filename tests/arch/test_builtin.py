"""Built-in architectures by name: each loads and validates; an unknown name lists them."""

from __future__ import annotations

import pytest

from qasic.arch.config import BUILTIN_ARCHES, DEFAULT_PATH, default_arch, load_arch
from qasic.errors import ConfigError

KIB = 1024


@pytest.mark.parametrize("name", sorted(BUILTIN_ARCHES))
def test_every_builtin_loads_by_name_and_by_path(name):
    arch = load_arch(name)
    assert arch == load_arch(BUILTIN_ARCHES[name]) == load_arch(str(BUILTIN_ARCHES[name]))
    assert arch.energy_table_path().exists()


def test_default_by_name_is_the_default():
    assert load_arch("default") == load_arch() == default_arch()


def test_gemmini_like_is_gemminis_default_config():
    """16x16 weight-stationary INT8, one shared 256 KiB scratchpad split four ways, a 64 KiB
    accumulator, a 128-bit DMA bus."""
    arch = load_arch("gemmini_like")
    assert (arch.array_rows, arch.array_cols, arch.dataflow) == (16, 16, "weight_stationary")
    assert (arch.input_bits, arch.weight_bits, arch.acc_bits) == (8, 8, 32)
    spad = (arch.input_sram_bytes, arch.weight_sram_bytes, arch.output_sram_bytes,
            arch.param_sram_bytes)
    assert sum(spad) == 256 * KIB and arch.acc_sram_bytes == 64 * KIB
    assert arch.dram_bytes_per_cycle == 16
    assert arch.name != default_arch().name


@pytest.mark.parametrize("name", ["gemini", "Default", "tpu"])
def test_unknown_name_lists_the_builtins_and_the_path_form(name):
    with pytest.raises(ConfigError) as e:
        load_arch(name)
    assert str(e.value) == (f"unknown arch {name!r}; built-in arches: default, gemmini_like, "
                            "or pass a path to a TOML file")


def test_missing_toml_path_names_the_file_and_the_builtins(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml does not exist; .*default, gemmini_like"):
        load_arch(str(tmp_path / "nope.toml"))


def test_a_file_in_the_working_directory_loads_by_bare_name(tmp_path, monkeypatch):
    (tmp_path / "mine").write_text(DEFAULT_PATH.read_text())
    monkeypatch.chdir(tmp_path)
    assert load_arch("mine") == default_arch()
