"""A convolution over a sequence's positions (Wav2Vec2's positional conv embedding: the (N, T, C)
sequence transposed to (N, C, T), a grouped conv1d with padding, an even kernel's extra output
sliced off, GELU, transposed back and added): the transpose in is the 1-D image (1, T, C)
already (no node), the conv's output is permuted to torch's (C, T) for the sequence-mode ops
after it; the golden reference follows torch and the program runs bit-exact. Likewise the
convolutions of a token model (sequence mode from its input)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.evaluation import evaluate
from qasic.quant import capture, reference, run_float
from qasic.quant.evaluate import cosine
from tests.quant.opcheck import quantized, torch_out


class PosConv(nn.Module):
    """conv1d front end (N, 3, L) -> (N, T, C) sequence -> LayerNorm, linear -> + GELU of a
    grouped positional conv1d (even kernel, padding k // 2, last position dropped) -> LayerNorm."""

    def __init__(self, c: int = 16, k: int = 4, groups: int = 2):
        super().__init__()
        torch.manual_seed(0)
        self.front = nn.Conv1d(3, c, 3, stride=2)
        self.ln1, self.ln2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.fc = nn.Linear(c, c)
        self.pos = nn.Conv1d(c, c, k, padding=k // 2, groups=groups)
        self.k = k

    def forward(self, x):
        h = self.fc(self.ln1(self.front(x).transpose(1, 2)))
        p = self.pos(h.transpose(1, 2))
        if self.k % 2 == 0:
            p = p[:, :, :-1]
        return self.ln2(h + F.gelu(p).transpose(1, 2))


def _x(n: int = 8, length: int = 21) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 3, length)).astype(np.float32)


def float_matches(module: nn.Module, x: np.ndarray):
    """The captured graph's float run equals torch (its output a sequence in torch's layout)."""
    graph = capture(module.eval(), torch.from_numpy(x[:1]))
    got = run_float(graph, graph.to_internal(x))
    np.testing.assert_allclose(got, torch_out(module, x), rtol=1e-4, atol=1e-4)
    return graph


def test_the_positional_conv_reads_the_sequence_as_its_image_and_writes_torch_layout():
    g = float_matches(PosConv(), _x(2))
    conv = next(n for n in g.nodes if n.name == "pos")
    assert g.shapes[conv.inputs[0]] == (1, 10, 16) and g.shapes[conv.output] == (1, 11, 16)
    assert conv.attrs["groups"] == 2 and conv.attrs["padding"] == (0, 2, 0, 2)
    perms = [(n.attrs["perm"], g.shapes[n.output]) for n in g.nodes if n.op == "permute"]
    assert perms == [((1, 0), (16, 11)), ((1, 0), (10, 16))]  # out of the conv, and back


def test_odd_kernels_and_the_reference_follow_torch():
    for k in (3, 4):
        module, x = PosConv(k=k).eval(), _x()
        float_matches(module, x)
        g = quantized(module, x)
        got = g.dequantize_output(reference.run(g, g.quantize_input(x)))
        assert cosine(got, torch_out(module, x)) > 0.999, k


def test_the_positional_conv_runs_bit_exact():
    x = _x(2)
    record = evaluate(PosConv().eval(), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


class TokenConvs(nn.Module):
    """A token model with convolutions: embeddings viewed as a 4x4 image (N, H, W, C) permuted
    to (N, C, H, W) for a conv2d, flattened back to tokens; and a grouped conv1d over the
    (N, C, T) transpose of the embeddings."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, 8)
        self.conv, self.pos = nn.Conv2d(8, 8, 3, padding=1), nn.Conv1d(8, 8, 3, padding=1, groups=2)
        self.fc = nn.Linear(8, 8)

    def forward(self, ids):
        e = self.emb(ids)
        y = self.conv(e.view(-1, 4, 4, 8).permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
        return self.fc(y + self.pos(e.transpose(1, 2)).transpose(1, 2))


def test_convolutions_in_a_token_model_write_torch_layout_and_run_bit_exact():
    """Before, the conv2d's output (H, W, C) was labeled torch's (C, H, W) and the program's
    geometry check failed ('output 8x4 does not match'); the conv1d was refused."""
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50, (4, 16)))
    g = capture(TokenConvs().eval(), ids[:1])
    convs = [n for n in g.nodes if n.op == "conv2d"]
    assert [g.shapes[n.output] for n in convs] == [(4, 4, 8), (1, 16, 8)]
    record = evaluate(TokenConvs().eval(), ids, calibration=ids)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]  # 0.99990


class ConvProjection(nn.Module):
    """CvT's convolutional projection in a token model: tokens (N, 16, C) viewed as a 4x4 image
    (N, H, W, C) permuted to (N, C, H, W), a depthwise conv2d then a BatchNorm2d (and a
    BatchNorm1d after a conv1d over the positions), flattened back to tokens and a linear."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, c)
        self.conv = nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False)
        self.pos = nn.Conv1d(c, c, 3, padding=1)
        self.bn, self.bn1 = nn.BatchNorm2d(c), nn.BatchNorm1d(c)
        for bn in (self.bn, self.bn1):  # drawn statistics: a fold that did nothing would show
            bn.weight.data, bn.bias.data = torch.rand(c) + 0.5, torch.randn(c)
            bn.running_mean, bn.running_var = torch.randn(c), torch.rand(c) + 0.5
        self.fc = nn.Linear(c, c)

    def forward(self, ids):
        e = self.emb(ids)
        img = e.view(-1, 4, 4, e.shape[2]).permute(0, 3, 1, 2)
        y = self.bn(self.conv(img)).flatten(2).transpose(1, 2)
        return self.fc(y + self.bn1(self.pos(e.transpose(1, 2))).transpose(1, 2))


