"""Seeded mutations of program files and arch TOMLs, one row per mutator (benchmarks.fuzz).

A program file is taken apart into its sections (``Parts``: instruction words, layer ids,
constants, metadata as JSON, the embedded graph) and put back together with a consistent header
and checksum, so a mutation reaches the parser, the verifier and the simulator behind the CRC.
Blind mutators change bytes; structure-aware ones change one thing the format names: a field
(at and beyond its limits), an instruction (deleted, duplicated, swapped), a token flag, a
region, a metadata value, the embedded graph. Neutral
mutators change nothing a run computes (a token-free SYNC, a field no access reads, a name): the
run must match the unmutated program's outputs exactly.
"""

from __future__ import annotations

import copy
import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from qasic.isa.program import CRC_OFFSET
from qasic.isa.program import HEADER as HEADER_FORMAT
from qasic.isa.table import BY_CODE, BY_NAME, HEADER, WORD_BYTES

FLAG_BITS = tuple(f.lo for f in HEADER[1:])
# raw field values at and beyond the limits of a 16x16 array and its scratchpads
EDGES = (0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255, 256, 4095, 4096, 8191,
         8192, 16383, 16384, 65535, 1 << 20, 1 << 24, 1 << 31, 1 << 32)
HUGE = (1 << 31, (1 << 32) - 1, 1 << 36, 1 << 62, -1, 0, 1)
NASTY = ("", "x", None, True, -1, 0, 1.5, float("nan"), float("inf"), 1 << 40, [], {}, [1],
         {"a": 1})
ZERO_FIELDS = ("stride", "rows", "planes", "len", "count", "chunk", "kh", "kw", "sh", "sw",
               "vocab", "lines", "row_bytes", "wbits", "h", "w", "c", "k", "n")


@dataclass
class Parts:
    """A program file's sections, decoded no further than JSON."""

    header: list
    words: list[int]
    ids: list[int]
    constants: bytes
    meta: dict = field(default_factory=dict)
    meta_blob: bytes | None = None  # raw metadata bytes, when a mutation corrupts the text
    graph: bytes = b""              # the embedded graph section (qasic.quant.graphio)

    @staticmethod
    def of(blob: bytes) -> Parts:
        header = list(HEADER_FORMAT.unpack_from(blob))
        count, const_len, meta_len, graph_len = header[3:7]
        body = blob[HEADER_FORMAT.size:]
        if len(body) != count * (WORD_BYTES + 2) + const_len + meta_len + graph_len:
            raise ValueError("the header's section lengths do not add up to the file")
        n = count * WORD_BYTES
        words = [int.from_bytes(body[i:i + WORD_BYTES], "little") for i in range(0, n,
                                                                                 WORD_BYTES)]
        ids = list(np.frombuffer(body[n:n + 2 * count], "<u2").astype(int))
        off = n + 2 * count
        meta_end = off + const_len + meta_len
        return Parts(header, words, ids, body[off:off + const_len],
                     json.loads(body[off + const_len:meta_end]), graph=body[meta_end:])

    def blob(self) -> bytes:
        meta = self.meta_blob if self.meta_blob is not None else json.dumps(
            self.meta, sort_keys=True).encode()
        body = (b"".join(w.to_bytes(WORD_BYTES, "little") for w in self.words)
                + np.asarray(self.ids, "<u2").tobytes() + self.constants + meta + self.graph)
        magic, version, reserved = self.header[:3]
        return HEADER_FORMAT.pack(magic, version, reserved, len(self.words), len(self.constants),
                                  len(meta), len(self.graph), zlib.crc32(body)) + body


def reseal(blob: bytes) -> bytes:
    """The blob with its CRC recomputed over whatever its body now is."""
    body = blob[HEADER_FORMAT.size:]
    return blob[:CRC_OFFSET] + struct.pack("<I", zlib.crc32(body)) + body


# ---- words ---------------------------------------------------------------------------------

def opcode_of(word: int):
    return BY_CODE.get(word & 0xF)


def set_raw(word: int, lo: int, width: int, raw: int) -> int:
    mask = ((1 << width) - 1) << lo
    return (word & ~mask) | ((raw << lo) & mask)


def _pick_field(rng, word: int, names=None):
    op = opcode_of(word)
    if op is None:
        return None
    fields = [f for f in op.fields[len(HEADER):] if names is None
              or any(n == f.name or n in f.name for n in names)]
    return fields[rng.integers(len(fields))] if fields else None


# ---- blind ---------------------------------------------------------------------------------

