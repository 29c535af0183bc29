"""A QGraph as bytes: the golden reference a program file carries (its ``graph`` section).

``qasic compile`` embeds the quantized graph it compiled, so ``qasic simulate`` and ``qasic
rtl-run`` can check a program file's outputs against the golden reference with nothing but the
file. The bytes are a NumPy ``.npz`` archive (read with ``allow_pickle=False``: no code runs on
load): ``graph.json`` (UTF-8, as a uint8 array) holds the structure, every node's attrs and the
activation encodings; ``p<i>.<name>`` holds node i's parameter arrays, bit for bit.

Attrs are JSON: tuples are written as lists and read back as tuples (a graph's sequences are
tuples), NumPy scalars as Python numbers. Reading checks the structure (known ops and keys,
every input defined before use, an encoding and a shape for every tensor), so a malformed
section is one line naming what is wrong, never a traceback later in the reference.
"""

from __future__ import annotations

import io
import json
import math
import tokenize
import zipfile
from typing import Any

import numpy as np

from qasic.errors import ProgramFormatError
from qasic.quant.graph import OPS, QGraph, QNode, TensorQ

FORMAT = 1  # the graph.json layout's version
_NODE_KEYS = {"name", "op", "inputs", "output", "attrs", "params", "weight_bits",
              "weight_format"}
_TENSOR_KEYS = ("scale", "zero_point", "bits", "fmt")


def graph_to_bytes(graph: QGraph) -> bytes:
    """``graph`` as the bytes of a program file's graph section."""
    nodes, arrays = [], {}
    for i, node in enumerate(graph.nodes):
        for name, value in node.params.items():
            a = np.asarray(value)
            if a.dtype == object:
                raise ValueError(f"node {node.name}: parameter {name} is an object array; "
                                 "parameters must be numeric")
            arrays[f"p{i}.{name}"] = a
        nodes.append({"name": node.name, "op": node.op, "inputs": list(node.inputs),
                      "output": node.output, "attrs": _plain(node.attrs, node.name),
                      "params": sorted(node.params), "weight_bits": node.weight_bits,
                      "weight_format": node.weight_format})
    doc = {"format": FORMAT, "name": graph.name, "input": graph.input, "output": graph.output,
           "input_layout": graph.input_layout, "output_layout": graph.output_layout,
           "nodes": nodes,
           "tensors": {k: [float(t.scale), int(t.zero_point), int(t.bits), t.fmt]
                       for k, t in graph.tensors.items()},
           "shapes": {k: [int(d) for d in s] for k, s in graph.shapes.items()}}
    if graph.inputs:  # several inputs (absent: the one ``input``, as before they were)
        doc["inputs"], doc["input_layouts"] = list(graph.inputs), list(graph.input_layouts)
    arrays["graph.json"] = np.frombuffer(json.dumps(doc, sort_keys=True).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def graph_from_bytes(blob: bytes, where: str = "graph section") -> QGraph:
    """The QGraph of a program file's graph section; ProgramFormatError names what is wrong."""
    try:
        arrays = _read_npz(blob)
        doc = json.loads(arrays.pop("graph.json").tobytes().decode())
    except (ValueError, KeyError, OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError,
            NotImplementedError, SyntaxError, tokenize.TokenError, OverflowError) as e:
        raise ProgramFormatError(f"{where} is not a qasic graph archive ({type(e).__name__}: "
                                 f"{str(e)[:80]}); recompile the model") from None
    try:
        return _graph(doc, arrays, where)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, OverflowError) as e:
        raise ProgramFormatError(f"{where} is malformed: {type(e).__name__}: {str(e)[:120]}; "
                                 "recompile the model") from None


def _read_npz(blob: bytes) -> dict[str, np.ndarray]:
    """The arrays of an uncompressed .npz, each member's CRC checked and its size proven from
    its header before anything is allocated (np.load trusts a header's shape)."""
    arrays = {}
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        for info in z.infolist():
            if info.compress_type != zipfile.ZIP_STORED or info.file_size > len(blob):
                raise ValueError(f"member {info.filename} is compressed or larger than the file")
            data = z.read(info)  # raises BadZipFile on a CRC mismatch
            f = io.BytesIO(data)
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"member {info.filename}: .npy version {version}")
            shape, fortran, dtype = read_header(f)
            count = math.prod(shape)
            if dtype.hasobject or count * dtype.itemsize != len(data) - f.tell():
                raise ValueError(f"member {info.filename}: its header does not match its bytes")
            a = np.frombuffer(data, dtype, count, offset=f.tell())
            arrays[info.filename.removesuffix(".npy")] = a.reshape(
                shape, order="F" if fortran else "C").copy()
    return arrays


