"""State-space models (Mamba's selective scan and Mamba2's chunked scan, HF's slow paths without
the CUDA kernels): the captures they add (softplus as a table, tensor_split, a stack of
activations along a new last axis, torch.concatenate, cumsum, masked_fill by 0, exp of -inf
masked values) against torch and the golden reference, a hand-written Mamba block, Mamba2's
decay matrix and HF's MambaModel / FalconMambaModel / Mamba2Model (its scan captured
recurrently: quant.recurrent_scan) run bit-exact (golden reference == simulator) through
qasic.evaluate, Mamba's scan roles with one encoding over the positions (so that it generates:
tests/quant/test_hf_decode.py), and the generation of a chunked scan refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import qasic
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture
from qasic.quant.functions import apply
from qasic.quant.quantize import quantize
from tests.quant.transformer_nets import Fn, check, ops

S, D, N = 8, 8, 4  # positions, channels, state size


def _seq(batch: int = 16, s: int = S, d: int = D, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, s, d)).astype(np.float32)


@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 3.0)])
def test_softplus_table_function_is_torchs(beta, threshold):
    x = np.linspace(-30, 30, 2001)
    want = F.softplus(torch.from_numpy(x), beta, threshold).numpy()
    np.testing.assert_allclose(apply("softplus", x, {"beta": beta, "threshold": threshold}),
                               want, rtol=1e-12, atol=1e-12)


class Scan(nn.Module):
    """HF MambaMixer's slow path without its convolution: in_proj, chunk, SiLU, x_proj split
    into dt, B, C, dt_proj and softplus, tensor_split, exp(dt A), the scan unrolled over the
    positions, a stack of the outputs, the D skip, the SiLU gate, out_proj."""

    def __init__(self, d: int = D, n: int = N):
        super().__init__()
        self.n = n
        self.in_proj, self.x_proj = nn.Linear(d, 2 * d), nn.Linear(d, 1 + 2 * n)
        self.dt_proj, self.out_proj = nn.Linear(1, d), nn.Linear(d, d)
        self.a_log = nn.Parameter(torch.log(torch.arange(1, n + 1.0)).repeat(d, 1))
        self.d = nn.Parameter(torch.ones(d))

    def forward(self, x):
        h, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)  # (B, d, S)
        h = F.silu(h)
        dt, b, c = torch.split(self.x_proj(h.transpose(1, 2)), [1, self.n, self.n], dim=-1)
        dt = F.softplus(self.dt_proj(dt)).transpose(1, 2)  # (B, d, S)
        h = torch.tensor_split(h, [x.shape[1]], dim=2)[0]
        da = torch.exp(-torch.exp(self.a_log)[None, :, None, :] * dt[..., None])
        dbx = dt[..., None] * b[:, None] * h[..., None]  # (B, d, S, n)
        state, ys = torch.zeros(x.shape[0], h.shape[1], self.n), []
        for t in range(x.shape[1]):
            state = da[:, :, t] * state + dbx[:, :, t]
            ys.append(torch.matmul(state, c[:, t, :, None])[:, :, 0])
        y = (torch.stack(ys, dim=-1) + h * self.d[None, :, None]) * F.silu(z)
        return self.out_proj(y.transpose(1, 2))


def test_scan_block_runs_bit_exact():
    """The unrolled scan: a state per step (mul, add), its read-out (a matmul by C_t), the
    steps stacked (one concat); bit-exact on the simulator, close to torch."""
    torch.manual_seed(0)
    model, x = Scan().eval(), _seq()
    graph, _, cos = check(model, x)
    assert ops(graph).count("concat") == 1 and ops(graph).count("lut") >= 3
    assert cos > 0.999  # measured 0.99994
    out = qasic.evaluate(model, x[:2], calibration=x)
    assert out["bit_exact"] and out["cosine"] > 0.999  # measured 0.99994


@pytest.mark.parametrize("cuts, want", [([3], [3, 5]), ([2, 5], [2, 3, 3]), ([-2], [6, 2]),
                                        ([S], [S])])
def test_tensor_split_is_a_split_at_the_indices(cuts, want):
    """tensor_split(x, indices, -1): each part its columns (a selection of the last axis), an
    empty part dropped; the parts' widths are torch's."""
    def f(x, fc):
        parts = torch.tensor_split(fc(x), cuts, dim=-1)
        assert [p.shape[-1] for p in parts if p.shape[-1]] == want
        return torch.cat([p * (i + 1) for i, p in enumerate(parts)], dim=-1)

    torch.manual_seed(0)
    _, _, cos = check(Fn(f, nn.Linear(D, S)), _seq())
    assert cos > 0.999


def test_tensor_split_at_decreasing_indices_is_refused():
    with pytest.raises(UnsupportedOpError, match=r"a tensor_split at decreasing indices "
                                                 r"\[5, 3\]; give them in increasing order"):
        capture(Fn(lambda x, fc: torch.tensor_split(fc(x), [5, 3], dim=-1)[0] * 2,
                   nn.Linear(D, D)),
                torch.from_numpy(_seq()[:2]))


def test_stack_of_activations_is_one_concat():
    """Products of two activations stacked along a new last axis: (..., 1) views, one concat."""
    def f(x, fc):
        x = fc(x)
        return torch.stack([x[:, :, i] * x[:, :, i + 1] for i in range(3)], dim=-1)

    torch.manual_seed(0)
    graph, _, cos = check(Fn(f, nn.Linear(D, D)), _seq())
    assert ops(graph).count("concat") == 1 and ops(graph).count("mul") == 3
    assert cos > 0.999


def test_concatenate_is_cat():
    torch.manual_seed(0)
    _, _, cos = check(Fn(lambda x, fc: torch.concatenate([fc(x), x], dim=-1), nn.Linear(D, D)),
                      _seq())
    assert cos > 0.999


def _segment_sum(a):  # HF Mamba2's segment_sum: (..., T) -> (..., T, T), -inf above the diagonal
    t = a.size(-1)
    a = a[..., None].expand(*a.size(), t)
    a = a.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=-1), 0)
    a = torch.cumsum(a, dim=-2)
    return a.masked_fill(~torch.tril(torch.ones(t, t, dtype=torch.bool), diagonal=0), -torch.inf)


def _decay_block(x, fa, fv):
    """Mamba2's intra-chunk term: the decay matrix exp(segment_sum(A)) of A = -softplus(fa(x))
    per head, applied to values: (B, S, D) -> (B, 2, S, D)."""
    a = -F.softplus(fa(x)).transpose(1, 2)  # (B, heads, S)
    return torch.matmul(torch.exp(_segment_sum(a)), fv(x)[:, None].expand(-1, 2, -1, -1))


@pytest.mark.parametrize("dim", [1, -1])
def test_cumsum_is_a_lower_triangular_matmul(dim):
    torch.manual_seed(0)
    graph, _, cos = check(Fn(lambda x, fc: torch.cumsum(fc(x), dim=dim), nn.Linear(D, D)),
                          _seq())
    assert ops(graph).count("matmul") == 1 and cos > 0.999


def test_a_selection_of_cumulative_sums_selects_from_their_input():
    """Mamba2's chunk total A_cumsum[..., -1] next to exp(A_cumsum): the total is one selection
    (the row of ones) of the cumsum's input, so no matmul reads the sums and the table of exp
    reads an asymmetric code (zero point 127 for sums <= 0, not 0)."""
    def f(x, fc):
        c = torch.cumsum(-F.softplus(fc(x)), dim=1)  # (B, S, D), every sum <= 0
        return torch.exp(c) * c[:, -1:, :]

    torch.manual_seed(0)
    graph, q, cos = check(Fn(f, nn.Linear(D, D)), _seq())
    sums = next(n for n in graph.nodes if n.name.endswith("cumsum"))
    readers = [n for n in graph.nodes if n.op == "matmul" and sums.output in n.inputs]
    assert readers == [] and q.tensors[sums.output].zero_point == 127
    assert cos > 0.999


def test_masked_fill_by_zero_is_a_product_by_the_mask():
    keep = torch.tril(torch.ones(S, S, dtype=torch.bool))
    torch.manual_seed(0)
    graph, _, cos = check(Fn(lambda x, fc: fc(x).masked_fill(~keep, 0), nn.Linear(D, S)),
                          _seq())
    assert "mul" in ops(graph) and cos > 0.999


def test_decay_matrix_runs_bit_exact():
    """exp of the -inf-masked segment sums: exp of the sums (a table) times the 0/1 mask; no
    code stands for -inf. Measured cosine 0.99989 (0.99991 on the simulator's 2 samples)."""
    torch.manual_seed(0)
    model, x = Fn(_decay_block, nn.Linear(D, 2), nn.Linear(D, D)).eval(), _seq()
    _, _, cos = check(model, x)
    assert cos > 0.999
    out = qasic.evaluate(model, x[:2], calibration=x)
    assert out["bit_exact"] and out["cosine"] > 0.999


# --- HF state-space models (tiny configs, HF's slow path) ---------------------------------

_CONFIG = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "state_size": 8,
           "expand": 2, "conv_kernel": 4, "time_step_rank": 4}


