"""A tensor that a concat shares its encoding with (calibrate.concat_pins) and that a matmul
reads too: a graph network written per graph (EGNN's node features gathered by constant edge
indices, h[:, rows], a matmul by a constant one-hot, and concatenated with them for the node
update). The concat's one TensorQ is symmetric then, when its affine one's zero point is not
0 (a matmul's operands have zero point 0); quantization stopped in 'matmul operands need zero
point 0'."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .transformer_nets import float_and_quantized

N = 5
ROWS = [i for i in range(N) for j in range(N) if i != j]


class PerGraph(nn.Module):
    """Nodes (B, N, F) of one graph per sample: messages from each edge's end, summed at its
    start by a constant (N, E) incidence, concatenated with the node features."""

    def __init__(self, f: int = 4, hidden: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.edge = nn.Linear(f, hidden), nn.Linear(hidden, hidden)
        self.node = nn.Linear(2 * hidden, 3)
        self.register_buffer("rows", torch.tensor(ROWS))
        self.register_buffer("cols", torch.tensor([j for i in range(N) for j in range(N)
                                                   if i != j]))

    def forward(self, h):
        h = self.embed(h)
        m = self.edge(h[:, self.cols])
        agg = h.new_zeros(h.shape).index_add(1, self.rows, m)
        return self.node(torch.cat([h, agg], -1)).sum(1)


def test_a_concat_member_a_matmul_reads_is_symmetric_and_bit_exact():
    x = np.random.default_rng(0).standard_normal((16, N, 4)).astype(np.float32)
    model = PerGraph().eval()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg, cos = float_and_quantized(model, x, want)  # float == torch, golden == simulator
    assert any(n.op == "matmul" for n in fg.nodes) and any(n.op == "concat" for n in fg.nodes)
    assert cos > 0.99, cos
