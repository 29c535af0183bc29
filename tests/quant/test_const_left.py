"""mamba_ssm's reference Mamba (and Vision Mamba) projects its time steps by a constant on the
left of the rows' transpose, ``dt = self.dt_proj.weight @ dt.t()`` on (B L, r), then views
the (d, B L) product back per sample: refused ("a constant matmul operand multiplying rows
that hold the batch"); quant.const_left makes it the transposed linear it is. Float graph ==
torch, golden reference == simulator, close to float."""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import nn

from tests.quant.transformer_nets import check, simulated_output


class DtProj(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.x_proj = nn.Linear(8, 2, bias=False)
        self.dt_proj = nn.Linear(2, 8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        L = x.shape[1]
        dt = self.x_proj(rearrange(x, "b l d -> (b l) d"))
        dt = self.dt_proj.weight @ dt.t()
        dt = rearrange(dt, "d (b l) -> b d l", l=L)
        dt = nn.functional.softplus(dt + self.dt_proj.bias[..., None])
        return self.head((dt * x.transpose(1, 2)).transpose(1, 2))


def test_constant_times_a_transpose_of_rows_holding_the_batch_runs_bit_exact():
    from qasic.quant import const_left

    ep = torch.export.export(DtProj().eval(), (torch.randn(2, 6, 8),))
    users = set(ep.graph_signature.user_inputs)
    new = const_left.decompose(ep.graph_module.graph, users)
    assert new is not ep.graph_module.graph
    x = np.random.default_rng(0).standard_normal((8, 4, 8)).astype(np.float32)
    _, q, cos = check(DtProj(), x)  # float graph == torch
    assert cos > 0.999, cos
    simulated_output(q, x)


class HandLinear(nn.Module):
    """A linear written by hand on (batch, features): ``(W @ x.t()).t()``."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.w = nn.Parameter(torch.randn(6, 8))
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc((self.w @ x.t()).t())


def test_a_product_transposed_back_is_the_linear_itself():
    """Was refused (aten.t of (batch, features) outside sequence models); the two transposes
    cancel: float == torch, golden == simulator, cosine > 0.999."""
    x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
    graph, q, cos = check(HandLinear(), x)
    assert [n.op for n in graph.nodes].count("linear") == 2
    assert cos > 0.999, cos
    simulated_output(q, x)
