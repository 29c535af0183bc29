"""A left pad then convs over the tokens with no padding (ZAYA's compressed convolutional
attention: ``F.pad(qk, (L, 0))``, a depthwise conv of kernel K_1, a grouped one of K_2, L =
(K_1 - 1) + (K_2 - 1)) generates (quant.decode_conv's padded chain): the pad's token-major view
(L + C rows) is the cache, a decode step writes its row at L + p and the first conv reads the
L + 1 rows from p, the second runs as it is; prefill + decode steps equal the full model bit
for bit on the golden reference, and generation on the simulator equals the golden
reference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, reference
from qasic.quant.decode import decode_graph, prefill_graph, token_convs
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference

C, V, D, H = 10, 40, 32, 2


class PaddedConvLM(nn.Module):
    """One attention layer whose q and k are mixed along the tokens by a pad of ``pad`` then
    two convs (kernels ``k1``, ``k2``), as ZAYA writes it; its cosine and bit-exactness do not
    depend on the pad matching the kernels."""

    def __init__(self, k1: int = 3, k2: int = 2, pad: int | None = None):
        super().__init__()
        torch.manual_seed(0)
        self.pad = k1 - 1 + k2 - 1 if pad is None else pad
        self.emb = nn.Embedding(V, D)
        self.q, self.k, self.v = nn.Linear(D, D), nn.Linear(D, D), nn.Linear(D, D)
        self.depthwise = nn.Conv1d(2 * D, 2 * D, k1, groups=2 * D)
        self.grouped = nn.Conv1d(2 * D, 2 * D, k2, groups=2 * H)
        self.out = nn.Linear(D, V)
        with torch.no_grad():  # a trained model's scale: logits that differ
            for p in self.parameters():
                p.mul_(2.0) if p.dim() > 1 else None

    def forward(self, ids):
        x = self.emb(ids)
        b, t, _ = x.shape
        qk = torch.cat([self.q(x), self.k(x)], dim=-1).transpose(1, 2)
        qk = self.grouped(self.depthwise(F.pad(qk, (self.pad, 0)))).transpose(1, 2)
        qk = qk[:, -t:]
        q, k = (z.view(b, t, H, D // H).transpose(1, 2) for z in qk.split(D, dim=-1))
        v = self.v(x).view(b, t, H, D // H).transpose(1, 2)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(x + y.transpose(1, 2).reshape(b, t, D))


def _ids(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).integers(0, V, (n, C))


def _full(**kw):
    calib = _ids()
    return quantize(PaddedConvLM(**kw).eval(), (torch.from_numpy(calib[:1]),), calib,
                    QuantConfig())


def test_the_padded_conv_lm_runs_bit_exact():
    x = _ids()
    r = qasic.evaluate(PaddedConvLM().eval(), x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > 0.99, r["cosine"]


@pytest.mark.parametrize("k1, k2", [(3, 2), (2, 2)])
def test_prefill_then_decode_steps_equal_the_full_model(k1, k2):
    """Kernels 3 then 2 (a pad of 3: the window is 4 rows) and ZAYA's 2 then 2 (a pad of 2)."""
    full = _full(k1=k1, k2=k2)
    (conv, (src, k)), = token_convs(full).items()
    assert conv.endswith("depthwise") and k == k1 + k2 - 1 and full.shapes[src][0] == C + k - 1
    seq = np.random.default_rng(1).integers(0, V, (2, C))
    want = reference.run(full, seq)
    state: dict = {}
    got = reference.run(prefill_graph(full, 4), seq[:, :4], state=state)
    np.testing.assert_array_equal(got, want[:, :4])
    step = decode_graph(full)
    windows = [n for n in step.nodes if n.op == "cache_window"]
    assert [(n.attrs["rows"], step.shapes[n.output]) for n in windows] == [(k, (k, 2 * D))]
    assert [step.shapes[n.output] for n in step.nodes if n.op == "conv2d"] == \
        [(1, k2, 2 * D), (1, 1, 2 * D)]
    for p in range(4, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")


def test_the_padded_conv_lm_generates_like_the_golden_reference():
    session = assert_generates_like_the_golden_reference(_full(), _ids()[1, :3], 5)
    # the pad's view (the q/k window), then K and V
    assert [i.op for i in session.decode.instrs].count("SCATTER") == 3


def test_a_pad_longer_than_the_kernels_take_is_refused_in_one_line():
    """A pad of 4 before kernels 3 and 2 leaves one row before token 0 (the model drops it):
    output p would read token p - 4, which no window of the chain's rows gives."""
    with pytest.raises(UnsupportedOpError, match=r"^\S+: a chain of convs over the token "
                                                 r"positions after a left pad ends 1 rows "
                                                 r"before token 0"):
        decode_graph(_full(pad=4))
