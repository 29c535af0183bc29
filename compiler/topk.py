"""``topk_mask`` lowered to ops the accelerator already runs: two GEMMs, each with a table.

For a row of E codes x (the router's scores) and each ordered pair (i, j), j != i:

    d[i, j]  = linear:  2 (x_j - x_i) + (1 if j < i else -1)  weights +-2, bias +-1, M = 1,
                        int8 codes of scale 1 (|d| <= 511 clamps to -128..127: the sign is kept;
                        the zero point cancels in the difference)
    b[i, j]  = lut:     1 if d > 0 else 0        j beats i: x_j > x_i, or x_j == x_i and j < i
    r[i]     = linear:  sum_j b[i, j]            weights 0/1, M = 1; saturates at 127 (k <= 127)
    m[i]     = lut:     1 if r < k else 0        the golden reference's topk_mask, bit for bit

E (E - 1) pair columns: 2 T E^2 (E - 1) MACs for T tokens (E = 8: 896 per token, E = 64:
516,096), against the experts' 3 T D I E. Each linear fuses with its table into one GEMM kernel.
"""

from __future__ import annotations

import numpy as np

from qasic.compiler.expand import expand_op
from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph, QNode, TensorQ

ONE = TensorQ(1.0, 0, 8)       # exact small integers
UNIT_Q, UNIT_SHIFT = 1 << 30, 1  # requantize by M = 1: acc * 2^30 * 2^(1 - 31)
MAX_K = 127                    # the rank saturates at int8's 127


def expand(graph: QGraph) -> QGraph:
    """``graph`` with every topk_mask node replaced by its four nodes (the module doc); a
    topk_mask of scores an earlier one ranked (the k masks of quant.topk_select's one-hot)
    reads that one's rank: its last table alone."""
    ranks: dict[str, str] = {}  # scores tensor -> the rank made for it
    return expand_op(graph, "topk_mask", lambda g, n: _chain(g, n, ranks))


def _unit(n: int) -> dict:
    return {"multiplier": np.full(n, UNIT_Q, np.int32), "shift": np.full(n, UNIT_SHIFT, np.int32)}


def _chain(graph: QGraph, node: QNode, ranks: dict[str, str]
           ) -> list[tuple[QNode, tuple[int, ...], TensorQ]]:
    """(node, its output's per-sample shape, its output's encoding): ONE codes, then the mask."""
    x, k = node.inputs[0], int(node.attrs["k"])
    e = graph.shapes[x][-1]
    if graph.tensors[x].is_fp or not 1 <= k <= min(e, MAX_K):
        raise UnsupportedOpError(f"topk_mask {node.name}: top-{k} of {e} "
                                 f"{graph.tensors[x].fmt} codes; it compares INT codes, "
                                 f"k in 1..{min(e, MAX_K)}")
    signed = np.arange(256) - 256 * (np.arange(256) >= 128)  # table index -> int8 code
    mask = QNode(node.name, "lut", (ranks.get(x, f"{node.name}.rank"),), node.output,
                 {"fn": "topk_rank", "k": k},
                 {"table": ((signed >= 0) & (signed < k)).astype(np.int64)})
    if x in ranks:
        return [(mask, graph.shapes[node.output], graph.tensors[node.output])]
    ranks[x] = f"{node.name}.rank"
    pairs = [(i, j) for i in range(e) for j in range(e) if j != i]
    diff = np.zeros((len(pairs), e), np.int8)
    bias = np.zeros(len(pairs), np.int64)
    total = np.zeros((e, len(pairs)), np.int8)
    for c, (i, j) in enumerate(pairs):
        diff[c, j], diff[c, i], bias[c] = 2, -2, 1 if j < i else -1
        total[i, c] = 1
    name, rows = node.name, graph.shapes[x][:-1]
    nodes = [
        QNode(f"{name}.diff", "linear", (x,), f"{name}.diff", {},
              {"weight": diff, "bias": bias, **_unit(len(pairs))}, weight_bits=8,
              weight_format="int8"),
        QNode(f"{name}.beats", "lut", (f"{name}.diff",), f"{name}.beats", {"fn": "topk_beats"},
              {"table": (signed > 0).astype(np.int64)}),
        QNode(f"{name}.rank", "linear", (f"{name}.beats",), f"{name}.rank", {},
              {"weight": total, "bias": np.zeros(e, np.int64), **_unit(e)}, weight_bits=8,
              weight_format="int8"),
        mask,
    ]
    shapes = (rows + (len(pairs),), rows + (len(pairs),), rows + (e,), graph.shapes[node.output])
    encs = (ONE, ONE, ONE, graph.tensors[node.output])
    return list(zip(nodes, shapes, encs, strict=True))
