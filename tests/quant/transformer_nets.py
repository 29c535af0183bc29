"""Small transformer modules written the ways models write them, for the capture tests."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine


class Fn(nn.Module):
    def __init__(self, f, *modules):
        super().__init__()
        self.f, self.mods = f, nn.ModuleList(modules)

    def forward(self, x):
        return self.f(x, *self.mods)


class Attention(nn.Module):
    """Multi-head self-attention on (B, S, D): ``form`` "explicit" (scores * scale, a mask,
    softmax, @ v), "sdpa" (F.scaled_dot_product_attention) or "bmm" (heads merged with the
    batch, torch.bmm)."""

    def __init__(self, d: int, heads: int, form: str = "explicit", causal: bool = True,
                 context: int = 16):
        super().__init__()
        self.h, self.form, self.causal = heads, form, causal
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.register_buffer("tril", torch.ones(context, context).tril().bool(),
                             persistent=False)

    def forward(self, x, key_mask=None):
        b, s, d = x.shape
        q, k, v = self.qkv(x).split(d, dim=-1)
        q, k, v = (t.view(b, s, self.h, d // self.h).transpose(1, 2) for t in (q, k, v))
        if self.form == "sdpa":
            mask = None if key_mask is None else key_mask[:, None, None, :].bool()
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal
                                               and key_mask is None)
        elif self.form == "bmm":
            qm, km, vm = (t.reshape(b * self.h, s, d // self.h) for t in (q, k, v))
            scores = torch.bmm(qm, km.transpose(1, 2)) / math.sqrt(d // self.h)
            if self.causal:
                scores = scores.masked_fill(~self.tril[:s, :s], float("-inf"))
            y = torch.bmm(scores.softmax(-1), vm).view(b, self.h, s, d // self.h)
        else:
            scores = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(d // self.h))
            if self.causal:
                scores = scores.masked_fill(~self.tril[:s, :s], float("-inf"))
            if key_mask is not None:  # HF's extended mask: (1 - m) * finfo.min
                ext = (1.0 - key_mask[:, None, None, :].to(scores.dtype))
                scores = scores + ext * torch.finfo(scores.dtype).min
            y = torch.softmax(scores, dim=-1) @ v
        return self.proj(y.transpose(1, 2).contiguous().view(b, s, d))


class Block(nn.Module):
    """Pre-LN: x + attn(ln1(x)), then x + mlp(ln2(x)) with a GELU MLP."""

    def __init__(self, d: int, heads: int, form: str = "explicit", causal: bool = True):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = Attention(d, heads, form, causal)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x, key_mask=None):
        x = x + self.attn(self.ln1(x), key_mask)
        return x + self.mlp(self.ln2(x))


class TokenModel(nn.Module):
    """Token and position embeddings, blocks, final LayerNorm, LM head. ``pad`` set: a
    bidirectional encoder whose padding mask is ``ids != pad``."""

    def __init__(self, vocab: int = 50, d: int = 32, heads: int = 2, depth: int = 2,
                 context: int = 16, form: str = "explicit", pad: int | None = None):
        super().__init__()
        self.pad = pad
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(context, d) * 0.3)
        self.blocks = nn.ModuleList(Block(d, heads, form, causal=pad is None)
                                    for _ in range(depth))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        key_mask = None if self.pad is None else (ids != self.pad)
        x = self.tok(ids) + self.pos[:ids.shape[1]]
        for block in self.blocks:
            x = block(x, key_mask)
        return self.head(self.ln(x))


def torch_out(module: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.from_numpy(x)).double().numpy()


def check(module: nn.Module, x: np.ndarray, config: QuantConfig | None = None,
          float_atol: float = 1e-4):
    """Capture ``module`` on x[:2]; the float executor must match torch to ``float_atol``.
    Returns (FGraph, QGraph calibrated on x, cosine of the golden reference to torch)."""
    module = module.eval()
    graph = capture(module, torch.from_numpy(x[:2]))
    want = torch_out(module, x)
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), want, atol=float_atol,
                               rtol=1e-4)
    q = quantize(graph, None, x, config or QuantConfig(8))
    got = q.dequantize_output(reference.run(q, q.quantize_input(x)))
    return graph, q, cosine(got, want)


def simulated_output(qg, x: np.ndarray) -> np.ndarray:
    """The golden reference's output codes of quantized graph ``qg`` on ``x``, after checking
    the simulator's program on the default arch gives the same, bit for bit."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    codes = qg.quantize_input(x)
    gold = reference.run(qg, codes)
    got = run_functional(compile_graph(qg, default_arch()), default_arch(), codes)
    assert np.array_equal(got.reshape(gold.shape), gold)
    return gold


def float_and_quantized(model, x: np.ndarray, want: np.ndarray):
    """``model``'s float graph (captured on ``x[:2]``) after checking it computes torch's
    ``want`` on ``x``, and the cosine to ``want`` of the W8A8 quantized model's output on ``x``
    (calibrated on ``x``; golden reference == simulator checked by ``simulated_output``)."""
    from qasic.quant.quantize import quantize as quantize_model

    fg = capture(model, torch.from_numpy(x[:2]))
    np.testing.assert_allclose(run_float(fg, fg.to_internal(x)).reshape(want.shape), want,
                               rtol=1e-4, atol=1e-5)
    qg = quantize_model(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    got = qg.dequantize_output(simulated_output(qg, x)).reshape(want.shape)
    return fg, float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want))


def ops(graph) -> list[str]:
    return [n.op for n in graph.nodes]


class TorchvisionViT(nn.Module):
    """torchvision's VisionTransformer layout: conv patches, reshape + permute, class token
    cat, position embedding, nn.TransformerEncoderLayer (nn.MultiheadAttention), head on the
    class token."""

    def __init__(self, d: int = 32, heads: int = 2, layers: int = 2, classes: int = 10):
        super().__init__()
        self.conv_proj = nn.Conv2d(3, d, 4, 4)
        self.class_token = nn.Parameter(torch.randn(1, 1, d) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.5)
        self.encoder = nn.Sequential(*[nn.TransformerEncoderLayer(
            d, heads, 2 * d, 0.0, activation="gelu", batch_first=True, norm_first=True)
            for _ in range(layers)])
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x):
        n = x.shape[0]
        x = self.conv_proj(x)
        x = x.reshape(n, x.shape[1], -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1) + self.pos
        return self.head(self.ln(self.encoder(x))[:, 0])


class TimmAttention(nn.Module):
    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.qkv, self.proj = heads, nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.h, c // self.h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2)
                         .reshape(b, n, c))


class TimmViT(nn.Module):
    """timm's layout: flatten(2).transpose(1, 2) patches, a fused qkv reshaped to
    (3, B, H, N, Dh) and unbound, sdpa."""

    def __init__(self, d: int = 32, classes: int = 10):
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, 4)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.5)
        self.pos = nn.Parameter(torch.randn(1, 17, d) * 0.5)
        self.n1, self.attn, self.n2 = nn.LayerNorm(d), TimmAttention(d, 2), nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat((self.cls.expand(x.shape[0], -1, -1), x), dim=1) + self.pos
        x = x + self.attn(self.n1(x))
        x = x + self.mlp(self.n2(x))
        return self.head(self.norm(x)[:, 0])
