"""A decode step's (and a prefill's) grouped-query attention reads its key/value caches as
they are (quant.decode_groups): the head repeat (``repeat_kv``: expand then reshape, captured as a
matmul by a constant of one value) is exact on codes, so both attention matmuls run on the
step's query rows viewed (key heads, group, d) against the caches viewed (key heads, C, d),
and no repeat is left in the step; prefill + decode steps equal the full model bit for bit and
generation on the simulator equals the golden reference's."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from qasic.quant import QuantConfig, reference
from qasic.quant.decode import decode_graph, prefill_graph
from qasic.quant.quantize import quantize
from tests.quant.generation import assert_generates_like_the_golden_reference

C, V, D, H, KV = 10, 40, 32, 4, 2


def repeat_kv(x: torch.Tensor, n: int) -> torch.Tensor:
    """transformers' (batch, KV, S, d) -> (batch, KV n, S, d)."""
    b, kv, s, d = x.shape
    return x[:, :, None].expand(b, kv, n, s, d).reshape(b, kv * n, s, d)


class GroupedLM(nn.Module):
    """One causal attention layer of H query heads over KV key/value heads, as Llama writes
    it (repeat_kv before the scores and before the values)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(V, D)
        self.q, self.o = nn.Linear(D, D), nn.Linear(D, D)
        self.k, self.v = nn.Linear(D, D // H * KV), nn.Linear(D, D // H * KV)
        self.head = nn.Linear(D, V)
        with torch.no_grad():  # logits that differ: generation does not repeat one id
            self.head.weight.mul_(4.0)

    def forward(self, ids):
        x = self.emb(ids)
        b, t, _ = x.shape
        q = self.q(x).view(b, t, H, -1).transpose(1, 2)
        k, v = (repeat_kv(f(x).view(b, t, KV, -1).transpose(1, 2), H // KV)
                for f in (self.k, self.v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.head(x + self.o(y.transpose(1, 2).reshape(b, t, D)))


def _full():
    calib = np.random.default_rng(0).integers(0, V, (8, C))
    return quantize(GroupedLM().eval(), (torch.from_numpy(calib[:1]),), calib, QuantConfig())


def _repeats(graph) -> list[str]:
    by_out = {n.output: n for n in graph.nodes}
    return [n.name for n in graph.nodes if n.op == "matmul" and n.inputs[0] in by_out
            and by_out[n.inputs[0]].op == "constant" and n.name.split(".")[-1].startswith(
                "expand")]


def test_a_decode_step_attends_on_the_caches_without_the_head_repeat():
    full = _full()
    assert len(_repeats(full)) == 2  # K's and V's, in the full model
    step = decode_graph(full)
    assert _repeats(step) == []
    grouped = [n for n in step.nodes if n.op == "matmul" and n.name.endswith(".grouped")]
    assert [step.shapes[n.output] for n in grouped] == [(KV, H // KV, C), (KV, H // KV, D // H)]
    seq = np.random.default_rng(1).integers(0, V, (2, C))
    want = reference.run(full, seq)
    state: dict = {}
    prefill = prefill_graph(full, 4)  # its P = 4 query rows per head grouped alike
    assert _repeats(prefill) == []
    np.testing.assert_array_equal(reference.run(prefill, seq[:, :4], state=state), want[:, :4])
    for p in range(4, C):
        row = reference.run(step, np.stack([seq[:, p], np.full(2, p)], axis=1), state=state)
        np.testing.assert_array_equal(row[:, 0], want[:, p], err_msg=f"position {p}")


def test_the_grouped_lm_generates_like_the_golden_reference():
    assert_generates_like_the_golden_reference(_full(), np.array([3, 17, 29]), 5)


def test_a_repeat_that_changes_codes_is_kept():
    """A repeat whose requantization does not give back each code (its multiplier halved) is
    not an identity: the step keeps it."""
    from dataclasses import replace

    full = _full()
    name = _repeats(full)[0]
    nodes = tuple(replace(n, params={**n.params, "multiplier": np.asarray(
        n.params["multiplier"]) // 2}) if n.name == name else n for n in full.nodes)
    step = decode_graph(replace(full, nodes=nodes))
    assert _repeats(step) == [name]
