"""torch.linalg.norm over one axis (OWL-ViT's and OWLv2's normalized embeddings, ord 2 and ord
None) is rewritten before capture as the vector norm it is (qasic.quant.vector_norm): the
rewritten graph computes torch's values, the quantized model runs bit-exact through the golden
reference and the simulator; a norm over two axes (a matrix norm) stays, refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from qasic.quant.vector_norm import decompose
from tests.quant.rewrite_check import (
    assert_bit_exact,
    assert_computes_torch,
    assert_float_graph_computes_torch,
)

aten = torch.ops.aten


class Normalized(nn.Module):
    """OWL-ViT's embeddings: a linear, then x / linalg.norm(x, 2, -1, keepdim) (its heads:
    ord None, plus 1e-6); ``matrix``: a norm over two axes instead."""

    def __init__(self, matrix: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.matrix = nn.Linear(12, 16), matrix

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc(x)
        if self.matrix:
            return y / torch.linalg.norm(y.view(-1, 4, 4), dim=(-2, -1)).view(-1, 1)
        a = y / torch.linalg.norm(y, ord=2, dim=-1, keepdim=True)
        return a + y / (torch.linalg.norm(y, dim=-1, keepdim=True) + 1e-6)


def _x() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((8, 12)).astype(np.float32)


def test_a_norm_over_one_axis_is_the_vector_norm_and_runs_bit_exact():
    x, model = _x(), Normalized().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph)
    targets = [n.target for n in new.nodes]
    assert aten.linalg_norm.default not in targets
    assert targets.count(aten.linalg_vector_norm.default) == 2
    assert_computes_torch(ep, new, model, x[:1])
    assert_float_graph_computes_torch(model, x)
    assert_bit_exact(model, x)


def test_a_norm_over_two_axes_is_left_and_refused_in_one_line():
    model = Normalized(matrix=True).eval()
    ep = torch.export.export(model, (torch.zeros(1, 12),))
    assert decompose(ep.graph_module.graph) is ep.graph_module.graph
    with pytest.raises(UnsupportedOpError) as e:
        capture(model, torch.zeros(2, 12))
    assert "linalg_norm" in str(e.value) and "\n" not in str(e.value)
