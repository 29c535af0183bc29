"""A q/k norm written as ``c / x.norm(dim=-1, keepdim=True).clamp_min(eps)`` (ZAYA's: the
reciprocal of a 2-norm times sqrt(head_dim)) is one ``norm`` node, as RMSNorm's rsqrt path;
the q projection concatenated with k and also viewed as heads gets a copy (the concat input
cannot be a view of the concat's buffer and be reshaped). The simulator equals the golden
reference; the integer model follows the float one."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.quant.transformer_nets import check, ops


class QkNorm(torch.nn.Module):
    """(N, S, 16) -> 2 heads of 8, q and k L2-normalized to sqrt(8) (``form``: "recip" writes
    c / norm, "div" writes x / (norm / c)), softmax attention, q concatenated with k and that
    concat mixed back (``cat``)."""

    def __init__(self, form: str = "recip", cat: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.q, self.k, self.v = (torch.nn.Linear(16, 16) for _ in range(3))
        self.o, self.mix = torch.nn.Linear(16, 16), torch.nn.Linear(32, 16)
        self.form, self.cat = form, cat

    def _norm(self, x):
        eps = torch.finfo(x.dtype).eps
        if self.form == "recip":
            return x * (8 ** 0.5 / x.norm(p=2, dim=-1, keepdim=True).clamp_min(eps))
        return x / (x.norm(p=2, dim=-1, keepdim=True).clamp_min(eps) / 8 ** 0.5)

    def forward(self, x):
        n, s, _ = x.shape
        pq, pk = self.q(x), self.k(x)
        q, k, v = (t.view(n, s, 2, 8).transpose(1, 2) for t in (pq, pk, self.v(x)))
        q, k = self._norm(q), self._norm(k)
        out = torch.softmax(q @ k.transpose(-1, -2) * 8 ** -0.5, -1) @ v
        out = self.o(out.transpose(1, 2).reshape(n, s, 16))
        if self.cat:
            out = out + self.mix(torch.cat([pq, pk], -1))
        return out


def _x(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, 6, 16)).astype(np.float32)


@pytest.mark.parametrize(("form", "cat"), [("recip", False), ("div", False), ("recip", True)])
def test_reciprocal_of_a_two_norm_is_one_norm_node_and_runs_bit_exact(form, cat):
    """Each of q and k is one ``norm`` (no table of the reciprocal, no 1-channel statistic);
    the float graph equals torch's; golden reference == simulator, cosine > 0.99."""
    import qasic

    x = _x()
    graph, _, cos = check(QkNorm(form, cat), x)
    assert ops(graph).count("norm") == 2 and cos > 0.99
    assert not any(n.op == "linear" and n.params["weight"].shape[0] == 1 for n in graph.nodes)
    record = qasic.evaluate(QkNorm(form, cat), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
