"""A flatten of an image as the graph output, written out in torch's order.

``flatten`` of an image (H, W, C) means torch's (C, H, W) order (the golden reference
transposes); the compiler keeps it a view (kernel kind alias: no instructions), which a linear
reading it honours by permuting its weight rows (``flat_src``). As the graph output nothing
reads it, so the program's output held the channels-last bytes, a permutation of the golden
reference's codes (a conv followed by ``.flatten(1)`` returned). Here that flatten becomes a
permute to (C, H, W) and a reshape of it: the same codes in the golden reference's order.
Runs on the compiler's copy of the graph only."""

from __future__ import annotations

from dataclasses import replace

from qasic.quant.graph import QGraph, QNode


def written_out(graph: QGraph) -> QGraph:
    """``graph`` with its output's flatten of an image (H, W, C), H W > 1 and C > 1, made a
    permute to (C, H, W) and a reshape; else ``graph``."""
    last = next((n for n in graph.nodes if n.output == graph.output), None)
    if last is None or last.op != "flatten" or len(graph.shapes[last.inputs[0]]) != 3:
        return graph
    h, w, c = graph.shapes[last.inputs[0]]
    if h * w == 1 or c == 1:  # the bytes are in torch's order already
        return graph
    name = f"{last.name}.nchw"
    permute = QNode(name, "permute", (last.inputs[0],), name, {"perm": (2, 0, 1)})
    flat = replace(last, op="reshape", inputs=(name,), attrs={"shape": graph.shapes[last.output]})
    nodes = tuple(n for m in graph.nodes for n in ((permute, flat) if m is last else (m,)))
    return replace(graph, nodes=nodes,
                   tensors={**graph.tensors, name: graph.tensors[last.inputs[0]]},
                   shapes={**graph.shapes, name: (c, h, w)})
