"""Relative shifts (qasic.quant.relshift): Transformer-XL / XLNet's ``rel_shift`` of the
position scores, a view that re-factors the last two axes, a slice and an index_select, is a
constant map of each (batch, head) plane made as row selections and per-row gathers. The float
graph follows torch, the simulator equals the golden reference, the integer model follows the
float one; the shift is not an identity (unshifted, the output differs)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.quant.transformer_nets import check, ops

S, D, H = 6, 16, 2


def rel_shift_bnij(x: torch.Tensor, klen: int) -> torch.Tensor:
    """XLNet's: (B, N, I, J) -> (B, N, I, klen), entry (i, j) the relative position j - i."""
    b, n, i, j = x.shape
    x = x.reshape(b, n, j, i)[:, :, 1:, :].reshape(b, n, i, j - 1)
    return torch.index_select(x, 3, torch.arange(klen, device=x.device, dtype=torch.long))


class RelAttention(torch.nn.Module):
    """(N, S, D) -> H heads whose scores add the content term q k^T and the position term
    q r^T shifted (r: a linear of sinusoids of the relative positions, 2S of them for
    ``causal`` False, S + 1 for True, as XLNet's bidirectional and causal forms)."""

    def __init__(self, causal: bool, shift: bool = True):
        super().__init__()
        torch.manual_seed(0)
        self.qkv, self.r, self.o = (torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D),
                                    torch.nn.Linear(D, D))
        self.causal, self.shift = causal, shift
        pos = torch.arange(S, -S if not causal else -1, -1.0)
        freq = 1.0 / 100 ** (torch.arange(0, D, 2.0) / D)
        angle = pos[:, None] * freq[None]
        self.register_buffer("pos_emb", torch.cat([angle.sin(), angle.cos()], -1))

    def forward(self, x):
        n, s, _ = x.shape
        q, k, v = (t.reshape(n, s, H, D // H).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        r = self.r(self.pos_emb).reshape(-1, H, D // H).transpose(0, 1)   # (H, J, d)
        ac = q @ k.transpose(-1, -2)
        bd = q @ r.transpose(-1, -2)                                       # (N, H, S, J)
        bd = rel_shift_bnij(bd, s) if self.shift else bd[..., :s]
        scores = (ac + bd) * (D // H) ** -0.5
        if self.causal:
            scores = scores + torch.triu(torch.full((s, s), -1e30), 1)
        out = torch.softmax(scores, -1) @ v
        return self.o(out.transpose(1, 2).reshape(n, s, D))


def _x(batch: int = 4) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(batch, S, D)).astype(np.float32)


def test_the_plane_map_is_the_relative_position_of_each_entry():
    """The shift XLNet writes reads, per row i, relative position j - i (column J/2 - i + j
    of the bidirectional scores); the causal form's upper triangle reads the next row."""
    for causal, j in ((False, 2 * S), (True, S + 1)):
        x = torch.arange(S * j, dtype=torch.float64).reshape(1, 1, S, j)
        got = rel_shift_bnij(x, S)[0, 0].numpy()
        i, jj = np.meshgrid(np.arange(S), np.arange(S), indexing="ij")
        flat = S + i * (j - 1) + jj
        np.testing.assert_array_equal(got, flat)
        lower = jj <= i
        np.testing.assert_array_equal((flat // j)[lower], i[lower])
        if causal:
            assert ((flat // j)[~lower] == i[~lower] + 1).all()


@pytest.mark.parametrize("causal", [False, True])
def test_a_relative_shift_runs_bit_exact(causal):
    """One gather part per row offset (1 bidirectional, 2 causal), no reshape refused; float
    graph == torch; golden reference == simulator, cosine > 0.99; the shift matters."""
    import qasic

    x = _x()
    graph, _, cos = check(RelAttention(causal), x)
    parts = [n for n in graph.nodes if n.op == "matmul" and n.name.endswith(".gathered")]
    assert len(parts) == (2 if causal else 1) and cos > 0.99
    assert ops(graph).count("softmax") == 1
    record = qasic.evaluate(RelAttention(causal), x, calibration=x)
    assert record["bit_exact"] and record["cosine"] > 0.99
    with torch.no_grad():
        a = RelAttention(causal)(torch.from_numpy(x))
        b = RelAttention(causal, shift=False)(torch.from_numpy(x))
    assert not torch.allclose(a, b, atol=1e-2)


class RelLM(torch.nn.Module):
    """ids -> logits through one causal RelAttention (XLNet's one-way attention)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.attn = torch.nn.Embedding(40, D), RelAttention(causal=True)
        self.head = torch.nn.Linear(D, 40)
        with torch.no_grad():  # logits that differ: generation does not repeat one id
            self.head.weight.mul_(4.0)

    def forward(self, ids):
        x = self.emb(ids)
        return self.head(x + self.attn(x))


def test_a_causal_relative_shift_generates_without_its_next_row_part():
    """The causal shift's upper-triangle part (each row reading the next query's row) only
    feeds keys the causal softmax masks (quant.decode_planes): a prefill and a decode step put
    its zeros in its place and run no row selection; the other part reads the step's query's
    selector row. Prefill + steps equal the full model and generation on the simulator equals
    the golden reference's."""
    from qasic.quant import QuantConfig, reference
    from qasic.quant.decode import decode_graph, prefill_graph, token_major
    from qasic.quant.decode_planes import masked_planes
    from qasic.quant.quantize import quantize
    from tests.quant.generation import assert_generates_like_the_golden_reference

    x = np.random.default_rng(0).integers(0, 40, (8, S))
    full = quantize(RelLM().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    planes = masked_planes(token_major(full), S)
    assert len(planes) == 1 and next(iter(planes)).endswith("plane1.gathered")
    want = reference.run(full, x[:2])
    state: dict = {}
    np.testing.assert_array_equal(reference.run(prefill_graph(full, 3), x[:2, :3], state=state),
                                  want[:, :3])
    step = decode_graph(full)
    assert not any(n.name.endswith("plane1.rows") for n in step.nodes)
    for p in range(3, S):
        row = reference.run(step, np.stack([x[:2, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")
    assert_generates_like_the_golden_reference(full, x[1, :2], 4)


def test_a_next_row_part_read_by_a_softmax_that_is_not_causal_is_not_left_out():
    """The bidirectional shift's scores reach a softmax over every key: nothing is masked, so
    no part is left out (generation refuses such a model elsewhere)."""
    from qasic.quant import QuantConfig
    from qasic.quant.decode_planes import masked_planes
    from qasic.quant.quantize import quantize

    class Both(RelLM):
        def __init__(self):
            super().__init__()
            self.attn = RelAttention(causal=True)
            self.attn.causal = False  # the causal form's positions, every key seen

    x = np.random.default_rng(0).integers(0, 40, (8, S))
    full = quantize(Both().eval(), (torch.from_numpy(x[:1]),), x, QuantConfig())
    assert any(n.name.endswith("plane1.gathered") for n in full.nodes)
    assert masked_planes(full, S) == set()
