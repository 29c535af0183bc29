"""RoPE written with complex numbers (qasic.quant.complex_rope): Llama 4's view_as_complex,
product by exp(i theta), view_as_real is rewritten before capture into GPT-J's real rotary, so
the float graph follows torch and the model runs bit-exact; complex numbers used otherwise are
refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, complex_rope
from tests.quant.transformer_nets import check

S, D = 8, 16


class ComplexRope(nn.Module):
    """A linear, then Llama 4's apply_rotary_emb on its (batch, S, D) output: channel pairs
    (2k, 2k + 1) as complex numbers times exp(i p theta_k), back to real; ``square`` multiplies
    the complex tensor by itself instead (no rotation by constants)."""

    def __init__(self, square: bool = False):
        super().__init__()
        torch.manual_seed(0)
        self.q = nn.Linear(D, D)
        self.register_buffer("inv_freq", 1.0 / 100.0 ** (torch.arange(0, D, 2) / D))
        self.square = square

    def forward(self, x):
        q = self.q(x)
        angles = torch.arange(x.shape[1]).float()[:, None] * self.inv_freq
        freqs = torch.polar(torch.ones_like(angles), angles)  # (S, D / 2) complex
        z = torch.view_as_complex(q.reshape(*q.shape[:-1], -1, 2))
        return torch.view_as_real(z * (z if self.square else freqs)).flatten(-2)


def _x(batch: int = 6) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, S, D)).astype(np.float32)


def test_a_complex_rotation_is_gpt_js_rotary_and_runs_bit_exact():
    """The linear, the same linear rotated (rotate_every_two of its output: its weight rows
    interleaved, y[2k] = -x[2k+1], y[2k+1] = x[2k]), two products by constant (S, D) tables
    (cos and sin, each repeated over a pair) and an add; the float graph equals torch to 1e-5,
    the golden reference follows it and the simulator equals the reference."""
    import qasic

    model = ComplexRope()
    graph, _, cosine = check(model, _x(), float_atol=1e-5)
    assert [n.op for n in graph.nodes] == ["linear", "linear", "constant", "mul", "constant",
                                           "mul", "add"]
    rot = np.zeros((D, D))
    for k in range(D // 2):
        rot[2 * k, 2 * k + 1], rot[2 * k + 1, 2 * k] = -1, 1
    w = model.q.weight.detach().double().numpy()
    np.testing.assert_allclose(graph.nodes[1].params["weight"], rot @ w, atol=1e-7)
    tables = [n.params["value"] for n in graph.nodes if n.op == "constant"]
    angles = np.arange(S)[:, None] * (1.0 / 100.0 ** (np.arange(0, D, 2) / D))
    assert len(tables) == 2
    for table, fn in zip(tables, (np.cos, np.sin), strict=True):
        np.testing.assert_allclose(table.reshape(S, D), np.repeat(fn(angles), 2, -1), atol=1e-6)
    assert cosine > 0.999
    record = qasic.evaluate(model, _x()[:2], calibration=_x())
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]


def test_a_graph_without_complex_rotations_is_left_as_it_is():
    ep = torch.export.export(nn.Linear(D, D), (torch.zeros(2, D),))
    assert complex_rope.decompose(ep.graph) is ep.graph


def test_complex_numbers_used_otherwise_are_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(ComplexRope(square=True), torch.from_numpy(_x(2)))
    msg = str(e.value)
    assert msg.startswith("node 'view_as_complex': op "
                          "aten.view_as_complex.default is not supported") and "\n" not in msg


class GemmaRope(nn.Module):
    """gemma_pytorch's apply_rotary_emb on a linear's (batch, S, D) output: a head's two halves
    as the real and imaginary parts, stack(chunk(x, 2, -1), -1), back by chunk and cat."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.q = nn.Linear(D, D)
        self.register_buffer("inv_freq", 1.0 / 100.0 ** (torch.arange(0, D, 2) / D))

    def forward(self, x):
        q = self.q(x)
        angles = torch.arange(x.shape[1]).float()[:, None] * self.inv_freq
        freqs = torch.polar(torch.ones_like(angles), angles)
        z = torch.view_as_complex(torch.stack(torch.chunk(q.float(), 2, dim=-1), dim=-1))
        out = torch.view_as_real(z * freqs).type_as(q)
        out = torch.cat(torch.chunk(out, 2, dim=-1), dim=-2)
        return out.reshape(out.shape[0], out.shape[1], -1)


def test_gemmas_halves_as_complex_numbers_run_bit_exact():
    """Before: 'op aten.view_as_complex.default is not supported' (Gemma's reference code)."""
    import qasic

    graph, _, cosine = check(GemmaRope(), _x(), float_atol=1e-5)
    assert not any("complex" in n.op for n in graph.nodes) and cosine > 0.999
    record = qasic.evaluate(GemmaRope(), _x()[:2], calibration=_x())
    assert record["bit_exact"] and record["cosine"] > 0.999, record["cosine"]
