"""qasic.quant.router_agreement: the share of the float graph's token-expert picks that the golden
reference also makes (the family survey's ``router_agreement``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.quant import QuantConfig, moe, reference
from qasic.quant.graph import QGraph, QNode, TensorQ
from qasic.quant.moe_layouts import router_of
from qasic.quant.router_agreement import agreement, expert_picks, router_agreement
from qasic.quant.routers import matrix

pytest.importorskip("transformers")


def test_agreement_is_the_share_of_the_float_picks_the_golden_reference_keeps():
    want = np.array([[1, 1, 0, 0], [0, 1, 1, 0]])
    assert agreement(want, want) == 1.0
    assert agreement(want, [[1, 0, 1, 0], [0, 1, 1, 0]]) == 0.75  # one of 4 picks moved
    assert agreement(want, np.zeros_like(want)) == 0.0


def test_agreement_of_misshaped_or_empty_picks_is_an_error():
    with pytest.raises(ValueError, match=r"picks of shape \(2,\) against \(3,\)"):
        agreement(np.ones(3), np.ones(2))
    with pytest.raises(ValueError, match="the float picks are empty"):
        agreement(np.zeros(3), np.ones(3))


def _masks(names: list[str]) -> QGraph:
    nodes = tuple(QNode(n, "topk_mask", ("x",), f"m{i}", {"k": 1}) for i, n in enumerate(names))
    one = TensorQ(1.0, 0, 8)
    return QGraph("g", "x", "m0", nodes, {"x": one} | {n.output: one for n in nodes},
                  {"x": (4,)} | {n.output: (4,) for n in nodes}, input_layout="sequence")


def test_a_blocks_picks_are_its_last_topk_mask_and_only_its_own():
    """DeepSeek-V3's grouped rule makes three topk_masks a block, the last the experts';
    block ``layers.1.mlp`` is not ``layers.10.mlp``, and a wrapper's prefix is allowed."""
    g = _masks(["m.layers.1.mlp.gate.topk_mask", "m.layers.1.mlp.gate.topk_mask_1",
                "m.layers.10.mlp.gate.topk_mask_2", "m.layers.2.attn.topk_mask_3"])
    assert expert_picks(g, ["layers.1.mlp", "layers.10.mlp"]) == ["m1", "m2"]
    assert expert_picks(g, ["layers.3.mlp"]) == []


def _torch_picks(model: torch.nn.Module, ids: np.ndarray) -> list[np.ndarray]:
    """Per routed block, torch's own (token, expert) picks: the top k of its router's logits
    on the block's input, taken with torch.topk (no 8-bit codes anywhere)."""
    picks = []

    def hook(block, args):
        router = router_of(block)
        logits = args[0].reshape(-1, args[0].shape[-1]) @ matrix(router).T
        m = torch.zeros_like(logits)
        picks.append(m.scatter_(-1, logits.topk(router.top_k, -1).indices, 1.0).numpy())

    handles = [b.register_forward_pre_hook(hook) for _, b in moe.blocks(model)]
    with torch.no_grad():
        model(torch.from_numpy(ids))
    for h in handles:
        h.remove()
    return picks


def test_a_tiny_mixtral_routes_as_torch_but_for_the_picks_the_integers_move():
    """Mixtral, 2 layers of 4 experts, top 2, at W8A8 on 8 x 16 tokens: the agreement equals
    the share of torch's own picks (its router's float logits) that the golden reference's
    masks keep; on this batch the 8-bit router logits move some picks (the share is below 1:
    the case the survey's key is there to show)."""
    from qasic.quant.quantize import quantize
    from qasic.quant.torch_export import capture
    from tests.quant.test_hf_llm import Logits, _ids
    from tests.quant.test_moe import _moe

    model, x = Logits(_moe("Mixtral")), _ids(8)
    blocks = [name for name, _ in moe.blocks(model)]
    fg = capture(model, (torch.from_numpy(x[:1]),))
    qg = quantize(fg, None, x, QuantConfig())
    share = router_agreement(fg, qg, x, blocks)
    codes = reference.run(qg, qg.quantize_input(x), keep=True)
    got = np.concatenate([codes[t].ravel() for t in expert_picks(qg, blocks)])
    want = np.concatenate([p.ravel() for p in _torch_picks(model, x)])
    assert len(blocks) == 2 and want.sum() == 2 * 8 * 16 * 2
    assert share == np.count_nonzero((want == 1) & (got == 1)) / want.sum()
    assert 0.9 < share < 1.0, share
    assert router_agreement(fg, qg, x, ["no.such.block"]) is None
