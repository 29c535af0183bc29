"""aten.einsum rewritten at capture (qasic.quant.einsum): the plan per equation, the QGraph ops
each form becomes, golden reference == simulator for each, and one-line refusals naming the
equation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import capture
from qasic.quant.einsum import chain, parse, plan
from tests.quant.transformer_nets import check, ops, simulated_output

D, H, S = 16, 2, 6


def _seq(batch: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, S, D)).astype(np.float32)


def _heads(x: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, H, S, D / H)
    return x.view(x.shape[0], -1, H, D // H).transpose(1, 2)


@pytest.mark.parametrize("equation, want", [
    ("bhqd,bhkd->bhqk", (False, "bh", "q", "d", "k")),
    ("bhqk,bhkd->bhqd", (False, "bh", "q", "k", "d")),
    ("bqd,dk->bqk", (False, "b", "q", "d", "k")),       # b: a free axis of the activation
    ("dk,bqd->bkq", (True, "b", "q", "d", "k")),        # b's operand has more free axes
    ("binh,dnh->bind", (False, "bn", "i", "h", "d")),  # y per head n, broadcast over b
    ("bij,bjk", (False, "", "i", "bj", "k")),          # implicit output 'ik': b sums
])
def test_plan_names_batch_free_and_contracted_axes(equation, want):
    a, b, out = parse(equation, [len(s) for s in equation.split("->")[0].split(",")])
    assert plan(a, b, out) == want


@pytest.mark.parametrize("equation, ranks, want", [
    ("...qhd,...khd->...hqk", [5, 5], ("abqhd", "abkhd", "abhqk")),  # LongT5's local blocks
    ("...qd,kd->...qk", [4, 2], ("abqd", "kd", "abqk")),
    ("...qd,...kd", [3, 4], ("bqd", "abkd", "abkq")),  # right-aligned; implicit: '...' first
])
def test_an_ellipsis_is_written_out_aligned_from_the_right(equation, ranks, want):
    # as the first letters the equation does not use
    assert parse(equation, ranks) == want


class Einsum(nn.Module):
    def __init__(self, f):
        super().__init__()
        torch.manual_seed(0)
        self.f, self.q, self.k = f, nn.Linear(D, D), nn.Linear(D, D)
        self.w = nn.Parameter(torch.randn(D, 5) / 4)
        self.per_head = nn.Parameter(torch.randn(5, H, D // H) / 4)

    def forward(self, x):
        return self.f(self, x)


FORMS = {  # equation -> (its module, the QGraph ops)
    "bhqd,bhkd->bhqk": (lambda m, x: torch.einsum("bhqd,bhkd->bhqk", _heads(m.q(x)),
                                                  _heads(m.k(x))),
                        ["linear", "reshape", "permute", "linear", "reshape", "permute",
                         "matmul"]),  # k's transpose folds into the matmul's transpose_b
    "bhqk,bhkd->bhqd": (lambda m, x: torch.einsum(
        "bhqk,bhkd->bhqd", torch.softmax(_heads(m.q(x)) @ _heads(m.k(x)).transpose(-1, -2), -1),
        _heads(m.k(x))),
        ["linear", "reshape", "permute", "linear", "reshape", "permute", "matmul", "softmax",
         "linear", "reshape", "permute", "matmul"]),
    "bqd,dk->bqk": (lambda m, x: torch.einsum("bqd,dk->bqk", m.q(x), m.w),
                    ["linear", "linear"]),  # a weight: a linear
    "bid,bjd->bij": (lambda m, x: torch.einsum("bid,bjd->bij", m.q(x), m.k(x)),
                     ["linear", "linear", "matmul"]),
    "dk,bqd->bkq": (lambda m, x: torch.einsum("dk,bqd->bkq", m.w, m.q(x)),
                    ["linear", "linear", "permute"]),  # the product (q, k) permuted to (k, q)
    "binh,dnh->bind": (lambda m, x: torch.einsum("binh,dnh->bind",
                                                 m.q(x).view(-1, S, H, D // H), m.per_head),
                       ["linear", "reshape", "permute", "constant", "matmul", "permute"]),
    "...qd,...kd->...qk": (lambda m, x: torch.einsum("...qd,...kd->...qk", _heads(m.q(x)),
                                                     _heads(m.k(x))),
                           ["linear", "reshape", "permute", "linear", "reshape", "permute",
                            "matmul"]),  # as bhqd,bhkd->bhqk
    "bhsd->bshd": (lambda m, x: torch.einsum("bhsd->bshd", _heads(m.q(x))).reshape(-1, S, D),
                   ["linear", "reshape", "permute", "permute", "reshape"]),  # one operand
    # reordered (DiT's unpatchify): a permute (after _heads's own)
    "...sd->...ds": (lambda m, x: torch.einsum("...sd->...ds", m.q(x)),
                     ["linear", "permute"]),
    # nothing summed, one operand's axes among the other's: an elementwise product
    "bsd,bsd->bsd": (lambda m, x: torch.einsum("bsd,bsd->bsd", m.q(x), m.k(x)),
                     ["linear", "linear", "mul"]),
    # three operands, left to right (chain): 'bqd,bkd->bqk' then 'bqk,bke->bqe'
    "bqd,bkd,bke->bqe": (lambda m, x: torch.einsum("bqd,bkd,bke->bqe", m.q(x), m.k(x), x),
                         ["linear", "linear", "matmul", "matmul"]),
    # mamba-minimal's deltaB_u ('b l d_in, b l n, b l d_in -> b l d_in n'): an outer product
    # per position (a matmul over nothing), then a product broadcast over n (a mul)
    "bld,bln,bld->bldn": (lambda m, x: torch.einsum("bld,bln,bld->bldn", m.q(x),
                                                    m.k(x)[..., :4], x).flatten(2),
                          ["linear", "linear", "reshape", "reshape", "matmul", "reshape",
                           "linear", "mul", "reshape"]),
    # Performer's FAVOR+ numerator (lucidrains' linear_attention): three operands with an
    # ellipsis, written out as letters first, then chained: 'abde,abnd->aben', 'aben,abn->abne'
    "...de,...nd,...n->...ne": (lambda m, x: torch.einsum(
        "...de,...nd,...n->...ne", _heads(m.k(x)).transpose(-1, -2) @ _heads(x),
        _heads(m.q(x)), torch.sigmoid(_heads(m.k(x))[..., 0])),
        ["linear", "reshape", "permute", "permute", "reshape", "permute", "matmul", "linear",
         "reshape", "permute", "linear", "reshape", "permute", "reshape", "constant", "matmul",
         "reshape", "permute", "matmul", "permute", "lut", "reshape", "linear", "mul"]),
    # a multi-query key's one head broadcast to the queries' H, as torch.einsum broadcasts an
    # index of size 1 (RecurrentGemma's local attention; was refused: "index 'n' of sizes 2
    # and 1"): the key expanded over the heads first
    "btnh,bsnh->bnts": (lambda m, x: torch.einsum("btnh,bsnh->bnts",
                                                  m.q(x).view(-1, S, H, D // H),
                                                  m.k(x)[..., :D // H].view(-1, S, 1, D // H)),
                        ["linear", "reshape", "linear", "reshape", "constant", "matmul",
                         "permute", "permute", "matmul"]),
}


@pytest.mark.parametrize("equation", list(FORMS))
def test_einsum_forms_become_matmuls_and_follow_torch(equation):
    f, want = FORMS[equation]
    graph, _, cos = check(Einsum(f), _seq())
    assert ops(graph) == want
    assert cos > 0.999  # measured 0.99980 .. 0.99989


@pytest.mark.parametrize("equation", list(FORMS))
def test_einsum_forms_run_bit_exact(equation):
    x = _seq(4)
    r = qasic.evaluate(Einsum(FORMS[equation][0]).eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999


def _sinusoid(m, x):  # x-transformers' sinusoidal angles: int64 positions, float frequencies
    angles = torch.einsum("i,j->ij", torch.arange(S), 1.0 / 100.0 ** (torch.arange(D) / D))
    return m.q(x) * torch.cos(angles)


def test_operands_of_another_dtype_are_promoted_as_torch_does():
    """Before: 'expected m1 and m2 to have the same dtype' (the matmul of int64 positions and
    float frequencies, folded at capture)."""
    graph, _, cos = check(Einsum(_sinusoid), _seq())
    assert ops(graph) == ["linear", "constant", "mul"]
    angles = np.arange(S)[:, None] / 100.0 ** (np.arange(D) / D)
    np.testing.assert_allclose(graph.nodes[1].params["value"].reshape(S, D), np.cos(angles),
                               atol=1e-6)
    assert cos > 0.999, cos


def _taylor_normalizer(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """taylor-series-linear-attention's normalizer: each query against the sum of the keys,
    'b h n d, b h m d -> b h n' (m summed over the keys only), a column per head."""
    q, k = _heads(m.q(x)), _heads(m.k(x)).relu()
    return torch.einsum("bhnd,bhmd->bhn", q, k).transpose(1, 2)


def test_an_index_summed_over_one_operand_only_is_that_operands_sum_first():
    """Before: refused ("index 'm' summed over one operand only")."""
    x = _seq()
    graph, q, cos = check(Einsum(_taylor_normalizer), x)
    assert ops(graph).count("matmul") == 2  # the keys' sum over m (by ones), the product
    simulated_output(q, x)
    assert cos > 0.99, cos


REFUSED = {
    "bqq,bqd->bqd": (lambda m, x: torch.einsum("bqq,bqd->bqd", m.q(x)[:, :, :S], m.k(x)),
                     "an index repeated in 'bqq'"),
    "bqd->bq": (lambda m, x: torch.einsum("bqd->bq", m.q(x)), "not a reordering of its axes"),
}


@pytest.mark.parametrize("equation, want", [
    ("bld,bln,bld->bldn", ["bld,bln->bldn", "bldn,bld->bldn"]),
    ("ij,jk,kl->il", ["ij,jk->ik", "ik,kl->il"]),
    ("ij,jk,kl", ["ij,jk->ik", "ik,kl->il"]),  # implicit output: the indices seen once
    ("bi,bj,bk,b->bijk", ["bi,bj->bij", "bij,bk->bijk", "bijk,b->bijk"]),
])
def test_more_operands_chain_left_to_right_keeping_what_later_ones_read(equation, want):
    assert chain(equation, len(want) + 1) == want


def test_an_ellipsis_in_more_operands_is_written_out_before_the_chain():
    """Performer's '...de,...nd,...n->...ne' was refused ('an ellipsis in an equation of 3
    operands'); the ellipsis is written out from the operands' ranks as in two-operand ones."""
    assert chain("...de,...nd,...n->...ne", 3, [4, 4, 3]) == ["abde,abnd->aben",
                                                              "aben,abn->abne"]
    with pytest.raises(UnsupportedOpError, match="unknown ranks"):
        chain("...d,...d,...d->...d", 3)


@pytest.mark.parametrize("equation", list(REFUSED))
def test_other_equations_are_refused_in_one_line_naming_them(equation):
    f, why = REFUSED[equation]
    with pytest.raises(UnsupportedOpError) as e:
        capture(Einsum(f).eval(), torch.from_numpy(_seq(2)))
    assert f"einsum '{equation}'" in str(e.value) and why in str(e.value)
    assert "\n" not in str(e.value)
