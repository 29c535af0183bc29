"""A concat of a sequence model's pooled branches (Kim's CNN for sentence classification:
embedding, unsqueeze, Conv2d (k, D) branches, relu, max_pool1d over time, cat, linear): each
input is a conv's output carried by a relu, a max-pool, reshapes and permutes, so the conv
writes the concat's TensorQ (quant.calibrate CARRIES) and no requant table runs; the
compiler's moves of size-1 axes, permute chains that compose to the identity and relus read
through them (compiler.aliases) leave a gemm and a pool per branch. Float graph == torch,
golden == simulator, cosine."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.quant import capture, run_float
from qasic.quant.calibrate import concat_pins, prepare
from tests.quant.opcheck import torch_out

VOCAB, T = 40, 10


class KimCNN(nn.Module):
    def __init__(self, d: int = 8, k: int = 4, sizes=(2, 3), classes: int = 3,
                 shared: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(VOCAB, d)
        self.convs = nn.ModuleList(nn.Conv2d(1, k, (s, d)) for s in sizes)
        self.fc = nn.Linear(k * len(sizes) + (k if shared else 0), classes)
        self.shared = shared

    def forward(self, ids):
        x = self.emb(ids).unsqueeze(1)
        feats = [F.relu(c(x)).squeeze(3) for c in self.convs]
        pooled = [F.max_pool1d(f, f.shape[2]).squeeze(2) for f in feats]
        if self.shared:  # the first branch's features also averaged: not the concat's alone
            pooled.append(feats[0].mean(2))
        return self.fc(torch.cat(pooled, 1))


def _ids(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, VOCAB, size=(n, T)).astype(np.int64)


def test_kim_cnn_concat_takes_the_convs_encoding_and_runs_a_gemm_and_a_pool_per_branch():
    m, x = KimCNN().eval(), _ids()
    g = capture(m, torch.from_numpy(x[:1]))
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), torch_out(m, x), rtol=1e-4,
                               atol=1e-4)
    assert not [n for n in g.nodes if n.op == "lut"]  # no requant table before the concat
    pins = concat_pins(g)
    assert {n.name for n in g.nodes if n.op == "conv2d"} <= set(pins)
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
    kinds = [la["kind"] for la in r["layers"]]  # no permute, table or copy
    assert sorted(kinds) == ["gather", "gemm", "gemm", "gemm", "pool", "pool"]


def test_a_branch_another_op_reads_keeps_its_own_encoding_and_a_requant_table():
    """The first branch's relu is also averaged: its conv keeps its own TensorQ and the
    concat's input from it passes through a requant table (the mean, a linear, is pinned);
    still bit-exact."""
    m, x = KimCNN(shared=True).eval(), _ids()
    g = prepare(capture(m, torch.from_numpy(x[:1])))
    np.testing.assert_allclose(run_float(g, g.to_internal(x)), torch_out(m, x), rtol=1e-4,
                               atol=1e-4)
    pins = concat_pins(g)
    convs = [n.name for n in g.nodes if n.op == "conv2d"]
    assert convs[0] not in pins and convs[1] in pins
    assert sum(n.op == "lut" and n.attrs.get("fn") == "requant" for n in g.nodes) == 1  # branch 0
    r = qasic.evaluate(m, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.999
