"""Program: instructions + constants + memory map, and its one binary file format.

File layout (little-endian):
    header  28 bytes: magic b"QASC", u16 version, u16 reserved (0), u32 instruction count,
            u32 constants length, u32 metadata length, u32 graph length, u32 CRC-32 of
            everything after the header
    instructions   count x WORD_BYTES (32) bytes (isa.table words)
    layer ids      count x u16: which kernel (metadata "layers") each instruction belongs to
    constants      bytes placed in DRAM at the "constants" region
    metadata       UTF-8 JSON: memory map (regions), kernels, input/output encodings, arch, and
                   the metadata schema version (qasic.isa.schema; checked by qasic.isa.verify)
    graph          the quantized graph the program was compiled from (qasic.quant.graphio, an
                   .npz archive; empty when not embedded): the golden reference that
                   ``qasic simulate`` and ``qasic rtl-run`` check a program file against
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qasic.errors import ProgramFormatError
from qasic.isa.encoding import Instr, decode_all, encode_all
from qasic.isa.schema import META_SCHEMA_VERSION
from qasic.isa.table import WORD_BYTES

MAGIC = b"QASC"
# 2: GEMM bscale/afmt, POST ofmt, packed activations, int64 bias; 3: LUT sig|shift;
# 4: 256-bit words, 3-D DMA with fill, GEMM lines, POST lut, POOL kh/kw/sh/sw/avg,
#    ADD mul/bcast, the LUT instruction; 7: the graph section; 8: POST out_zp/lo/hi 16 bits.
# SOFTMAX mask_stride took bits that were reserved (0 = the old meaning): a version-8 file
# without it decodes unchanged, and an older reader refuses one with it (reserved bits set);
# likewise SOFTMAX sunk/sink and qbits.
VERSION = 8
HEADER = struct.Struct("<4sHHIIIII")
CRC_OFFSET = HEADER.size - 4
# state: DRAM that keeps its bytes from one run to the next (KV caches; qasic.generate)
REGION_KINDS = ("input", "output", "activation", "constants", "state")


@dataclass(frozen=True)
class Region:
    """A named DRAM buffer. ``fill`` pre-initializes it (zero-point padding borders)."""

    name: str
    addr: int
    size: int
    kind: str
    shape: tuple[int, ...] = ()
    fill: int | None = None
    scale: float | None = None
    zero_point: int | None = None
    bits: int = 8  # stored bits per activation code (packed when below 8)

    def __post_init__(self) -> None:
        if self.kind not in REGION_KINDS:
            raise ProgramFormatError(
                f"region {self.name}: kind {self.kind!r} not in {REGION_KINDS}")
        if self.addr < 0 or self.size < 0:
            raise ProgramFormatError(f"region {self.name}: negative address or size")


@dataclass(frozen=True, eq=False)
class Program:
    instrs: tuple[Instr, ...]
    layer_ids: tuple[int, ...]
    constants: bytes
    regions: tuple[Region, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it was read from, for messages
    graph: bytes = b""  # the embedded quantized graph (qasic.quant.graphio), or empty

    def __post_init__(self) -> None:
        if len(self.layer_ids) != len(self.instrs):
            raise ProgramFormatError("program: one layer id per instruction is required")
        if not self.instrs or self.instrs[-1].op != "END":
            raise ProgramFormatError("program: the last instruction must be END")

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise ProgramFormatError(f"program has no region {name!r}; regions: "
                                 f"{', '.join(r.name for r in self.regions)}")

    @property
    def dram_size(self) -> int:
        return max(r.addr + r.size for r in self.regions)

    @property
    def layers(self) -> list[dict]:
        return self.meta.get("layers", [])


def input_specs(meta: dict) -> list[dict]:
    """The program's input IO records in the model's forward order: ``meta["inputs"]`` (a
    model of several inputs, each its own DRAM region) or the one ``meta["input"]`` (programs
    of one input, and every program saved before several were)."""
    return list(meta.get("inputs") or [meta["input"]])


def to_bytes(program: Program) -> bytes:
    ids = np.asarray(program.layer_ids, dtype="<u2").tobytes()
    meta = dict(program.meta, regions=[asdict(r) for r in program.regions],
                schema=META_SCHEMA_VERSION)
    meta_blob = json.dumps(meta, sort_keys=True).encode()
    body = encode_all(list(program.instrs)) + ids + program.constants + meta_blob + program.graph
    header = HEADER.pack(MAGIC, VERSION, 0, len(program.instrs), len(program.constants),
                         len(meta_blob), len(program.graph), zlib.crc32(body))
    return header + body


def from_bytes(blob: bytes, name: str = "program") -> Program:
    if len(blob) < HEADER.size:
        raise ProgramFormatError(f"{name}: {len(blob)} bytes is shorter than the "
                                 f"{HEADER.size}-byte header (truncated file?)")
    magic, version, _, count, const_len, meta_len, graph_len, crc = HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise ProgramFormatError(f"{name}: bad magic {magic!r} at offset 0 (expected {MAGIC!r}); "
                                 "not a qasic program")
    if version != VERSION:
        raise ProgramFormatError(f"{name}: format version {version} at offset 4; this qasic reads "
                                 f"version {VERSION}: recompile the model")
    body = blob[HEADER.size:]
    want = count * (WORD_BYTES + 2) + const_len + meta_len + graph_len
    if len(body) != want:
        raise ProgramFormatError(f"{name}: body is {len(body)} bytes but the header promises "
                                 f"{want} (truncated or padded file)")
    if zlib.crc32(body) != crc:
        raise ProgramFormatError(f"{name}: checksum mismatch (header offset {CRC_OFFSET}): the "
                                 "file is corrupt")
    return _parse_body(body, count, const_len, meta_len, name)


def _parse_body(body: bytes, count: int, const_len: int, meta_len: int, name: str) -> Program:
    n_instr = count * WORD_BYTES
    instrs = decode_all(body[:n_instr], base=HEADER.size)
    ids = np.frombuffer(body[n_instr:n_instr + 2 * count], dtype="<u2")
    off = n_instr + 2 * count
    constants = body[off:off + const_len]
    where = f"{name}: metadata at offset {HEADER.size + off + const_len}"
    try:
        meta = json.loads(body[off + const_len:off + const_len + meta_len].decode())
        schema = meta.pop("schema", None)
        regions = tuple(Region(**dict(r, shape=tuple(r["shape"]))) for r in meta.pop("regions"))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ProgramFormatError(f"{where} is malformed: {type(e).__name__}: {e}") from None
    if schema != META_SCHEMA_VERSION:
        raise ProgramFormatError(f"{where}: schema = {repr(schema)[:40]}; this qasic reads "
                                 f"metadata schema {META_SCHEMA_VERSION}: recompile the model")
    return Program(tuple(instrs), tuple(int(i) for i in ids), bytes(constants), regions, meta,
                   name, bytes(body[off + const_len + meta_len:]))


def save(program: Program, path: str | Path) -> Path:
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(to_bytes(program))
    tmp.replace(path)  # never leave a half-written program behind
    return path


def load(path: str | Path) -> Program:
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ProgramFormatError(f"program file {path} does not exist") from None
    return from_bytes(blob, str(path))