def bit_flips(rng, blob: bytes, p: Parts) -> bytes:
    b = bytearray(blob)
    for _ in range(rng.integers(1, 9)):
        i = int(rng.integers(HEADER_FORMAT.size, len(b)))
        b[i] ^= 1 << int(rng.integers(8))
    return reseal(bytes(b))


def byte_run(rng, blob: bytes, p: Parts) -> bytes:
    b = bytearray(blob)
    i = int(rng.integers(HEADER_FORMAT.size, len(b)))
    n = int(rng.integers(1, 17))
    b[i:i + n] = rng.integers(0, 256, size=len(b[i:i + n]), dtype=np.uint8).tobytes()
    return reseal(bytes(b))


def truncate(rng, blob: bytes, p: Parts) -> bytes:
    return blob[:int(rng.integers(0, len(blob)))]


def splice(rng, blob: bytes, p: Parts) -> bytes:
    i = int(rng.integers(HEADER_FORMAT.size, len(blob)))
    if rng.integers(2):
        return reseal(blob[:i] + rng.integers(0, 256, int(rng.integers(1, 64)),
                                              dtype=np.uint8).tobytes() + blob[i:])
    return reseal(blob[:i] + blob[i + int(rng.integers(1, 64)):])


def header_field(rng, blob: bytes, p: Parts) -> bytes:
    h = list(p.header)
    k = int(rng.integers(len(h) - 1))  # not the CRC
    h[k] = (bytes(rng.integers(0, 256, 4, dtype=np.uint8)) if k == 0 else
            int(rng.choice([0, 1, 4, 5, 6, 0xFFFF, 0xFFFFFFFF, int(h[k]) + 1,
                            max(int(h[k]) - 1, 0)])) & (0xFFFF if k < 3 else 0xFFFFFFFF))
    return reseal(HEADER_FORMAT.pack(*h) + blob[HEADER_FORMAT.size:])


# ---- structure-aware -----------------------------------------------------------------------

def field_edge(rng, blob: bytes, p: Parts) -> bytes:
    i = int(rng.integers(len(p.words)))
    f = _pick_field(rng, p.words[i])
    if f is None:
        return p.blob()
    raw = int(rng.choice(EDGES)) if rng.integers(4) else int(rng.integers(0, 1 << f.width))
    p.words[i] = set_raw(p.words[i], f.lo, f.width, raw + int(rng.integers(-1, 2)))
    return p.blob()


def zero_field(rng, blob: bytes, p: Parts) -> bytes:
    for _ in range(8):
        i = int(rng.integers(len(p.words)))
        f = _pick_field(rng, p.words[i], ZERO_FIELDS)
        if f is not None:
            p.words[i] = set_raw(p.words[i], f.lo, f.width, 0)
            break
    return p.blob()


def reserved_or_opcode(rng, blob: bytes, p: Parts) -> bytes:
    i = int(rng.integers(len(p.words)))
    if rng.integers(2):
        p.words[i] = set_raw(p.words[i], 0, 4, int(rng.integers(16)))
    else:
        p.words[i] |= 1 << int(rng.integers(8, 8 * WORD_BYTES))
    return p.blob()


def instr_edit(rng, blob: bytes, p: Parts) -> bytes:
    n, i = len(p.words), int(rng.integers(len(p.words)))
    kind = int(rng.integers(4))
    if kind == 0 and n > 1:  # delete
        del p.words[i], p.ids[i]
    elif kind == 1:  # duplicate
        p.words.insert(i, p.words[i])
        p.ids.insert(i, p.ids[i])
    elif kind == 2:  # swap two
        j = int(rng.integers(n))
        p.words[i], p.words[j] = p.words[j], p.words[i]
    else:  # move the last instruction (END) earlier
        p.words.insert(i, p.words.pop())
        p.ids.insert(i, p.ids.pop())
    return p.blob()


def token_flags(rng, blob: bytes, p: Parts) -> bytes:
    for _ in range(int(rng.integers(1, 3))):
        i = int(rng.integers(len(p.words)))
        if rng.integers(2):
            p.words[i] ^= 1 << FLAG_BITS[int(rng.integers(4))]
        else:  # swap the flags of two instructions
            j = int(rng.integers(len(p.words)))
            fi, fj = p.words[i] & 0xF0, p.words[j] & 0xF0
            p.words[i], p.words[j] = (p.words[i] & ~0xF0) | fj, (p.words[j] & ~0xF0) | fi
    return p.blob()


