"""The architecture config: one frozen, validated dataclass read from TOML.

The compiler tiles to it, the simulator times and prices with it, the RTL generator sizes the array
from it. Impossible values fail at construction with a message naming the TOML key.

A TOML file gives only the keys it changes: the rest come from ``base`` (a built-in arch name or
a path relative to the file) or, without one, from the built-in default. A file without ``name``
is named after itself (its stem). ``tech.energy_table`` is a file next to the TOML or one of the
tables shipped with qasic.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from qasic.arch.pe import MAX_SHIFT_BITS
from qasic.errors import ConfigError
from qasic.isa.table import BY_NAME, POST_PARAM_BYTES_PER_CHANNEL

DEFAULT_PATH = Path(__file__).with_name("default.toml")
# Built-in architectures by name (what --arch accepts besides a TOML path).
BUILTIN_ARCHES = {
    "default": DEFAULT_PATH,
    "gemmini_like": DEFAULT_PATH.with_name("gemmini_like.toml"),
}
# The widest accumulator: qasic.quant.fixedpoint.requantize is exact for |acc| < 2**55 (its
# 24-bit split keeps both partial products inside int64), i.e. for 56-bit two's complement.
# FP8 E5M2 weights x INT8 activations need up to ~50 bits.
MAX_ACC_BITS = 56
MAX_DRAM_BYTES_PER_CYCLE = 128  # AXI4's widest beat (qasic.rtl.axi.MAX_BEAT_BYTES)
MIN_DRAM_BYTES_PER_CYCLE = 4    # the DMA reads one int32 GATHER index per beat at least
# Upper bounds no buildable accelerator reaches; past them a value is a typo (or a fuzzer), and the
# simulator would try to allocate it. A scratchpad: 64 MiB each, above any single on-chip buffer
# of a shipping accelerator (TPU v1's unified buffer is 24 MiB and its accumulators 4 MiB; TPU
# v4's 128 MiB CMEM is a chip-wide memory, not a scratchpad next to the array).
MAX_SRAM_BYTES = 64 << 20
# The clock: 10 GHz, above any synthesized logic (the fastest CPUs boost to about 6 GHz).
MAX_CLOCK_MHZ = 10_000
DATAFLOWS = ("weight_stationary",)
# What the mapper minimises per GEMM layer (compiler.mapper.OBJECTIVES, docs/mapper.md): its
# energy estimate, its cycles, their product, or DRAM bytes first and then cycles.
MAPPER_OBJECTIVES = ("energy", "latency", "edp", "dram")

# TOML key (section.key) -> dataclass field. The one place the file layout is spelled out.
_KEYS = {
    "name": "name",
    "array.rows": "array_rows",
    "array.cols": "array_cols",
    "array.dataflow": "dataflow",
    "array.input_bits": "input_bits",
    "array.input_shift_bits": "input_shift_bits",
    "array.weight_bits": "weight_bits",
    "array.weight_shift_bits": "weight_shift_bits",
    "array.acc_bits": "acc_bits",
    "array.gemm_max_rows": "gemm_max_rows",
    "sram.input_bytes": "input_sram_bytes",
    "sram.weight_bytes": "weight_sram_bytes",
    "sram.acc_bytes": "acc_sram_bytes",
    "sram.output_bytes": "output_sram_bytes",
    "sram.param_bytes": "param_sram_bytes",
    "dram.bytes_per_cycle": "dram_bytes_per_cycle",
    "dram.latency_cycles": "dram_latency_cycles",
    "vector.lanes": "vector_lanes",
    "clock.mhz": "clock_mhz",
    "tech.node_nm": "tech_node_nm",
    "tech.energy_table": "energy_table",
    "mapper.objective": "mapper_objective",
}
_FIELD_KEY = {v: k for k, v in _KEYS.items()}
# keys an arch file may no longer give, and why
RETIRED_KEYS = {
    "vector.divide_cycles": "was removed: the vector unit's divider takes the cycles of its RTL "
                            "(33 per 32-bit quotient, rtl/softmax.py; 62 for norm's, rtl/norm.py)",
    "vector.sqrt_cycles": "was removed: the integer square root takes the 32 cycles of its RTL "
                          "(rtl/norm.py)",
}
RETIRED_FIELDS = ("vector_divide_cycles", "vector_sqrt_cycles")  # in older programs' metadata


def toml_key(field: str) -> str:
    """The TOML key ("section.key") of an ArchConfig field, for error messages."""
    return _FIELD_KEY[field]


BASE_KEY = "base"  # a TOML's top-level key naming the arch it changes
PARAM_BYTES_PER_CHANNEL = POST_PARAM_BYTES_PER_CHANNEL  # bias (int64), multiplier, shift


@dataclass(frozen=True)
class ArchConfig:
    name: str
    array_rows: int
    array_cols: int
    dataflow: str
    input_bits: int
    weight_bits: int
    acc_bits: int
    gemm_max_rows: int
    input_sram_bytes: int
    weight_sram_bytes: int
    acc_sram_bytes: int
    output_sram_bytes: int
    param_sram_bytes: int
    dram_bytes_per_cycle: int
    dram_latency_cycles: int
    clock_mhz: float
    tech_node_nm: int
    energy_table: str
    weight_shift_bits: int = 0  # shift-add PEs (qasic.arch.pe); 0 = plain integer multipliers
    input_shift_bits: int = 0   # the same on the activation operand (FP8 activations)
    # The vector unit (pooling, elementwise, tables, softmax, normalization): lanes (0: one per
    # array column). Its divider and square root take the cycles of their RTL (rtl/softmax.py,
    # rtl/norm.py: one quotient or root bit per cycle).
    vector_lanes: int = 0
    mapper_objective: str = "energy"  # MAPPER_OBJECTIVES; the compiler's, not the hardware's

    def __post_init__(self) -> None:
        for f in fields(self):
            want = {"str": str, "float": (int, float)}.get(f.type, int)
            value = getattr(self, f.name)
            if not isinstance(value, want) or isinstance(value, bool):
                raise ConfigError(f"arch config: {_FIELD_KEY[f.name]} = {value!r} must be {f.type}")
        self._check_range("array_rows", 1, 256)
        self._check_range("array_cols", 1, 256)
        self._check_range("input_bits", 2, 24)
        self._check_range("input_shift_bits", 0, MAX_SHIFT_BITS)
        # PE weight width: up to 8-bit integer codes, wider for formats decoded to fixed point
        # (FP8 E4M3 needs 19 bits, or 5 with shift-add PEs); activations likewise (E3M4: 12
        # bits, or 6 with shift-add PEs).
        self._check_range("weight_bits", 2, 24)
        self._check_range("weight_shift_bits", 0, MAX_SHIFT_BITS)
        self._check_range("acc_bits", 16, MAX_ACC_BITS)
        self._check_range("gemm_max_rows", 1, (1 << BY_NAME["GEMM"].field("rows").width) - 1)
        self._check_range("dram_bytes_per_cycle", MIN_DRAM_BYTES_PER_CYCLE,
                          MAX_DRAM_BYTES_PER_CYCLE)
        if self.dram_bytes_per_cycle & (self.dram_bytes_per_cycle - 1):
            raise ConfigError(f"arch config: dram.bytes_per_cycle = {self.dram_bytes_per_cycle} "
                              f"must be a power of two (the AXI4 data bus: "
                              f"{MIN_DRAM_BYTES_PER_CYCLE}, {2 * MIN_DRAM_BYTES_PER_CYCLE}, ... "
                              f"{MAX_DRAM_BYTES_PER_CYCLE} bytes per beat)")
        self._check_range("dram_latency_cycles", 0, 100_000)
        self._check_range("tech_node_nm", 3, 180)
        self._check_range("vector_lanes", 0, 4096)
        if self.dataflow not in DATAFLOWS:
            raise ConfigError(
                f"arch config: array.dataflow = {self.dataflow!r} is not supported; "
                f"use one of {', '.join(DATAFLOWS)}"
            )
        if self.mapper_objective not in MAPPER_OBJECTIVES:
            raise ConfigError(
                f"arch config: mapper.objective = {self.mapper_objective!r} is not an objective; "
                f"use one of {', '.join(MAPPER_OBJECTIVES)}"
            )
        if not 0 < self.clock_mhz <= MAX_CLOCK_MHZ:  # also refuses nan and inf
            raise ConfigError(f"arch config: clock.mhz = {self.clock_mhz} must be > 0 and "
                              f"<= {MAX_CLOCK_MHZ} (10 GHz)")
        self._check_sram_sizes()

    def _check_sram_sizes(self) -> None:
        # Each scratchpad is two halves (double buffering); a half must hold one minimal tile:
        # one streamed row of K = rows inputs, a rows x cols weight tile, one row of cols
        # accumulators.
        r, c = self.array_rows, self.array_cols
        minimal = {
            "input_sram_bytes": r,
            "weight_sram_bytes": r * c,
            "acc_sram_bytes": c * self.acc_word_bytes,
            "output_sram_bytes": c,
            "param_sram_bytes": c * PARAM_BYTES_PER_CHANNEL,
        }
        for name, half in minimal.items():
            if getattr(self, name) > MAX_SRAM_BYTES:
                raise ConfigError(f"arch config: {_FIELD_KEY[name]} = {getattr(self, name)} must "
                                  f"be <= {MAX_SRAM_BYTES} (64 MiB per scratchpad)")
            if getattr(self, name) < 2 * half:
                raise ConfigError(
                    f"arch config: {_FIELD_KEY[name]} = {getattr(self, name)} is smaller than one "
                    f"double-buffered {r}x{c} tile ({2 * half} bytes); raise it or shrink the array"
                )

    def _check_range(self, name: str, lo: int, hi: int) -> None:
        value = getattr(self, name)
        if not lo <= value <= hi:
            raise ConfigError(f"arch config: {_FIELD_KEY[name]} = {value} must be in {lo}..{hi}")

    @property
    def acc_word_bytes(self) -> int:
        """Bytes one accumulator takes in the accumulator scratchpad: a 32-bit word, or
        ceil(acc_bits / 8) bytes when the accumulator is wider (FP8 and block-scaled weights)."""
        return max(4, -(-self.acc_bits // 8))

    @property
    def lanes(self) -> int:
        """Lanes of the vector unit (vector.lanes, or one per array column when 0)."""
        return self.vector_lanes or self.array_cols

    @property
    def macs_per_cycle(self) -> int:
        return self.array_rows * self.array_cols

    def energy_table_path(self) -> Path:
        """The energy table: an absolute path, or the name of a table shipped with qasic."""
        return DEFAULT_PATH.parent / self.energy_table  # an absolute path replaces the folder

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def load_arch(name_or_path: str | Path | None = None) -> ArchConfig:
    """Load and validate an architecture: a built-in name (BUILTIN_ARCHES), a TOML path, or the
    default one when None."""
    path = arch_path(name_or_path)
    return _build(_file_keys(path, ()), str(path))


def arch_path(name_or_path: str | Path | None) -> Path:
    """The TOML file of a built-in arch name or a path. A bare word that is no built-in and no
    file is an unknown name."""
    if name_or_path is None:
        return DEFAULT_PATH
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_ARCHES:
        return BUILTIN_ARCHES[name_or_path]
    path = Path(name_or_path)
    if isinstance(name_or_path, str) and _is_bare_name(name_or_path) and not path.is_file():
        raise ConfigError(f"unknown arch {name_or_path!r}; built-in arches: "
                          f"{', '.join(BUILTIN_ARCHES)}, or pass a path to a TOML file")
    return path


def _is_bare_name(text: str) -> bool:
    return "/" not in text and "\\" not in text and not text.endswith(".toml")


def arch_from_dict(raw: dict, source: str = "<dict>", folder: Path | None = None) -> ArchConfig:
    """An arch from TOML-shaped ``raw`` over its ``base`` (default: the built-in default);
    relative paths in it (base, tech.energy_table) are relative to ``folder`` (default: the
    working directory)."""
    return _build(_own_keys(raw, source, Path.cwd() if folder is None else folder, ()), source)


def _file_keys(path: Path, chain: tuple[Path, ...]) -> dict:
    """The flat keys of the TOML at ``path`` over those of its base chain."""
    if path.resolve() in chain:
        raise ConfigError(f"arch config {chain[-1]}: base {path} leads back to itself; "
                          "end the chain at a file without base")
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"arch config {path} does not exist; pass a TOML file like "
                          f"{DEFAULT_PATH} or a built-in arch ({', '.join(BUILTIN_ARCHES)})")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"arch config {path} cannot be read ({type(e).__name__}); pass a "
                          "TOML file")
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"arch config {path} is not valid TOML: {e}")
    # a file without a name is not its base: it is named after itself
    return _own_keys(raw, str(path), path.parent, (*chain, path.resolve()), name=path.stem)


def _own_keys(raw: dict, source: str, folder: Path, chain: tuple[Path, ...],
              name: str | None = None) -> dict:
    """``raw``'s keys over its base's, with its own relative paths resolved from ``folder``;
    ``name``: the arch's name if ``raw`` gives none (else the base's)."""
    flat = _flatten(raw)
    retired = sorted(set(flat) & set(RETIRED_KEYS))
    if retired:
        raise ConfigError(f"arch config {source}: {retired[0]} {RETIRED_KEYS[retired[0]]}; "
                          "delete the line")
    unknown = sorted(set(flat) - set(_KEYS) - {BASE_KEY})
    if unknown:
        raise ConfigError(f"arch config {source}: unknown key {unknown[0]}; known keys: "
                          f"{BASE_KEY}, {', '.join(_KEYS)}")
    if "tech.energy_table" in flat:
        flat["tech.energy_table"] = _energy_table(flat["tech.energy_table"], folder, source)
    base = flat.pop(BASE_KEY, None)
    if base is None and DEFAULT_PATH.resolve() in chain:
        return flat  # the default is complete: it has no base
    if name is not None:
        flat.setdefault("name", name)
    return {**_file_keys(_base_path(base, folder, source), chain), **flat}


def _base_path(base: object, folder: Path, source: str) -> Path:
    if base is None:
        return DEFAULT_PATH
    if not isinstance(base, str):
        raise ConfigError(f"arch config {source}: base = {base!r} must be a string: a built-in "
                          f"arch ({', '.join(BUILTIN_ARCHES)}) or a TOML path")
    if base in BUILTIN_ARCHES:
        return BUILTIN_ARCHES[base]
    path = folder / base
    if not path.is_file():
        raise ConfigError(f"arch config {source}: base = {base!r} is neither a built-in arch "
                          f"({', '.join(BUILTIN_ARCHES)}) nor a file ({path} does not exist)")
    return path


def _energy_table(value: object, folder: Path, source: str) -> object:
    """A table next to the TOML (its absolute path), or the name of one shipped with qasic."""
    if not isinstance(value, str) or not value:
        return value  # ArchConfig names the key and the type it wants
    here, shipped = folder / value, DEFAULT_PATH.parent / value
    if here.is_file():
        return value if here.resolve() == shipped.resolve() else str(here.resolve())
    if shipped.is_file() and not Path(value).is_absolute():
        return value
    tables = ", ".join(sorted(p.name for p in DEFAULT_PATH.parent.glob("energy_*.toml")))
    raise ConfigError(f"arch config {source}: tech.energy_table = {value!r} is no file "
                      f"({here} does not exist); give a path relative to the arch TOML or a "
                      f"table shipped with qasic ({tables})")


def _build(flat: dict, source: str) -> ArchConfig:
    """The ArchConfig of the flat keys; its errors name ``source`` as well as the key."""
    missing = [k for k in _KEYS if k not in flat]
    if missing:  # only a default.toml with keys removed can get here
        raise ConfigError(f"arch config {source}: missing key {missing[0]}")
    try:
        return ArchConfig(**{_KEYS[k]: v for k, v in flat.items()})
    except ConfigError as e:
        raise ConfigError(str(e).replace("arch config:", f"arch config {source}:", 1)) from None


def _flatten(raw: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def default_arch() -> ArchConfig:
    return load_arch(DEFAULT_PATH)
