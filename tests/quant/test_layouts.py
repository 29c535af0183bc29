"""Per-value layouts in image models (qasic.quant.layouts): a map made in one mode and read in
the other is converted (a permute, once per value), and a softmax of a map enters sequence
mode. MobileViTV2's linear attention (its residual stream made in sequence mode and added to a
convolution's output, its keys and values split from a convolution's output and multiplied by
the softmax of its one query channel) and a softmax over the width of a feature map: the float
executor follows torch, the golden reference equals the simulator."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import capture
from tests.quant.opcheck import float_matches, reference_cosine


class LinearAttention(nn.Module):
    """MobileViTV2's block: conv -> unfold into (batch, C, ph pw, patches) -> GroupNorm(1) ->
    1x1 conv to 1 + 2 C channels -> split into query, keys, values -> softmax of the query over
    the patches -> context = sum(keys * softmax, patches) -> relu(values) * context -> 1x1 conv
    + the unfolded input -> fold -> 1x1 conv."""

    def __init__(self, c: int = 8, ph: int = 2, pw: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.proj = nn.Conv2d(3, c, 3, padding=1), nn.Conv2d(c, c, 1)
        self.norm, self.qkv, self.out = nn.GroupNorm(1, c), nn.Conv2d(c, 1 + 2 * c, 1), \
            nn.Conv2d(c, c, 1)
        self.c, self.k = c, (ph, pw)

    def forward(self, x):
        f = self.conv(x)
        b, c, h, w = f.shape
        p = F.unfold(f, self.k, stride=self.k).reshape(b, c, self.k[0] * self.k[1], -1)
        q, k, v = self.qkv(self.norm(p)).split([1, c, c], dim=1)
        context = (k * F.softmax(q, dim=-1)).sum(-1, keepdim=True)
        p = p + self.out(F.relu(v) * context.expand_as(v))
        return self.proj(F.fold(p.reshape(b, -1, p.shape[-1]), (h, w), self.k, stride=self.k))


def _x(n: int = 8, h: int = 8, w: int = 12) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, h, w)).astype(np.float32)


def _converted(graph, suffix: str) -> list:
    return [(n.op, n.attrs.get("perm"), graph.shapes[n.output]) for n in graph.nodes
            if n.name.endswith(suffix)]


def test_linear_attention_converts_each_map_read_in_the_other_mode_once():
    g = float_matches(LinearAttention(), _x(2))
    # read in sequence mode: the query (1 channel: a reshape), the keys and values (one permute
    # for both the relu and expand_as), all made by the qkv conv in image mode
    assert _converted(g, ".torch_layout") == [("reshape", None, (1, 4, 24)),
                                               ("permute", (2, 0, 1), (8, 4, 24)),
                                               ("permute", (2, 0, 1), (8, 4, 24))]
    # read in image mode: the unfolded input (sequence mode) added to the out conv's output
    assert _converted(g, ".image_layout") == [("permute", (1, 2, 0), (4, 24, 8))]
    ops = [n.op for n in g.nodes if n.op not in ("permute", "reshape")]
    assert ops.count("softmax") == 1 and ops.count("norm") == 1
    # the qkv conv, read by its split alone: one conv of each part's weight rows
    qkv = [g.shapes[n.output] for n in g.nodes if n.op == "conv2d" and n.name.startswith("qkv")]
    assert qkv == [(4, 24, 1), (4, 24, 8), (4, 24, 8)] and ops.count("conv2d") == 6


def test_linear_attention_follows_torch_and_runs_bit_exact():
    module, x = LinearAttention().eval(), _x()
    assert reference_cosine(module, x, 8) > 0.999  # measured 0.99987
    r = qasic.evaluate(module, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # 0.99988


class WidthSoftmax(nn.Module):
    """A softmax over the width of a feature map (N, C, H, W), times the map, then a conv:
    before, 'softmax input of a 4-D activation in an image model'."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.proj = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        f = self.conv(x)
        return self.proj(f * F.softmax(f, dim=-1))