def layer_ids(rng, blob: bytes, p: Parts) -> bytes:
    i = int(rng.integers(len(p.ids)))
    p.ids[i] = int(rng.choice([len(p.meta.get("layers", [])), 65535, int(rng.integers(8))]))
    return p.blob()


def region_edit(rng, blob: bytes, p: Parts) -> bytes:
    regions = p.meta["regions"]
    r = regions[int(rng.integers(len(regions)))]
    kind = int(rng.integers(7))
    if kind == 0:
        r["size"] = int(rng.choice(HUGE)) if rng.integers(2) else r["size"] + int(
            rng.integers(-2, 3))
    elif kind == 1:
        r["addr"] = int(rng.choice(HUGE)) if rng.integers(2) else r["addr"] + int(
            rng.integers(-70, 70))
    elif kind == 2:
        r["shape"] = [int(rng.choice(EDGES)) for _ in range(int(rng.choice([0, 3, 4, 4, 5])))]
    elif kind == 3:
        r["bits"] = int(rng.choice([0, 1, 2, 3, 4, 7, 8, 9, 16, 32, 64]))
    elif kind == 4:
        r["fill"] = int(rng.choice([0, -1, 127, 1 << 40]))
    elif kind == 5:
        r["kind"] = str(rng.choice(["input", "output", "activation", "constants", "x"]))
    else:
        regions.append(dict(copy.deepcopy(r), name=str(rng.choice([r["name"], "extra"]))))
    return p.blob()


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for k, v in enumerate(node):
            yield from _paths(v, (*prefix, k))


def meta_value(rng, blob: bytes, p: Parts) -> bytes:
    paths = [q for q in _paths(p.meta) if q]
    path = paths[int(rng.integers(len(paths)))]
    parent = p.meta
    for k in path[:-1]:
        parent = parent[k]
    if rng.integers(4) == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    elif rng.integers(3) == 0 and isinstance(parent, dict):
        parent["unknown_key"] = 1
    else:
        value = parent[path[-1]]
        choice = NASTY + ((value + int(rng.choice([-1, 1, 1 << 31])),)
                          if type(value) is int else ())
        parent[path[-1]] = choice[int(rng.integers(len(choice)))]
    return p.blob()


def meta_text(rng, blob: bytes, p: Parts) -> bytes:
    text = bytearray(json.dumps(p.meta, sort_keys=True).encode())
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(text)))
        text[i] = int(rng.choice(list(b'{}[]",:0123456789-e.ntfx \xff')))
    p.meta_blob = bytes(text)
    return p.blob()


def constants(rng, blob: bytes, p: Parts) -> bytes:
    c = bytearray(p.constants)
    for _ in range(int(rng.integers(1, 9))):
        if c:
            c[int(rng.integers(len(c)))] = int(rng.integers(256))
    p.constants = bytes(c)
    return p.blob()


