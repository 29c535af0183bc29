"""The architecture config: the default loads, and every impossible value names its TOML key."""

from __future__ import annotations

import copy
import dataclasses
import tomllib

import pytest

from qasic.arch.config import DEFAULT_PATH, ArchConfig, arch_from_dict, default_arch, load_arch
from qasic.errors import ConfigError

RAW = tomllib.loads(DEFAULT_PATH.read_text())


def with_value(key: str, value) -> dict:
    """The default TOML as a dict with ``section.key`` set to ``value`` (or removed: ...)."""
    raw = copy.deepcopy(RAW)
    *sections, leaf = key.split(".")
    table = raw
    for s in sections:
        table = table.setdefault(s, {})
    if value is ...:
        del table[leaf]
    else:
        table[leaf] = value
    return raw


def test_default_loads_and_is_frozen():
    arch = default_arch()
    assert isinstance(arch, ArchConfig)
    assert (arch.array_rows, arch.array_cols, arch.dataflow) == (16, 16, "weight_stationary")
    assert arch.macs_per_cycle == 256
    assert arch.energy_table_path().exists()
    assert load_arch() == arch == arch_from_dict(RAW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        arch.array_rows = 8


@pytest.mark.parametrize("key, value, message", [
    ("array.rows", 0, "array.rows = 0 must be in 1..256"),
    ("array.cols", 300, "array.cols = 300 must be in 1..256"),
    ("array.dataflow", "output_stationary", ("array.dataflow = 'output_stationary' is not "
                                            "supported; use one of weight_stationary")),
    ("mapper.objective", "speed", ("mapper.objective = 'speed' is not an objective; use one "
                                   "of energy, latency, edp, dram")),
    ("mapper.objective", 1, "mapper.objective = 1 must be str"),
    ("array.weight_bits", 25, "array.weight_bits = 25 must be in 2..24"),
    ("array.input_bits", 1, "array.input_bits = 1 must be in 2..24"),
    ("array.acc_bits", 8, "array.acc_bits = 8 must be in 16..56"),
    ("array.gemm_max_rows", 0, "array.gemm_max_rows = 0 must be in 1.."),  # ..ISA rows field
    ("sram.weight_bytes", 256, ("sram.weight_bytes = 256 is smaller than one double-buffered "
                               "16x16 tile (512 bytes)")),
    ("sram.input_bytes", 16, "sram.input_bytes = 16 is smaller than one double-buffered"),
    ("sram.acc_bytes", 64, "sram.acc_bytes = 64 is smaller"),
    ("sram.output_bytes", 8, "sram.output_bytes = 8 is smaller"),
    ("sram.param_bytes", 200, "sram.param_bytes = 200 is smaller"),
    ("dram.bytes_per_cycle", 0, "dram.bytes_per_cycle = 0 must be in 4..128"),
    ("dram.bytes_per_cycle", 2, "dram.bytes_per_cycle = 2 must be in 4..128"),
    ("dram.bytes_per_cycle", 256, "dram.bytes_per_cycle = 256 must be in 4..128"),
    ("dram.bytes_per_cycle", 12, "dram.bytes_per_cycle = 12 must be a power of two"),
    ("dram.latency_cycles", -1, "dram.latency_cycles = -1 must be in 0..100000"),
    ("clock.mhz", 0, "clock.mhz = 0 must be > 0 and <= 10000 (10 GHz)"),
    ("clock.mhz", float("inf"), "clock.mhz = inf must be > 0 and <= 10000"),
    ("clock.mhz", float("nan"), "clock.mhz = nan must be > 0 and <= 10000"),
    ("clock.mhz", 20_000, "clock.mhz = 20000 must be > 0 and <= 10000"),
    ("sram.input_bytes", 1 << 40, "sram.input_bytes = 1099511627776 must be <= 67108864 (64 MiB"),
    ("sram.acc_bytes", (64 << 20) + 1, "sram.acc_bytes = 67108865 must be <= 67108864"),
    ("tech.node_nm", 1, "tech.node_nm = 1 must be in 3..180"),
    ("array.rows", "16", "array.rows = '16' must be int"),
    ("array.rows", 16.0, "array.rows = 16.0 must be int"),
    ("array.rows", True, "array.rows = True must be int"),
    ("clock.mhz", "fast", "clock.mhz = 'fast' must be float"),
    ("name", 3, "name = 3 must be str"),
])
def test_impossible_value_names_the_key(key, value, message):
    with pytest.raises(ConfigError) as e:
        arch_from_dict(with_value(key, value))
    assert key in str(e.value)
    assert message in str(e.value)


def test_the_largest_scratchpads_and_clock_are_accepted():
    arch = dataclasses.replace(default_arch(), input_sram_bytes=64 << 20, clock_mhz=10_000)
    assert arch.input_sram_bytes == 64 << 20


@pytest.mark.parametrize("key", ["array.depth", "sram.l2_bytes", "power"])
def test_unknown_key_is_named(key):
    with pytest.raises(ConfigError,
                       match=rf"unknown key {key}; known keys: base, name, array.rows"):
        arch_from_dict(with_value(key, 1))


@pytest.mark.parametrize("key, field", [("array.rows", "array_rows"),
                                        ("sram.weight_bytes", "weight_sram_bytes"),
                                        ("tech.energy_table", "energy_table"), ("name", "name")])
def test_a_missing_key_comes_from_the_default(key, field):
    assert getattr(arch_from_dict(with_value(key, ...)), field) == getattr(default_arch(), field)


def test_errors_from_a_file_name_the_file_and_key(tmp_path):
    path = tmp_path / "arch.toml"
    path.write_text(DEFAULT_PATH.read_text().replace("rows = 16", "rows = 0"))
    with pytest.raises(ConfigError, match="array.rows = 0"):
        load_arch(path)
    path.write_text("[array\nrows = 1")
    with pytest.raises(ConfigError, match=f"{path} is not valid TOML"):
        load_arch(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_arch(tmp_path / "nope.toml")
    path.write_text(DEFAULT_PATH.read_text().replace("[clock]", "[clock]\nghz = 1"))
    with pytest.raises(ConfigError, match=f"arch config {path}: unknown key clock.ghz"):
        load_arch(path)


def test_replace_revalidates():
    with pytest.raises(ConfigError, match="array.rows = 0"):
        dataclasses.replace(default_arch(), array_rows=0)
    small = dataclasses.replace(default_arch(), array_rows=4, array_cols=4, weight_sram_bytes=32)
    assert small.weight_sram_bytes == 32


def test_accumulators_wider_than_32_bits_take_whole_bytes_of_the_scratchpad():
    """A 48-bit accumulator takes 6 bytes, so the same scratchpad holds fewer of them: the
    simulator's accumulator memory and the hazard check size it in words, the compiler's tile
    limit uses the same word."""
    from qasic.isa.encoding import assemble
    from qasic.isa.program import Program, Region
    from qasic.sim.machine import Machine

    narrow = default_arch()
    wide = dataclasses.replace(narrow, acc_bits=48)
    assert (narrow.acc_word_bytes, wide.acc_word_bytes) == (4, 6)
    assert dataclasses.replace(narrow, acc_bits=33).acc_word_bytes == 5
    assert dataclasses.replace(narrow, acc_bits=16).acc_word_bytes == 4  # 32-bit words at least
    regions = (Region("x", 0, 16, "input", (1, 1, 16, 0)), Region("constants", 16, 0, "constants"))
    program = Program(tuple(assemble("END")), (0,), b"", regions)
    assert Machine(program, wide, batch=1).acc.shape[1] == narrow.acc_sram_bytes // 6
    assert Machine(program, narrow, batch=1).acc.shape[1] == narrow.acc_sram_bytes // 4
    cols = narrow.array_cols
    with pytest.raises(ConfigError, match="sram.acc_bytes"):
        dataclasses.replace(narrow, acc_bits=48, acc_sram_bytes=2 * cols * 4)


def test_the_mapper_objective_is_a_key_that_shapes_programs_not_hardware():
    from qasic.rtl.top import accelerator_key

    assert default_arch().mapper_objective == load_arch("gemmini_like").mapper_objective == "energy"
    arch = arch_from_dict(with_value("mapper.objective", "latency"))
    assert arch.mapper_objective == "latency"
    assert accelerator_key(arch) == accelerator_key(default_arch())  # one RTL build for both