def test_a_softmax_over_the_width_of_a_map_enters_sequence_mode():
    module, x = WidthSoftmax().eval(), _x()
    g = float_matches(module, x)
    # the conv's output to torch's (C, H, W) once (for the softmax and the mul), back once
    assert [n.attrs["perm"] for n in g.nodes if n.op == "permute"] == [(2, 0, 1), (1, 2, 0)]
    assert [n.op for n in g.nodes if n.op not in ("permute", "reshape")] == [
        "conv2d", "softmax", "mul", "conv2d"]
    r = qasic.evaluate(module, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]  # 0.99999


class ChannelGates(nn.Module):
    """GLPN's selective feature fusion: a sigmoid attention map of two channels, each channel
    (``attn[:, 0]``, a select of torch's channel axis) unsqueezed and multiplied with one of
    two feature maps: before, 'op aten.select.int is supported in sequence models only'."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.local, self.wide = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(3, 4, 5, padding=2)
        self.attn, self.proj = nn.Conv2d(8, 2, 3, padding=1), nn.Conv2d(4, 4, 1)

    def forward(self, x):
        f, g = self.local(x), self.wide(x)
        a = torch.sigmoid(self.attn(torch.cat((f, g), 1)))
        return self.proj(f * a[:, 0].unsqueeze(1) + g * a[:, 1].unsqueeze(1))

    def selects(self, x):
        """The same gates by selects alone (no unsqueeze back): a channel of a map in sequence
        mode."""
        f = self.local(x)
        a = torch.sigmoid(self.attn(torch.cat((f, self.wide(x)), 1)))
        return self.proj(f * (a[:, 0] * a[:, 1]).unsqueeze(1))


def test_a_channel_selected_and_unsqueezed_back_is_a_channel_slice_of_the_image():
    """qasic.quant.keepdim: ``attn[:, i].unsqueeze(1)`` is ``attn[:, i:i + 1]``, a selection
    of the channels-last image widened over the product's channels, in image mode (before:
    the attention map and both feature maps permuted to torch's (C, H, W) and the sum back,
    four permutes)."""
    module, x = ChannelGates().eval(), _x()
    g = float_matches(module, x)
    assert [n.op for n in g.nodes if n.op in ("permute", "reshape", "matmul")] == []
    # each a view of the sigmoid map's channel (a ``channels`` node: no GEMM; a 0/1 linear
    # before 2026-12-07)
    sel = {n.name: (n.op, n.inputs, n.attrs, g.shapes[n.output]) for n in g.nodes
           if n.name.startswith("select")}
    assert sel == {"select": ("channels", ("sigmoid",), {"start": 0, "stop": 1}, (8, 12, 1)),
                   "select_1": ("channels", ("sigmoid",), {"start": 1, "stop": 2}, (8, 12, 1))}
    r = qasic.evaluate(module, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


def test_a_select_of_a_channel_of_a_map_enters_sequence_mode():
    module, x = ChannelGates().eval(), _x()
    module.forward = module.selects
    g = float_matches(module, x)
    # each channel a selector (1, 2) times the map in torch's (C, H, W) layout; the map and
    # the feature map it scales permuted to it once each, the product back for the conv
    sel = {n.name: g.shapes[n.output] for n in g.nodes if n.op == "matmul"
           and n.name.startswith("select")}
    assert sel == {"select": (1, 1, 96), "select_1": (1, 1, 96)}
    assert [n.attrs["perm"] for n in g.nodes if n.op == "permute"] == [(2, 0, 1)] * 2 + [
        (1, 2, 0)]
    r = qasic.evaluate(module, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


class ReadoutAfterImage(nn.Module):
    """DPT's reassemble stage: patch tokens and a CLS token through a linear; the patches
    viewed as an image and convolved (image mode), then the CLS token of the same tokens
    (``tokens[:, 0]``, a sequence made in sequence mode, selected in image mode) added to the
    image per channel. The CLS token depends on the input, as a backbone's output does (a
    parameter's would be a constant after the linear, its selection the constant:
    quant.seqpasses)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.patch, self.mix = nn.Conv2d(3, 8, 4, stride=4), nn.Linear(8, 8)
        self.cls = nn.Parameter(torch.randn(1, 1, 8))
        self.conv, self.proj = nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 8)

    def forward(self, x):
        p = self.patch(x).flatten(2).transpose(1, 2)
        t = self.mix(torch.cat((self.cls + p.mean(1, keepdim=True), p), 1))
        b, _, c = t.shape
        image = self.conv(t[:, 1:].reshape(b, 2, 3, c).permute(0, 3, 1, 2))
        return image + self.proj(t[:, 0])[:, :, None, None]