def _graph_doc(p: Parts):
    """The graph section's arrays and its graph.json, or None when the program carries none."""
    import io
    if not p.graph:
        return None
    with np.load(io.BytesIO(p.graph), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, json.loads(arrays["graph.json"].tobytes())


def graph_value(rng, blob: bytes, p: Parts) -> bytes:
    """One value of the embedded graph's structure (graph.json) replaced by a nasty one."""
    import io
    got = _graph_doc(p)
    if got is None:
        return p.blob()
    arrays, doc = got
    paths = [q for q in _paths(doc) if q]
    path = paths[int(rng.integers(len(paths)))]
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if rng.integers(4) == 0 and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = NASTY[int(rng.integers(len(NASTY)))]
    arrays["graph.json"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    if rng.integers(3) == 0 and len(arrays) > 1:  # or drop a parameter array
        arrays.pop(sorted(k for k in arrays if k != "graph.json")[int(rng.integers(
            len(arrays) - 1))])
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    p.graph = buf.getvalue()
    return p.blob()


def graph_bytes(rng, blob: bytes, p: Parts) -> bytes:
    """Bytes of the embedded graph section overwritten (the zip's own CRCs then disagree)."""
    g = bytearray(p.graph)
    for _ in range(int(rng.integers(1, 9))):
        if g:
            g[int(rng.integers(len(g)))] = int(rng.integers(256))
    p.graph = bytes(g)
    return p.blob()


# ---- neutral (the run must match the unmutated program exactly) -----------------------------

def neutral_sync(rng, blob: bytes, p: Parts) -> bytes:
    i = int(rng.integers(len(p.words)))  # before END
    p.words.insert(i, BY_NAME["SYNC"].code)
    p.ids.insert(i, p.ids[i])
    return p.blob()


# (opcode, field that no access reads, unless) -> raw value range
_UNREAD = (("LOAD", "fill_byte", "fill"), ("STORE", "fill_byte", None),
           ("GEMM", "lut_addr", "lut"), ("POOL", "param_addr", "mode"),
           ("POST", "lut_addr", "lut"))


def neutral_field(rng, blob: bytes, p: Parts) -> bytes:
    for _ in range(16):
        i = int(rng.integers(len(p.words)))
        op = opcode_of(p.words[i])
        for name, f_name, unless in _UNREAD:
            if op is not None and op.name == name:
                if unless and (p.words[i] >> op.field(unless).lo) & 1:
                    continue
                f = op.field(f_name)
                p.words[i] = set_raw(p.words[i], f.lo, f.width, int(rng.integers(1 << f.width)))
                return p.blob()
    return p.blob()


def neutral_names(rng, blob: bytes, p: Parts) -> bytes:
    layers = p.meta["layers"]
    layers[int(rng.integers(len(layers)))]["name"] = f"renamed{int(rng.integers(100))}"
    p.meta["model"] = "fuzzed"
    return p.blob()


Mutator = Callable[[np.random.Generator, bytes, Parts], bytes]
# name -> (mutator, kind, neutral)
PROGRAM_MUTATORS: dict[str, tuple[Mutator, str, bool]] = {
    "bit_flips": (bit_flips, "blind", False),
    "byte_run": (byte_run, "blind", False),
    "truncate": (truncate, "blind", False),
    "splice": (splice, "blind", False),
    "header_field": (header_field, "structure", False),
    "field_edge": (field_edge, "structure", False),
    "zero_field": (zero_field, "structure", False),
    "reserved_or_opcode": (reserved_or_opcode, "structure", False),
    "instr_edit": (instr_edit, "structure", False),
    "token_flags": (token_flags, "structure", False),
    "layer_ids": (layer_ids, "structure", False),
    "region_edit": (region_edit, "structure", False),
    "meta_value": (meta_value, "structure", False),
    "meta_text": (meta_text, "structure", False),
    "constants": (constants, "structure", False),
    "graph_value": (graph_value, "structure", False),
    "graph_bytes": (graph_bytes, "structure", False),
    "neutral_sync": (neutral_sync, "neutral", True),
    "neutral_field": (neutral_field, "neutral", True),
    "neutral_names": (neutral_names, "neutral", True),
}


# ---- arch TOMLs ----------------------------------------------------------------------------

ARCH_KEYS = ("array.rows", "array.cols", "array.input_bits", "array.weight_bits",
             "array.acc_bits", "array.gemm_max_rows", "array.weight_shift_bits",
             "sram.input_bytes", "sram.weight_bytes", "sram.acc_bytes", "sram.output_bytes",
             "sram.param_bytes", "dram.bytes_per_cycle", "dram.latency_cycles", "vector.lanes",
             "clock.mhz", "tech.node_nm", "tech.energy_table", "array.dataflow", "name")
ARCH_VALUES = ("0", "1", "2", "3", "-1", "4", "7", "8", "17", "64", "65", "256", "257", "1024",
               "65536", "4294967296", "1099511627776", "1.5", "inf", "nan", '"x"', "true",
               "[]", '"../../etc/hosts"', '"energy_45nm.toml"', "{}")


def arch_blind(rng, text: str) -> str:
    b = bytearray(text.encode())
    for _ in range(int(rng.integers(1, 6))):
        b[int(rng.integers(len(b)))] = int(rng.integers(32, 127))
    return b.decode(errors="replace")


def arch_key(rng, text: str) -> str:
    """One key set to a value at or beyond its limits (or removed, or an unknown key added)."""
    key = ARCH_KEYS[int(rng.integers(len(ARCH_KEYS)))]
    section, _, name = key.rpartition(".")
    lines, out, current = text.splitlines(), [], ""
    kind = int(rng.integers(6))
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("["):
            current = stripped.strip("[]")
        k = stripped.split("=", 1)[0].strip()
        if current == section and k == name:
            if kind == 0:
                continue  # removed
            line = f"{name} = {ARCH_VALUES[int(rng.integers(len(ARCH_VALUES)))]}"
        out.append(line)
    if kind == 1:
        out.insert(0, "unknown_key = 1")
    return "\n".join(out) + "\n"


ARCH_MUTATORS: dict[str, Callable[[np.random.Generator, str], str]] = {
    "arch_blind": arch_blind,
    "arch_key": arch_key,
}
