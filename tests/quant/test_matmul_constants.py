"""Matmuls with a constant operand (qasic.quant.lowering_transformer.matmul): a constant matrix
on the right is a linear; a constant on the left, or one per head, is a ``constant`` node the
matmul reads (SigLIP's probe query, DeBERTa's relative positions). Each: the QGraph ops, the
float executor against torch, the golden reference against torch, and golden reference ==
simulator through qasic.evaluate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from tests.quant.transformer_nets import check, ops

D, H, S = 16, 2, 6


def _seq(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, S, D)).astype(np.float32)


def _heads(x: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, H, S, D / H)
    return x.view(x.shape[0], -1, H, D // H).transpose(1, 2)


class LeftPerHead(nn.Module):
    """A learned query per head attends over the tokens: const (H, 3, Dh) @ K^T."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k = nn.Parameter(torch.randn(H, 3, D // H)), nn.Linear(D, D)

    def forward(self, x):
        return torch.softmax(torch.matmul(self.q, _heads(self.k(x)).transpose(-1, -2)), -1)


class RightPerHead(nn.Module):
    """Queries times a per-head constant key table: Q @ const (H, R, Dh)^T."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.table, self.q = nn.Parameter(torch.randn(H, 5, D // H)), nn.Linear(D, D)

    def forward(self, x):
        return torch.matmul(_heads(self.q(x)), self.table.transpose(-1, -2))


class FoldedBatch(nn.Module):
    """DeBERTa's form: heads merged with the batch, the constant repeated over the batch,
    torch.bmm."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.table, self.q = nn.Parameter(torch.randn(H, 5, D // H)), nn.Linear(D, D)

    def forward(self, x):
        q = _heads(self.q(x)).reshape(-1, S, D // H)
        pos = self.table.repeat(x.shape[0], 1, 1)
        return torch.bmm(q, pos.transpose(-1, -2)).view(x.shape[0], H, S, -1)


class LeftMatrix(nn.Module):
    """A constant matrix on the left of every sample: const (4, S) @ X (a learned pooling)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.w, self.lin = nn.Parameter(torch.randn(4, S)), nn.Linear(D, D)

    def forward(self, x):
        return torch.matmul(self.w, self.lin(x))


class GroupedRows(nn.Module):
    """DeepSeek-V4's grouped output projection: the tokens of every sample are the rows of each
    group's bmm by a constant (H, D / H, 3); each row is multiplied alone."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(4)
        self.w, self.lin = nn.Parameter(torch.randn(H, D // H, 3)), nn.Linear(D, D)

    def forward(self, x):
        g = self.lin(x).reshape(-1, H, D // H).transpose(0, 1)  # (H, B * S, D / H)
        return torch.bmm(g, self.w).transpose(0, 1).reshape(x.shape[0], S, -1)


CASES = {"left_per_head": (LeftPerHead, (H, 3, D // H), 0.999),    # measured 0.99987
         "right_per_head": (RightPerHead, (H, D // H, 5), 0.999),  # 0.99986
         "folded_batch": (FoldedBatch, (H, D // H, 5), 0.999),     # 0.99989
         "left_matrix": (LeftMatrix, (4, S), 0.999),               # 0.99988
         "grouped_rows": (GroupedRows, (H, D // H, 3), 0.999)}


@pytest.mark.parametrize("name", list(CASES))
def test_a_constant_operand_becomes_a_constant_node_and_a_matmul(name):
    make, shape, bound = CASES[name]
    graph, _, cos = check(make(), _seq())
    consts = [n for n in graph.nodes if n.op == "constant"]
    assert len(consts) == 1 and ops(graph).count("matmul") == 1
    assert graph.shapes[consts[0].output] == shape
    assert cos > bound


@pytest.mark.parametrize("name", ["left_per_head", "folded_batch", "grouped_rows"])
def test_constant_operands_run_bit_exact(name):
    x = _seq(4)
    r = qasic.evaluate(CASES[name][0]().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def test_a_constant_matrix_on_the_right_stays_a_linear():
    graph, _, cos = check(nn.Sequential(nn.Linear(D, D), _Times(torch.randn(D, 3))), _seq())
    assert ops(graph) == ["linear", "linear"] and cos > 0.999


class _Times(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x @ self.w


class MixesSamples(nn.Module):
    """A constant matrix on the left of rows that hold the batch: (B * S, D) viewed rows."""

    def __init__(self):
        super().__init__()
        self.w, self.lin = nn.Parameter(torch.randn(3, 2 * S)), nn.Linear(D, D)

    def forward(self, x):
        return torch.mm(self.w, self.lin(x).reshape(-1, D))


def test_a_constant_that_would_mix_samples_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(MixesSamples().eval(), torch.from_numpy(_seq(2)))
    assert "rows that hold the batch" in str(e.value) and "\n" not in str(e.value)


T = 5  # tokens of the fixed context


class CrossAttention(nn.Module):
    """Queries from the tokens attend to a fixed context (a buffer, as a diffusion U-Net's text
    conditioning): K = linear(context) and V fold to constants. ``form``: sdpa; gqa (two K/V
    heads for four query heads); keys only (values from the tokens); or diffusers'
    AttnProcessor's explicit baddbmm -> softmax -> bmm with the heads folded into the batch."""

    def __init__(self, form: str):
        super().__init__()
        torch.manual_seed(4)
        t = S if form == "keys" else T
        self.form, self.heads = form, 4 if form == "gqa" else H
        kv = D // 2 if form == "gqa" else D
        self.register_buffer("context", torch.randn(1, t, 12))
        self.q, self.out = nn.Linear(D, D), nn.Linear(D, D)
        self.k, self.v = nn.Linear(12, kv), nn.Linear(D if form == "keys" else 12, kv)

    def forward(self, x):
        n, dh = x.shape[0], D // self.heads
        ctx = self.context.expand(n, -1, -1)
        split = lambda t: t.view(n, -1, t.shape[-1] // dh, dh).transpose(1, 2)
        q, k = split(self.q(x)), split(self.k(ctx))
        v = split(self.v(x if self.form == "keys" else ctx))
        if self.form == "bmm":
            q, k, v = (a.reshape(n * self.heads, -1, dh) for a in (q, k, v))
            s = torch.baddbmm(torch.empty(n * self.heads, S, T), q, k.transpose(-1, -2),
                              beta=0, alpha=dh ** -0.5)
            o = torch.bmm(s.softmax(-1), v).view(n, self.heads, S, dh)
        else:
            o = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, enable_gqa=self.form == "gqa")
        return self.out(o.transpose(1, 2).reshape(n, S, D))


CROSS = {"sdpa": ([(H, T, D // H)] * 2, 0.9995),                # measured 0.99992
         "gqa": ([(4, T, 4)] * 2, 0.9995),                      # 0.99992 (K/V heads repeated)
         "keys": ([(H, S, D // H)], 0.9995),                    # 0.99991
         "bmm": ([(H, D // H, T), (H, T, D // H)], 0.9995)}     # 0.99992 (K transposed)


@pytest.mark.parametrize("form", list(CROSS))
def test_attention_to_a_constant_context_reads_constant_keys_and_values(form):
    shapes, bound = CROSS[form]
    graph, _, cos = check(CrossAttention(form), _seq())
    consts = [n for n in graph.nodes if n.op == "constant" and n.name.endswith((".k", ".v", ".b"))]
    assert [graph.shapes[c.output] for c in consts] == shapes
    assert ops(graph).count("matmul") == 2 and ops(graph).count("softmax") == 1
    assert cos > bound


@pytest.mark.parametrize("form", ["sdpa", "bmm"])
def test_attention_to_a_constant_context_runs_bit_exact(form):
    x = _seq(4)
    r = qasic.evaluate(CrossAttention(form).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


class ContextPerSample(nn.Module):
    """Keys from a constant that differs between samples: one context per batch row."""

    def __init__(self):
        super().__init__()
        self.register_buffer("context", torch.randn(2, T, D))
        self.q = nn.Linear(D, D)

    def forward(self, x):
        k = _heads(self.context)
        return torch.nn.functional.scaled_dot_product_attention(_heads(self.q(x)), k, k)


def test_a_context_that_differs_between_samples_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(ContextPerSample().eval(), torch.from_numpy(_seq(2)))
    assert "differs between samples" in str(e.value) and "\n" not in str(e.value)


def test_samples_equal_up_to_float32_rounding_are_one_constant():
    from qasic.quant.lowering_seq import same_samples

    v = np.random.default_rng(0).normal(size=(1, 5, 8)).repeat(3, 0)
    assert same_samples(v)
    v[2, 1, 3] += 8e-8  # a row rounded differently by a batched kernel (UVit2DModel's context)
    assert same_samples(v)
    v[1, 0, 0] += 1e-3
    assert not same_samples(v)