def _graph(doc: dict, arrays: dict[str, np.ndarray], where: str) -> QGraph:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ProgramFormatError(f"{where}: graph format {got!r}; this qasic reads format "
                                 f"{FORMAT}: recompile the model")
    tensors = {str(k): TensorQ(float(s), int(z), int(b), str(f))
               for k, (s, z, b, f) in doc["tensors"].items()}
    shapes = {str(k): tuple(int(d) for d in s) for k, s in doc["shapes"].items()}
    nodes = []
    for i, n in enumerate(doc["nodes"]):
        if set(n) != _NODE_KEYS or n["op"] not in OPS:
            raise ValueError(f"node {i} has keys {sorted(n)} / op {n.get('op')!r}")
        params = {p: arrays.pop(f"p{i}.{p}") for p in n["params"]}
        nodes.append(QNode(str(n["name"]), n["op"], tuple(str(x) for x in n["inputs"]),
                           str(n["output"]), _tuples(n["attrs"]), params,
                           None if n["weight_bits"] is None else int(n["weight_bits"]),
                           None if n["weight_format"] is None else str(n["weight_format"])))
    if arrays:
        raise ValueError(f"arrays no node names: {sorted(arrays)[:3]}")
    graph = QGraph(str(doc["name"]), str(doc["input"]), str(doc["output"]), tuple(nodes),
                   tensors, shapes, str(doc["input_layout"]),
                   _optional_str(doc.get("output_layout")),  # absent: saved before recorded
                   tuple(str(t) for t in doc.get("inputs", ())),
                   tuple(str(t) for t in doc.get("input_layouts", ())))
    if len(graph.inputs) != len(graph.input_layouts) or (
            graph.inputs and graph.inputs[0] != graph.input):
        raise ValueError(f"inputs {list(graph.inputs)} with layouts "
                         f"{list(graph.input_layouts)} (the first must be input {graph.input})")
    check_structure(graph, where)
    return graph


def check_structure(graph: QGraph, where: str) -> None:
    """Every node reads tensors defined before it; every tensor has an encoding and a shape."""
    defined = {graph.input, *graph.inputs}
    for node in graph.nodes:
        for name in node.inputs:
            if name not in defined:
                raise ProgramFormatError(f"{where}: node {node.name} reads {name!r}, which no "
                                         "earlier node writes; recompile the model")
        defined.add(node.output)
    for name in defined:
        if name not in graph.tensors or name not in graph.shapes:
            raise ProgramFormatError(f"{where}: tensor {name!r} has no encoding or shape; "
                                     "recompile the model")
    if graph.output not in defined:
        raise ProgramFormatError(f"{where}: the output {graph.output!r} is never written")


def _plain(value: Any, node: str) -> Any:
    """Attrs as JSON values (tuples as lists, NumPy scalars as numbers)."""
    if isinstance(value, bool | str | None | int | float):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, list | tuple):
        return [_plain(v, node) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        if not all(isinstance(k, str) for k in value):
            raise ValueError(f"node {node}: attrs with non-string keys cannot be saved")
        return {k: _plain(v, node) for k, v in value.items()}
    raise ValueError(f"node {node}: attr value of type {type(value).__name__} cannot be saved; "
                     "attrs hold numbers, strings, bools and sequences or dicts of them")


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _tuples(value: Any) -> Any:
    """JSON values back as attrs: lists become tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _tuples(v) for k, v in value.items()}
    return value


def embed(program, graph: QGraph):
    """``program`` carrying ``graph`` as its golden reference (saved with the program file)."""
    from dataclasses import replace

    return replace(program, graph=graph_to_bytes(graph))


def embedded(program) -> QGraph | None:
    """The golden reference a program file carries, checked against the program's input and
    output (shape and encoding); None when it carries none."""
    if not program.graph:
        return None
    where = f"program {program.source or program.meta.get('model')}: graph section"
    graph = graph_from_bytes(program.graph, where)
    from qasic.isa.program import input_specs

    sides = [("input", graph.input, program.meta.get("input")),
             ("output", graph.output, program.meta.get("output"))]
    if graph.inputs or "inputs" in program.meta:
        names = [s.get("tensor") for s in input_specs(program.meta)]
        if list(graph.inputs) != names:
            raise ProgramFormatError(f"{where}: the graph's inputs {list(graph.inputs)} differ "
                                     f"from the program's {names}; recompile the model")
        sides += [("input", n, s) for n, s in zip(graph.inputs, input_specs(program.meta),
                                                   strict=True)]
    for side, name, spec in sides:
        spec = spec or {}
        t = graph.tensors[name]
        mine = (tuple(graph.shapes[name]) or (1,), t.scale, t.zero_point, t.bits, t.fmt)
        theirs = (tuple(spec.get("shape", ())), spec.get("scale"), spec.get("zero_point"),
                  spec.get("bits"), spec.get("fmt", "int"))
        if mine != theirs:
            raise ProgramFormatError(f"{where}: the graph's {side} (shape, scale, zero point, "
                                     f"bits, format) {mine} differs from the program's "
                                     f"{theirs}; recompile the model")
    return graph
