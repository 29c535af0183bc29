"""torch.vmap regions at capture (qasic.quant.vmaps): a mask vmapped over constant indices (as
transformers builds one from a model's own mask function: a tensor indexed by the batched
index, flat_apply of ModIndex) folds to one constant; a vmap over activations is refused in
one line and leaves no vmap level open."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from torch._dynamo._trace_wrapped_higher_order_op import TransformGetItemToIndex

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, run_float


class VmapMask(nn.Module):
    """A linear layer times a mask over the 16 positions, vmapped over their index."""

    def __init__(self, over_activations: bool = False):
        super().__init__()
        self.lin = nn.Linear(8, 8)
        self.over_activations = over_activations
        self.register_buffer("t", torch.arange(16) % 3, persistent=False)

    def forward(self, x):
        y = self.lin(x)
        if self.over_activations:
            return torch.vmap(lambda r: r * 2.0)(y)
        with TransformGetItemToIndex():
            m = torch.vmap(lambda i: self.t[i] > 0)(torch.arange(x.shape[1]))
        return y * m[None, :, None]


def test_a_mask_vmapped_over_constant_indices_folds_to_one_constant():
    torch.manual_seed(0)
    model, x = VmapMask().eval(), torch.randn(2, 16, 8)
    assert "flat_apply" in {str(n.target) for n in
                            torch.export.export(model, (x,), strict=False).graph.nodes}
    graph = capture(model, x)
    assert [n.op for n in graph.nodes] == ["linear", "constant", "mul"]
    (mask,) = [n.params["value"] for n in graph.nodes if n.op == "constant"]
    # (positions, features): the mask of each position on every feature
    assert np.array_equal(np.asarray(mask), np.repeat(np.arange(16)[:, None] % 3 > 0, 8, 1))
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x.numpy())), want, atol=1e-5)
    assert torch._C._functorch.maybe_current_level() is None


def test_a_vmap_over_activations_is_refused_and_closes_its_level():
    with pytest.raises(UnsupportedOpError, match="_add_batch_dim"):
        capture(VmapMask(over_activations=True).eval(), torch.randn(2, 16, 8))
    assert torch._C._functorch.maybe_current_level() is None
