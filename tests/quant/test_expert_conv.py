"""quant.expert_conv: a conv of per-sample kernels mixed from constant experts (timm's
CondConv2d; Dynamic Convolution's torch.mm(attention, weight)) is the experts' fixed-weight
convs scaled per sample by their routing weights: the float graph equals torch, golden
reference == simulator, and the walk meets no conv of an activation weight."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.opcheck import float_matches


class CondConv(nn.Module):
    """timm's CondConv2d (layers/cond_conv2d.py) behind its routing: sigmoid of a linear of the
    pooled input; per-sample bias; the output permuted back from (1, B O, H, W)."""

    def __init__(self, cin=4, cout=6, k=3, groups=1, experts=3):
        super().__init__()
        torch.manual_seed(0)
        self.cin, self.cout, self.k, self.groups = cin, cout, k, groups
        self.routing_fn = nn.Linear(cin, experts)
        self.weight = nn.Parameter(torch.randn(experts, cout * cin // groups * k * k) * 0.3)
        self.bias = nn.Parameter(torch.randn(experts, cout) * 0.3)

    def forward(self, x):
        B, C, H, W = x.shape
        routing_weights = torch.sigmoid(self.routing_fn(F.adaptive_avg_pool2d(x, 1).flatten(1)))
        weight = torch.matmul(routing_weights, self.weight)
        weight = weight.view((B * self.cout, self.cin // self.groups, self.k, self.k))
        bias = torch.matmul(routing_weights, self.bias).view(B * self.cout)
        x = x.reshape(1, B * C, H, W)
        out = F.conv2d(x, weight, bias, 1, self.k // 2, 1, groups=self.groups * B)
        return out.permute([1, 0, 2, 3]).view(B, self.cout, out.shape[-2], out.shape[-1])


class DynamicConv(nn.Module):
    """kaijieshi7's Dynamic-convolution-Pytorch Dynamic_conv2d: softmax attention over K
    kernels with a temperature, torch.mm with the viewed weight, no bias, stride 2, the
    output viewed straight back."""

    def __init__(self, cin=4, cout=8, k=3, K=4):
        super().__init__()
        torch.manual_seed(1)
        self.cin, self.cout, self.k, self.K = cin, cout, k, K
        self.fc1 = nn.Conv2d(cin, 8, 1)
        self.fc2 = nn.Conv2d(8, K, 1)
        self.weight = nn.Parameter(torch.randn(K, cout, cin, k, k) * 0.3)

    def forward(self, x):
        att = F.adaptive_avg_pool2d(x, 1)
        att = self.fc2(F.relu(self.fc1(att))).view(x.size(0), -1)
        softmax_attention = F.softmax(att / 4.0, 1)
        batch_size, _, height, width = x.size()
        x = x.view(1, -1, height, width)
        weight = self.weight.view(self.K, -1)
        aggregate_weight = torch.mm(softmax_attention, weight).view(-1, self.cin, self.k,
                                                                      self.k)
        output = F.conv2d(x, weight=aggregate_weight, bias=None, stride=2, padding=1,
                          groups=batch_size)
        return output.view(batch_size, self.cout, output.size(-2), output.size(-1))


@pytest.mark.parametrize(("model", "experts"), [(CondConv(), 3), (CondConv(6, 6, groups=6), 3),
                                                (DynamicConv(), 4)],
                         ids=["condconv", "condconv_depthwise", "dynamic_conv"])
def test_mixed_expert_kernels_are_routed_expert_convs_and_bit_exact(model, experts):
    m = model.eval()
    cin = m.cin
    g = capture(m, torch.zeros(1, cin, 6, 6))
    convs = [n for n in g.nodes if "weight" in n.params and n.params["weight"].ndim == 4]
    assert len(convs) >= experts  # one fixed-weight conv per expert (+ the routing's own)
    x = np.random.default_rng(0).standard_normal((4, cin, 6, 6)).astype(np.float32)
    float_matches(m, x)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99


class RectifiedKernels(CondConv):
    """A per-sample weight of another form (a ReLU of the mixture: not linear in the routing
    weights): refused."""

    def forward(self, x):
        B, C, H, W = x.shape
        r = torch.sigmoid(self.routing_fn(F.adaptive_avg_pool2d(x, 1).flatten(1)))
        weight = torch.matmul(r, self.weight).relu().view(B * self.cout, self.cin, 3, 3)
        out = F.conv2d(x.reshape(1, B * C, H, W), weight, None, 1, 1, 1, groups=B)
        return out.view(B, self.cout, H, W)


def test_a_weight_of_another_form_is_still_refused_in_one_line():
    with pytest.raises(UnsupportedOpError, match="conv weight must be a constant"):
        capture(RectifiedKernels().eval(), torch.zeros(1, 4, 8, 8))
