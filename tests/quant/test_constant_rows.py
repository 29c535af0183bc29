"""A selection of constant rows out of a slice of the batch axis (qasic.quant.constant_rows):
TimeSformer's class tokens ``embeddings[:batch_size, 0, :]`` of frames folded into the batch
are the class token plus its position embedding whatever rows the slice takes, so capture
folds them to that constant and the model runs bit-exact; a slice of the batch axis whose
selected rows depend on the input is still refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture, constant_rows
from tests.quant.transformer_nets import check

F, P, D = 3, 4, 16


class Frames(nn.Module):
    """(batch, F frames, P patches, 6) -> per frame (batch * F) a linear, a class token cat
    before its patches, a position embedding added; the class tokens taken as TimeSformer
    takes them (``e[:batch, row]``), the patches of all frames after them, a linear."""

    def __init__(self, row: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.proj, self.out = nn.Linear(6, D), nn.Linear(D, D)
        self.cls = nn.Parameter(torch.randn(1, 1, D))
        self.pos = nn.Parameter(torch.randn(1, 1 + P, D) * 0.5)
        self.row = row

    def forward(self, x):
        n, f = x.shape[:2]
        e = self.proj(x.reshape(n * f, P, 6))
        e = nn.functional.dropout(torch.cat((self.cls.expand(n * f, -1, -1), e), 1) + self.pos,
                                  0.0, False)
        cls = e[:n, self.row, :].unsqueeze(1)
        return self.out(torch.cat((cls, e[:, 1:].reshape(n, f * P, D)), 1))


def _x(n: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, F, P, 6)).astype(np.float32)


def test_the_class_tokens_slice_becomes_a_constant():
    model = Frames().eval()
    ep = torch.export.export(model, (torch.from_numpy(_x(2)),))
    graph = constant_rows.decompose(ep.graph, set(ep.graph_signature.user_inputs))
    slices = [n for n in graph.nodes if n.target is torch.ops.aten.slice.Tensor
              and int(n.args[1]) == 0]
    assert len(slices) == 1 and slices[0].args[0].target is torch.ops.aten.expand.default
    # every node the constant is made of reads no input
    seen, todo = set(), [slices[0]]
    while todo:
        n = todo.pop()
        assert n.name not in ep.graph_signature.user_inputs
        seen.add(n)
        todo += [a for a in n.all_input_nodes if a not in seen]


def test_frames_in_the_batch_with_class_tokens_run_bit_exact():
    model = Frames().eval()
    x = _x()
    _, _, cosine = check(model, x)  # the float graph equals torch
    assert cosine > 0.999, cosine
    record = qasic.evaluate(model, x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_rows_that_depend_on_the_input_are_still_refused():
    model = Frames(row=1).eval()  # a patch: an activation, sample 0's
    with pytest.raises(UnsupportedOpError, match=r"a slice of axis 0, the batch axis"):
        capture(model, torch.from_numpy(_x(2)))
