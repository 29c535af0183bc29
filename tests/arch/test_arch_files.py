"""Arch TOML files: a file gives only the keys it changes, over the default or a named base;
its energy table may sit next to it; impossible values in a file name their key."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from qasic.arch.config import DEFAULT_PATH, default_arch, load_arch
from qasic.errors import ConfigError


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_a_file_gives_only_the_keys_it_changes_and_is_named_after_itself(tmp_path):
    arch = load_arch(write(tmp_path / "small.toml", "[array]\nrows = 8\ncols = 8\n"))
    assert arch == dataclasses.replace(default_arch(), array_rows=8, array_cols=8, name="small")
    named = load_arch(write(tmp_path / "n.toml", 'name = "mine"\n[clock]\nmhz = 800\n'))
    assert (named.name, named.clock_mhz) == ("mine", 800)


def test_base_by_builtin_name(tmp_path):
    arch = load_arch(write(tmp_path / "g.toml", 'base = "gemmini_like"\n[dram]\n'
                                                "bytes_per_cycle = 32\n"))
    assert arch == dataclasses.replace(load_arch("gemmini_like"), dram_bytes_per_cycle=32,
                                       name="g")


def test_base_by_path_relative_to_the_file_and_chained(tmp_path):
    write(tmp_path / "bases" / "wide.toml", 'base = "gemmini_like"\n[array]\ncols = 32\n')
    write(tmp_path / "bases" / "fast.toml", 'base = "wide.toml"\n[clock]\nmhz = 1000\n')
    arch = load_arch(write(tmp_path / "top.toml", 'base = "bases/fast.toml"\n[array]\n'
                                                  "rows = 8\n"))
    want = dataclasses.replace(load_arch("gemmini_like"), array_rows=8, array_cols=32,
                               clock_mhz=1000, name="top")
    assert arch == want


@pytest.mark.parametrize("text, message", [
    ('base = "gemini"\n', ("base = 'gemini' is neither a built-in arch (default, "
                           "gemmini_like) nor a file")),
    ("base = 3\n", "base = 3 must be a string"),
    ('base = "loop.toml"\n', "leads back to itself"),
    ("[clock]\nmhz = inf\n", "clock.mhz = inf must be > 0 and <= 10000"),
    ("[clock]\nmhz = nan\n", "clock.mhz = nan must be > 0"),
    ("[sram]\nweight_bytes = 1099511627776\n", ("sram.weight_bytes = 1099511627776 must be "
                                                "<= 67108864 (64 MiB per scratchpad)")),
    ("[array]\ndepth = 2\n", "unknown key array.depth"),
])
def test_a_bad_file_names_the_key(tmp_path, text, message):
    path = write(tmp_path / "loop.toml", text)
    with pytest.raises(ConfigError) as e:
        load_arch(path)
    assert str(e.value).startswith(f"arch config {path}: ")  # the file, then the key
    assert message in str(e.value) and "\n" not in str(e.value)


def test_unreadable_files_are_one_line(tmp_path):
    (tmp_path / "bin.toml").write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_arch(tmp_path / "bin.toml")
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot be read"):
        load_arch(tmp_path / "dir.toml")


def test_energy_table_next_to_the_toml(tmp_path, monkeypatch):
    from qasic.sim.energy import EnergyModel

    table = tmp_path / "arches" / "tables" / "mine.toml"
    table.parent.mkdir(parents=True)
    shutil.copy(DEFAULT_PATH.with_name("energy_45nm.toml"), table)
    path = write(tmp_path / "arches" / "a.toml", '[tech]\nenergy_table = "tables/mine.toml"\n')
    monkeypatch.chdir(tmp_path)  # relative to the TOML, not to the working directory
    arch = load_arch(path)
    assert arch.energy_table_path() == table.resolve()
    assert EnergyModel(arch).table.rows  # the simulator reads it
    # a base's table is relative to the base, not to the file that names it
    assert load_arch(write(tmp_path / "b.toml", 'base = "arches/a.toml"\n')).energy_table_path() \
        == table.resolve()
    # a table shipped with qasic keeps its bare name, so programs stay portable
    assert load_arch(write(tmp_path / "c.toml", "")).energy_table == "energy_45nm.toml"


def test_a_missing_energy_table_names_the_key_and_the_file_looked_for(tmp_path):
    path = write(tmp_path / "a.toml", '[tech]\nenergy_table = "nope.toml"\n')
    with pytest.raises(ConfigError) as e:
        load_arch(path)
    assert (f"tech.energy_table = 'nope.toml' is no file ({tmp_path / 'nope.toml'} does not "
            "exist); give a path relative to the arch TOML or a table shipped with qasic "
            "(energy_45nm.toml)") in str(e.value)
