"""Constants computed from constants, in the generation graphs (quant.decode).

A table of each value (``lut``, ``relu``, ``clamp``) that reads a constant alone computes a
constant: the requantization of a concat's constant part (quant.moe_layouts' Inkling router
pads its expert mask with ``x * 0 + 1``, a constant after quant.zero_product), a table of a
position table. In the full model it runs as any other op. A prefill or a decode step reads a
constant over the C positions at the rows it runs (``decode._positions_read``: the first P, or
row p), but only where it is a constant: a table of one kept all C rows, and a concat of the
step's one row with them stored C rows into a region of one (the program verifier refused
InklingTextModel's decode step: 'write of dram [...] is not inside one DRAM region').

``folded`` makes each such table the constant of its codes (the golden reference's, so exact:
the same codes every op after it reads), before the graphs are cut; views and other ops of
constants keep their own handling there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qasic.quant import reference
from qasic.quant.graph import QGraph, QNode

TABLES = ("lut", "relu", "clamp")  # ops of each value: a row of the output is its input row's


def folded(graph: QGraph) -> QGraph:
    """``graph`` itself when no table reads a constant alone, else a copy with each (and each
    table of one, in order) the constant of its codes."""
    values = {n.output: n.params["value"] for n in graph.nodes if n.op == "constant"}
    nodes, changed = [], False
    for n in graph.nodes:
        if n.op in TABLES and len(n.inputs) == 1 and n.inputs[0] in values:
            n = _constant(graph, n, values[n.inputs[0]])
            values[n.output], changed = n.params["value"], True
        nodes.append(n)
    return replace(graph, nodes=tuple(nodes)) if changed else graph


def _constant(graph: QGraph, n: QNode, value: object) -> QNode:
    """Table ``n`` of the constant codes ``value``: a constant node of the same name and
    output holding the codes it computes."""
    codes = reference.run_node(graph, n, [np.asarray(value, np.int64)[None]])[0]
    return QNode(n.name, "constant", (), n.output, {}, {"value": codes})