def test_a_select_of_a_sequence_read_in_image_mode_goes_back_to_sequence_mode():
    module, x = ReadoutAfterImage().eval(), _x()
    g = capture(module, torch.from_numpy(x[:1]))  # it ends in torch's layout: the
    # cosine below checks its numbers (opcheck.float_matches reads only image layouts)
    assert g.output_layout == "torch" and g.shapes[g.output] == (8, 2, 3)
    # the CLS token: a selector (1, 7) times the tokens, after the conv of the patches
    names = [n.name for n in g.nodes]
    assert names.index("select") > names.index("conv") and g.nodes[names.index("select")].op \
        == "matmul" and g.shapes["select"] == (1, 8)
    r = qasic.evaluate(module, x[:4], calibration=x[:4])
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


def _unbound(module: ChannelGates, x: torch.Tensor, dim: int) -> torch.Tensor:
    """The gates by ``unbind`` of the attention map's channels (dim 1), or of its batch (dim 0:
    Pixtral's loop over the images of a batch, joined into one sequence)."""
    f = module.local(x)
    a = torch.sigmoid(module.attn(torch.cat((f, module.wide(x)), 1)))
    if dim == 0:
        return torch.cat([p.flatten(1).T for p in a.unbind(0)]).unsqueeze(0)
    a0, a1 = a.unbind(1)
    return module.proj(f * (a0 * a1).unsqueeze(1))


def test_an_unbind_of_a_maps_channels_enters_sequence_mode_and_of_its_batch_is_refused():
    import pytest

    from qasic.errors import UnsupportedOpError

    module, x = ChannelGates().eval(), _x()
    module.forward = lambda t: _unbound(module, t, 1)
    g = float_matches(module, x)
    assert [g.shapes[n.output] for n in g.nodes if n.name.startswith("unbind")
            and n.op == "matmul"] == [(1, 1, 96)] * 2  # each channel a selector of the map
    module.forward = lambda t: _unbound(module, t, 0)
    with pytest.raises(UnsupportedOpError, match=r"node 'unbind': a select of axis 0, the batch "
                                                 r"axis \(a loop over the samples of a batch"):
        capture(module, torch.from_numpy(x[:2]))


class FramesDense(nn.Module):
    """LASR's subsampling: a linear over the mel bins of (batch, frames, mels) (the last axis of
    a 1-D map in image mode), then conv1d over the frames: before, 'linear on a 4-D activation
    of an image model'."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.dense, self.conv = nn.Linear(6, 8), nn.Conv1d(8, 4, 3, stride=2)

    def forward(self, x):
        return self.conv(torch.relu(self.dense(x)).transpose(1, 2))


def test_a_linear_over_the_last_axis_of_a_map_enters_sequence_mode():
    x = np.random.default_rng(0).standard_normal((4, 10, 6)).astype(np.float32)
    g = capture(FramesDense().eval(), torch.from_numpy(x[:1]))
    assert [n.op for n in g.nodes if n.op not in ("permute", "reshape")] == [
        "linear", "relu", "conv2d"]
    r = qasic.evaluate(FramesDense().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]


class SeriesPatches(nn.Module):
    """TimesFM's input: a series (batch, steps) viewed as patches (batch, patches, length) and
    embedded by a linear: the vector's memory is torch's order, the model goes to sequence
    mode (before, 'reshape to (4, 8) is neither a flatten ...')."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.mix = nn.Linear(8, 16), nn.Linear(16, 16)

    def forward(self, x):
        return self.mix(torch.relu(self.embed(x.reshape(x.shape[0], 4, 8))))


def test_a_vector_viewed_as_a_sequence_enters_sequence_mode():
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    g = capture(SeriesPatches().eval(), torch.from_numpy(x[:1]))
    assert [n.op for n in g.nodes if n.op != "reshape"] == ["linear", "relu", "linear"]
    assert g.shapes[g.output] == (4, 16)
    r = qasic.evaluate(SeriesPatches().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999, r["cosine"]