class _Hidden(nn.Module):
    def __init__(self, hf):
        super().__init__()
        self.model = hf

    def forward(self, ids):
        return self.model(input_ids=ids, use_cache=False).last_hidden_state


# Mamba2: 8 heads of 8 channels, chunks of 4 positions (3 chunks of the 12 ids)
_CONFIG2 = {k: v for k, v in _CONFIG.items() if k != "time_step_rank"} | {
    "num_heads": 8, "head_dim": 8, "n_groups": 1, "chunk_size": 4}


def _hf(name: str) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = getattr(transformers, f"{name}Config")(**(_CONFIG2 if name == "Mamba2" else _CONFIG))
    return _Hidden(getattr(transformers, f"{name}Model")(config).eval()).eval()


def _ids(batch: int = 2, s: int = 12) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 100, (batch, s)).astype(np.int64)


@pytest.mark.parametrize("name", ["Mamba", "FalconMamba", "Mamba2"])
def test_hf_mamba_runs_bit_exact(name):
    """HF's init, 2 sequences of 12 ids, calibrated on them, W8A8, an 8-bit state; measured:
    Mamba 0.99985, FalconMamba (RMS norms of dt, B, C) 0.99982, Mamba2 (its scan recurrent,
    one encoding per role over the positions; a gated RMSNorm) 0.99870 (the chunked scan:
    0.99868)."""
    x = _ids()
    out = qasic.evaluate(_hf(name), x, calibration=x)
    assert out["bit_exact"]
    assert out["cosine"] > (0.998 if name == "Mamba2" else 0.999)