def test_a_batch_norm_after_a_conv_in_a_token_model_folds_into_the_conv():
    """CvT: the BatchNorm over torch's axis 1 of a conv's output permuted to torch's layout
    scales the conv's output channels: folded into it (before: 'batch_norm over axis 1 of
    (2, 8, 4, 4) in a sequence model' refused)."""
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50, (4, 16)))
    g = float_matches(ConvProjection().eval(), ids.numpy())
    assert [n.op for n in g.nodes if n.op in ("conv2d", "linear")] == ["conv2d", "conv2d",
                                                                        "linear"]
    record = evaluate(ConvProjection().eval(), ids, calibration=ids)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


class NCLLayers(nn.Module):
    """SqueezeBERT's layout: the token model's (N, S, C) transposed once to (N, C, S), then
    1x1 grouped conv1d layers with a residual add in that layout: the add's (C, S) output is no
    permute the conv can skip (and a conv2d of a (C, H, W) view of it)."""

    def __init__(self, c: int = 8):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(50, c)
        self.a, self.b = nn.Conv1d(c, c, 1, groups=2), nn.Conv1d(c, c, 1, groups=2)
        self.c = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, ids):
        x = self.emb(ids).transpose(1, 2)         # (N, C, S)
        x = x + self.a(x)                         # the add: torch's (C, S)
        y = self.b(x)                             # reads (C, S): a permute to (1, S, C) first
        z = self.c(x.reshape(x.shape[0], -1, 4, 4))  # reads (C, 4, 4): permuted to (4, 4, C)
        return (y + z.flatten(2)).transpose(1, 2)


def test_a_conv_of_a_torch_layout_tensor_in_a_token_model_permutes_it_to_its_image():
    """Before: 'a convolution of a tensor laid out per sample as (8, 16), not as the image
    (1, 16, 8)' (SqueezeBERT)."""
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50, (4, 16)))
    g = float_matches(NCLLayers().eval(), ids.numpy())
    moved = [(n.name, n.attrs["perm"]) for n in g.nodes if n.op == "permute"
             and n.name.endswith((".lc", ".image"))]
    assert moved == [("b.lc", (1, 0)), ("c.image", (1, 2, 0))]  # a's input is the transpose
    record = evaluate(NCLLayers().eval(), ids, calibration=ids)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


class SpanConv(nn.Module):
    """ConvBERT's span-based dynamic convolution: per token and head a softmax over k = 3
    kernel weights computed from the input ((batch * S * H, k, 1), softmax over dim 1), the
    values unfolded into k shifted copies (F.unfold, kernel (k, 1), padding 1) and their
    product (batch * S * H, Dh, k) @ (., k, 1)."""

    def __init__(self, d: int = 8, heads: int = 2, k: int = 3):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.kernel, self.value = nn.Embedding(50, d), nn.Linear(d, heads * k), \
            nn.Linear(d, d)
        self.d, self.h, self.k = d, heads, k

    def forward(self, ids):
        x = self.emb(ids)
        b = x.shape[0]
        kernel = torch.softmax(self.kernel(x).reshape(-1, self.k, 1), dim=1)
        v = self.value(x).transpose(1, 2).unsqueeze(-1)                     # (b, d, S, 1)
        v = F.unfold(v, [self.k, 1], padding=[(self.k - 1) // 2, 0])       # (b, d k, S)
        v = v.transpose(1, 2).reshape(b, -1, self.d, self.k).reshape(-1, self.d // self.h,
                                                                        self.k)
        return torch.matmul(v, kernel).reshape(b, -1, self.d)


def test_a_span_based_dynamic_convolution_runs_bit_exact():
    """Before: 'softmax over dim 1 of a rank-3 tensor; only the last', then 'op aten.im2col
    is not supported' (ConvBERT)."""
    ids = torch.from_numpy(np.random.default_rng(0).integers(0, 50, (4, 12)))
    g = float_matches(SpanConv().eval(), ids.numpy())
    soft = next(n for n in g.nodes if n.op == "softmax")
    assert g.shapes[soft.output] == (24, 3)  # (S H, k): the size-1 axis dropped
    unfold = [n for n in g.nodes if n.op == "linear" and n.params["weight"].shape == (36, 12)]
    assert len(unfold) == 1  # the unfold: a 0/1 selection of the 12 positions, 3 x 12 columns
    record = evaluate(SpanConv().eval(), ids, calibration=ids)
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
