"""timm's SelectiveKernel (SK-Net) stacks its branches' (N, C, H, W) outputs on a new axis 1,
sums them, softmaxes an attention over the paths and weights them: the stack is rewritten
before capture as the concat of the maps unsqueezed (qasic.quant.map_stack), the form the
hand-written SK-Net uses. The rewritten graph computes torch's values; the quantized model is
bit-exact through the golden reference and the simulator, close to float."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from qasic.quant.map_stack import decompose
from tests.quant.rewrite_check import assert_bit_exact, assert_float_graph_computes_torch

aten = torch.ops.aten


def _branch(c: int, dilation: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=dilation, dilation=dilation, bias=False),
                         nn.BatchNorm2d(c), nn.ReLU())


class SelectiveKernel(nn.Module):
    """timm's layers/selective_kernel.py: two paths (3x3, 3x3 dilated 2 for the 5x5), their
    stack, SelectiveKernelAttn (1x1 convs on the summed map's mean, a view to (N, paths, C, 1,
    1), softmax over the paths), the weighted sum."""

    def __init__(self, c: int = 6, paths: int = 2, mid: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.paths = paths
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.branches = nn.ModuleList(_branch(c, 1 + i) for i in range(paths))
        self.fc_reduce = nn.Conv2d(c, mid, 1, bias=False)
        self.bn = nn.BatchNorm2d(mid)
        self.fc_select = nn.Conv2d(mid, c * paths, 1, bias=False)
        for m in self.modules():  # statistics away from the identity
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = self.stem(x)
        x = torch.stack([op(x) for op in self.branches], dim=1)
        a = torch.relu(self.bn(self.fc_reduce(x.sum(1).mean((2, 3), keepdim=True))))
        a = self.fc_select(a)
        b, c, h, w = a.shape
        a = torch.softmax(a.view(b, self.paths, c // self.paths, h, w), dim=1)
        return torch.sum(x * a, dim=1)


def test_a_stack_of_image_maps_is_a_concat_and_runs_bit_exact():
    x = np.random.default_rng(0).standard_normal((8, 3, 8, 8)).astype(np.float32)
    model = SelectiveKernel().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    new = decompose(ep.graph_module.graph)
    assert not [n for n in new.nodes if n.target is aten.stack.default]
    assert [len(n.args[0]) for n in new.nodes if n.target is aten.cat.default] == [2]
    assert_float_graph_computes_torch(model, x)
    assert_bit_exact(model, x)


class TokenStack(nn.Module):
    """A stack of (N, T, H, D) rows on the last axis (a sequence model's rotary pairs): kept."""

    def forward(self, x):
        return torch.stack([x, -x], dim=-1)


def test_a_stack_on_another_axis_stays():
    ep = torch.export.export(TokenStack(), (torch.zeros(1, 4, 2, 8),))
    assert decompose(ep.graph_module.graph) is ep.graph_module.graph