def test_generation_of_a_chunked_scan_is_refused_in_one_line(monkeypatch):
    """Mamba2's chunked scan as transformers computes it (the recurrent form of
    quant.recurrent_scan switched off): its cumulative sums over the positions are named."""
    from qasic.arch.config import default_arch
    from qasic.generate import Session
    from qasic.quant import recurrent_scan

    monkeypatch.setattr(recurrent_scan, "SCANS", {})
    x = _ids()
    full = quantize(_hf("Mamba2"), (torch.from_numpy(x[:1]),), x, QuantConfig())
    with pytest.raises(UnsupportedOpError) as e:
        Session(full, 6, default_arch())
    assert str(e.value).startswith(
        "model.layers.0.mixer.cumsum: model _Hidden takes cumulative sums along its token "
        "positions within chunks of ")
    assert str(e.value).endswith(
        "and generation runs one program per step: write the mixer as its recurrent step "
        "(h_t = a_t h_(t-1) + B_t x_t: fla's naive_recurrent_gla; transformers' Mamba2 mixers, "
        "which qasic captures so: quant.recurrent_scan) or run the model with qasic evaluate")


def test_mambas_scan_roles_share_one_encoding_over_the_positions():
    """quant.recurrence finds HF Mamba's unrolled scan (2 sequences of 12 ids): one recurrence
    of 12 positions per layer, its one state h_i (64, 8); calibration gives each role (dA_i,
    dBx_i and C_i selected, the decay, h_i, y_i, y_i's requant to the stack) one TensorQ at
    every position, position 0's too (it runs position 1's nodes on h_(-1) = 0), h symmetric
    (the matmul's operand), so a decode step at any position runs the same requantizations."""
    from qasic.quant import recurrence

    x = _ids()
    full = quantize(_hf("Mamba"), (torch.from_numpy(x[:1]),), x, QuantConfig())
    plans = recurrence.plans(full, 12)
    assert [len(p.tails) for p in plans] == [12, 12]
    by_name = {n.name: n for n in full.nodes}
    for p in plans:
        (h,) = p.states
        assert len(h) == 12 and {full.shapes[t] for t in h} == {(64, 8)}
        at = [[by_name[n] for n, i in p.position.items() if i == t and by_name[n].op not in
               ("constant", "reshape")] for t in range(12)]
        # the 3 selections, the decay, h_i = decay + dBx_i, y_i = h_i @ C_i, y_i's requant
        assert [sorted(n.op for n in ns) for ns in at] == \
            [["add", "lut", "matmul", "matmul", "matmul", "matmul", "mul"]] * 12
        roles: dict[int, set] = {}
        for ns in at[1:]:
            for n in ns:
                roles.setdefault(p.roles[n.output], set()).add(full.tensors[n.output])
        assert all(len(tqs) == 1 for tqs in roles.values()) and len(roles) == 7
        assert sorted(map(repr, (full.tensors[n.output] for n in at[0]))) == \
            sorted(map(repr, (full.tensors[n.output] for n in at[1])))
        assert full.tensors[h[5]].zero_point == 0 and full.tensors[h[5]].bits == 8
