"""A LayerNorm over the channels of (N, C, H, W) written out (ConvNeXt's reference code, SAM's
LayerNorm2d) is rewritten before capture as the channels-last F.layer_norm it is
(qasic.quant.channel_norm): one ``norm`` node, the affine folded in, bit-exact through the
golden reference and the simulator, close to float."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import fx, nn

import qasic
from qasic.quant import capture
from qasic.quant.channel_norm import decompose


class LayerNorm2d(nn.Module):
    """ConvNeXt's ``LayerNorm(data_format="channels_first")`` / SAM's LayerNorm2d."""

    def __init__(self, c: int, eps: float = 1e-6, form: str = "div"):
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.weight = nn.Parameter(torch.rand(c, generator=g) + 0.5)
        self.bias = nn.Parameter(torch.rand(c, generator=g) - 0.5)
        self.eps, self.form = eps, form

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        if self.form == "square":
            s = torch.square(x - u).mean(1, keepdim=True)
        else:
            s = (x - u).pow(2).mean(1, keepdim=True)
        if self.form == "rsqrt":
            x = (x - u) * torch.rsqrt(s + self.eps)
        else:
            x = (x - u) / torch.sqrt(s + self.eps)
        shape = (-1,) + (1,) * (x.dim() - 2)
        return self.weight.view(shape) * x + self.bias.view(shape)


class ConvNeXtish(nn.Module):
    """Patchify conv, channels-first LayerNorm, depthwise conv, LayerNorm, pointwise conv."""

    def __init__(self, form: str = "div", dims: int = 2):
        super().__init__()
        torch.manual_seed(0)
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.stem, self.n1 = conv(3, 16, 2, 2), LayerNorm2d(16, form=form)
        self.dw, self.n2 = conv(16, 16, 3, padding=1, groups=16), LayerNorm2d(16, form=form)
        self.pw = conv(16, 8, 1)

    def forward(self, x):
        x = self.n1(self.stem(x))
        return self.pw(self.n2(x + self.dw(x)))


@pytest.mark.parametrize("form, dims", [("div", 2), ("rsqrt", 2), ("square", 2), ("div", 1)])
def test_a_channels_first_layer_norm_is_one_norm_and_runs_bit_exact(form, dims):
    shape = (8, 3, 8, 8) if dims == 2 else (8, 3, 16)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = ConvNeXtish(form, dims).eval()
    g = capture(model, torch.from_numpy(x[:1]))
    assert [n.op for n in g.nodes].count("norm") == 2
    assert not any(n.op in ("avgpool2d", "linear", "lut") for n in g.nodes), \
        [n.op for n in g.nodes]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class StatisticReused(nn.Module):
    """The variance also read outside the norm: not the pattern, left as written."""

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return (x - u) / torch.sqrt(s + 1e-5), s


def test_only_the_exact_pattern_is_rewritten():
    ep = torch.export.export(StatisticReused(), (torch.randn(1, 4, 3, 3),))
    graph = ep.graph_module.graph
    assert decompose(graph) is graph
    ep = torch.export.export(LayerNorm2d(4), (torch.randn(2, 4, 3, 3),))
    new = decompose(ep.graph_module.graph)
    targets = [n.target for n in new.nodes if n.op == "call_function"]
    assert torch.ops.aten.layer_norm.default in targets
    assert torch.ops.aten.mean.dim not in targets
    # the rewritten graph computes torch's values
    gm = fx.GraphModule(ep.graph_module, new)
    x = torch.randn(2, 4, 3, 3)
    params = [p.detach() for p in ep.state_dict.values()]
    torch.testing.assert_close(gm(*params, x)[0], LayerNorm2d(4)(x), rtol=1e-5, atol=1e-5)


class TasNetNorms(nn.Module):
    """Conv-TasNet's cLN (torch.var, gamma * (y - mean) / pow(var + eps, 0.5) + beta) and gLN
    (the same over the whole (C, T) map by two chained means) around dilated depthwise convs."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        g = torch.Generator().manual_seed(4)
        self.enc = nn.Conv1d(1, c, 4, 2)
        self.dw = nn.Conv1d(c, c, 3, padding=2, dilation=2, groups=c)
        self.out = nn.Conv1d(c, 2, 1)
        self.g1, self.b1, self.g2, self.b2 = (nn.Parameter(torch.rand(1, c, 1, generator=g) + s)
                                              for s in (0.5, -0.5, 0.5, -0.5))

    def forward(self, x):
        y = torch.relu(self.enc(x))
        mean = torch.mean(y, dim=1, keepdim=True)
        var = torch.var(y, dim=1, keepdim=True, unbiased=False)
        y = self.g1 * (y - mean) / torch.pow(var + 1e-8, 0.5) + self.b1
        y = self.dw(y)
        mean = y.mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        var = (torch.pow(y - mean, 2)).mean(dim=1, keepdim=True).mean(dim=2, keepdim=True)
        y = self.g2 * (y - mean) / torch.pow(var + 1e-8, 0.5) + self.b2
        return self.out(y)


def test_tasnet_channel_and_global_norms_are_norms_and_run_bit_exact():
    x = np.random.default_rng(0).standard_normal((8, 1, 64)).astype(np.float32)
    model = TasNetNorms().eval()
    ep = torch.export.export(model, (torch.from_numpy(x[:2]),))
    new = decompose(ep.graph_module.graph)
    targets = [n.target for n in new.nodes if n.op == "call_function"]
    aten = torch.ops.aten
    assert aten.layer_norm.default in targets and aten.group_norm.default in targets
    assert aten.var.dim not in targets and aten.mean.dim not in targets, targets
    gm = fx.GraphModule(ep.graph_module, new)  # the rewritten graph computes torch's values
    params = [p.detach() for p in ep.state_dict.values()]
    xt = torch.from_numpy(x)
    torch.testing.assert_close(gm(*params, xt)[0], model(xt), rtol=1e-4, atol=1e-4)
    g = capture(model, torch.from_numpy(x[:1]))
    assert [n.op for n in g.nodes].count("norm") == 2, [n.op for n in g.nodes]
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class UnbiasedVar(nn.Module):
    """torch.var's default (unbiased) is not LayerNorm's statistic: left as written."""

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        return (x - u) / torch.sqrt(torch.var(x, 1, keepdim=True) + 1e-5)


def test_an_unbiased_variance_is_not_rewritten():
    ep = torch.export.export(UnbiasedVar(), (torch.randn(1, 4, 3, 3),))
    graph = ep.graph_module.graph
    assert decompose(graph) is graph
