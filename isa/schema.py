"""The program metadata schema, as data: which keys a program's metadata and regions hold, of what
type, and which are required.

The file carries the schema version (key ``schema``, written by ``isa.program.to_bytes``); a
reader refuses any other version. Records are closed (an unknown key is an error) except layer
records, whose extra keys are the compiler's notes for reports (mapping, formats), typed JSON
values the simulator never reads. ``check_meta`` and ``check_regions`` raise one line naming the
key, its value and what it must be.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from qasic.errors import VerificationError
from qasic.isa.table import ACT_FORMATS

META_SCHEMA_VERSION = 1
JSON = (str, int, float, bool, list, dict, type(None))  # any JSON value

# One row per key: (name, required, allowed types, what the value means).
META_KEYS = (
    ("model", True, (str,), "the model's name"),
    ("arch", True, (str,), "the arch's name"),
    ("arch_config", True, (dict,), "every ArchConfig field the compiler tiled for"),
    ("input", True, (dict,), "the input tensor: an IO record"),
    ("output", True, (dict,), "the output tensor: an IO record"),
    ("input_layout", True, (str, type(None)), "the float model's input layout (NCHW, NCL)"),
    ("layers", True, (list,), "one layer record per kernel (an instruction's layer id)"),
    ("inputs", False, (list,), ("a model of several inputs: an IO record each, in the "
                                "forward's order (input is the first); absent: one input")),
)
IO_KEYS = (
    ("tensor", True, (str,), "the name of its DRAM region"),
    ("shape", True, (list,), "per-sample shape, NHWC, positive ints"),
    ("scale", True, (int, float), "real = scale * (code - zero_point), finite > 0"),
    ("zero_point", True, (int,), "in the code range"),
    ("bits", True, (int,), "code bits (2..8; token ids 32)"),
    ("fmt", False, (str,), " or ".join(ACT_FORMATS)),
    ("layout", False, (str,), "in inputs: tokens (int ids) or sequence (floats)"),
)
LAYER_KEYS = (
    ("name", True, (str,), "kernel name"),
    ("kind", True, (str,), "kernel kind (gemm, pool, ...)"),
    ("ops", True, (list,), "the graph ops it fuses"),
    ("macs", True, (int,), "multiply-accumulates per inference"),
    ("weight_bits", False, (int, type(None)), "weight code bits"),
    ("m", False, (int, type(None)), "GEMM rows"),
    ("k", False, (int, type(None)), "GEMM reduction"),
    ("n", False, (int, type(None)), "GEMM columns"),
    ("compulsory_dram_bytes", False, (int, type(None)), "bytes that must cross DRAM once"),
)
REGION_KEYS = (
    ("name", True, (str,), "unique"),
    ("addr", True, (int,), "first DRAM byte"),
    ("size", True, (int,), "bytes"),
    ("kind", True, (str,), "input, output, activation, constants or state"),
    ("shape", True, (tuple,), "() or (h, w, c, pad)"),
    ("fill", False, (int, type(None)), "a code every byte pattern is initialised to"),
    ("scale", False, (int, float, type(None)), "of its codes"),
    ("zero_point", False, (int, type(None)), "of its codes"),
    ("bits", False, (int,), "stored bits per code, 2..32"),
)


def check_record(record: Any, spec: tuple, where: str, closed: bool = True) -> None:
    """``record`` is a dict holding every required key of ``spec`` with an allowed type (a bool is
    never an int); with ``closed`` no other key."""
    if not isinstance(record, dict):
        _fail(where, f"is a {type(record).__name__}, not a record (JSON object)")
    known = {name for name, *_ in spec}
    for name, required, types, doc in spec:
        if name not in record:
            if required:
                _fail(where, f"lacks the required key {name!r} ({doc})")
            continue
        value = record[name]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            _fail(f"{where}.{name}", f"= {_short(value)} must be {names} ({doc})")
    extra = sorted(set(record) - known, key=str)
    if closed and extra:
        _fail(where, f"has the unknown key {extra[0]!r}; schema {META_SCHEMA_VERSION} allows "
                     f"{', '.join(sorted(known))}")
    for key in extra:
        if not isinstance(record[key], JSON):
            _fail(f"{where}.{key}", f"= {_short(record[key])} is not a JSON value")


def check_meta(meta: Any, where: str) -> None:
    """The metadata's keys and types (schema META_SCHEMA_VERSION); values are checked against the
    regions and the arch by the verifier."""
    check_record(meta, META_KEYS, f"{where}: metadata")
    records = [("input", meta["input"]), ("output", meta["output"])]
    records += [(f"inputs[{i}]", r) for i, r in enumerate(meta.get("inputs") or ())]
    for key, record in records:
        check_record(record, IO_KEYS, f"{where}: metadata {key}")
        shape = record["shape"]
        if not shape or not all(type(d) is int and d > 0 for d in shape):
            _fail(f"{where}: metadata {key}.shape", f"= {_short(shape)} must be a non-empty list "
                  "of positive ints")
    for j, layer in enumerate(meta["layers"]):
        check_record(layer, LAYER_KEYS, f"{where}: metadata layers[{j}]", closed=False)
        if not all(isinstance(op, str) for op in layer["ops"]):
            _fail(f"{where}: metadata layers[{j}].ops", f"= {_short(layer['ops'])} must be a "
                  "list of op names")


def check_regions(regions: tuple, where: str) -> None:
    """Each region's fields have the schema's types (the file's JSON may hold anything)."""
    for r in regions:
        record = {f.name: getattr(r, f.name) for f in fields(r)}
        check_record(record, REGION_KEYS, f"{where}: region {_short(r.name)}")
        if r.shape and (len(r.shape) != 4 or not all(type(d) is int and d >= 0
                                                     for d in r.shape)):
            _fail(f"{where}: region {r.name!r} shape", f"= {r.shape} must be () or four "
                  "non-negative ints (h, w, c, pad)")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _fail(where: str, what: str) -> None:
    raise VerificationError(f"{where} {what}")


def markdown() -> str:
    """The schema's tables for docs/verify.md (a test keeps the doc equal to this)."""
    out = [f"Metadata schema version {META_SCHEMA_VERSION}.", ""]
    for title, spec, closed in (("metadata", META_KEYS, True), ("IO record (input, output)",
                                                                 IO_KEYS, True),
                                ("layer record", LAYER_KEYS, False),
                                ("region", REGION_KEYS, True)):
        out += [f"**{title}**" + ("" if closed else " (open: further JSON keys allowed)"), "",
                "| key | required | type | meaning |", "|---|---|---|---|"]
        for name, required, types, doc in spec:
            kinds = " or ".join("null" if t is type(None) else t.__name__ for t in types)
            out.append(f"| `{name}` | {'yes' if required else 'no'} | {kinds} | {doc} |")
        out.append("")
    return "\n".join(out)
