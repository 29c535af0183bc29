"""quant/graphio.py: a QGraph as a program file's graph section, and back, bit for bit."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile

import numpy as np
import pytest

from qasic.errors import ProgramFormatError
from qasic.isa.program import from_bytes, to_bytes
from qasic.quant import reference
from qasic.quant.graphio import embed, embedded, graph_from_bytes, graph_to_bytes
from tests.graphs import cnn_graph


@pytest.fixture(scope="module")
def graph():
    return cnn_graph()


def _same(a, b):
    assert (a.name, a.input, a.output, a.input_layout, a.output_layout) == (
        b.name, b.input, b.output, b.input_layout, b.output_layout)
    assert dict(a.tensors) == dict(b.tensors) and dict(a.shapes) == dict(b.shapes)
    for x, y in zip(a.nodes, b.nodes, strict=True):
        assert (x.name, x.op, x.inputs, x.output, x.weight_bits, x.weight_format) == (
            y.name, y.op, y.inputs, y.output, y.weight_bits, y.weight_format)
        assert dict(x.attrs) == dict(y.attrs)
        assert x.params.keys() == y.params.keys()
        for k in x.params:
            assert x.params[k].dtype == y.params[k].dtype
            assert np.array_equal(x.params[k], y.params[k])


def test_round_trip_is_bit_exact(graph):
    back = graph_from_bytes(graph_to_bytes(graph))
    _same(graph, back)
    codes = np.random.default_rng(0).integers(-128, 128, (4, *graph.input_shape))
    assert np.array_equal(reference.run(graph, codes), reference.run(back, codes))


def test_the_output_layout_round_trips_and_an_unrecorded_one_reads_as_none(graph):
    for layout in ("NCHW", "torch", None):
        g = dataclasses.replace(graph, output_layout=layout)
        assert graph_from_bytes(graph_to_bytes(g)).output_layout == layout
    with pytest.raises(ValueError, match="output layout 'NHWC'; known: NCHW, NCL, torch"):
        dataclasses.replace(graph, output_layout="NHWC")


def test_attrs_keep_tuples_dicts_and_numpy_scalars(graph):
    node = graph.nodes[0]
    odd = dataclasses.replace(node, attrs={**node.attrs, "x": np.int32(3),
                                           "nested": {"k": [np.float64(0.5), (1, 2)]},
                                           "pair": (np.int64(1), 2)})
    g = dataclasses.replace(graph, nodes=(odd, *graph.nodes[1:]))
    attrs = graph_from_bytes(graph_to_bytes(g)).nodes[0].attrs
    assert attrs["x"] == 3 and type(attrs["x"]) is int
    assert attrs["nested"] == {"k": (0.5, (1, 2))}
    assert attrs["pair"] == (1, 2) and isinstance(attrs["pair"], tuple)
    assert attrs["padding"] == node.attrs["padding"]


def test_unsavable_attr_is_named(graph):
    node = dataclasses.replace(graph.nodes[0], attrs={"f": object()})
    with pytest.raises(ValueError, match=rf"node {node.name}: attr value of type object"):
        graph_to_bytes(dataclasses.replace(graph, nodes=(node, *graph.nodes[1:])))


def _doc_edit(blob: bytes, edit) -> bytes:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    doc = json.loads(arrays["graph.json"].tobytes())
    edit(doc, arrays)
    arrays["graph.json"] = np.frombuffer(json.dumps(doc).encode(), np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


@pytest.mark.parametrize("edit, message", [
    (lambda d, a: d.update(format=99), "graph format 99; this qasic reads format 1"),
    (lambda d, a: d["nodes"][1].update(inputs=["nowhere"]), "reads 'nowhere', which no earlier"),
    (lambda d, a: d["nodes"][0].update(op="fft"), "malformed: ValueError: node 0"),
    (lambda d, a: a.pop(next(k for k in a if k.startswith("p0."))), "malformed: KeyError"),
    (lambda d, a: d["tensors"].pop(d["output"]), "has no encoding or shape"),
    (lambda d, a: d.update(output="ghost"), "has no encoding or shape|never written"),
    (lambda d, a: d["tensors"][d["input"]].__setitem__(0, -1.0), "malformed: ValueError"),
])
def test_malformed_sections_are_one_line(graph, edit, message):
    with pytest.raises(ProgramFormatError, match=message) as e:
        graph_from_bytes(_doc_edit(graph_to_bytes(graph), edit), "g")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("blob", [b"", b"not a zip", b"PK\x03\x04" + bytes(40)])
def test_garbage_is_not_a_graph_archive(blob):
    with pytest.raises(ProgramFormatError, match="not a qasic graph archive"):
        graph_from_bytes(blob)


def test_pickled_arrays_are_refused(graph):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z, z.open("graph.json.npy", "w") as f:
        np.lib.format.write_array(f, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ProgramFormatError, match="not a qasic graph archive"):
        graph_from_bytes(buf.getvalue())


def test_program_file_carries_its_graph(graph):
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph

    program = compile_graph(graph, default_arch())
    assert program.graph == b"" and embedded(program) is None
    back = from_bytes(to_bytes(embed(program, graph)), "p.qasic")
    _same(graph, embedded(back))
    other = dataclasses.replace(graph, shapes={**graph.shapes, graph.output: (99,)})
    with pytest.raises(ProgramFormatError, match=r"graph section: the graph's output .* differs "
                                                 r"from the program's"):
        embedded(embed(program, other))
