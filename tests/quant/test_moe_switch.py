"""Switch Transformers' top-1 SparseMLP run densely (qasic.quant.moe_layouts ``_switch``): the
router's softmax probability of its top-1 expert scales that expert's wo(act(wi x)), every
expert on every token. Float graph == torch, golden reference == simulator, close to torch;
a capacity that drops tokens differs from the block's own forward and is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, reference, run_float
from qasic.quant.evaluate import cosine
from qasic.quant.quantize import quantize_graph
from qasic.sim.run import run_functional

transformers = pytest.importorskip("transformers")
mst = pytest.importorskip("transformers.models.switch_transformers.modeling_switch_transformers")


class Switch(nn.Module):
    def __init__(self, capacity: int = 64) -> None:
        super().__init__()
        torch.manual_seed(0)
        cfg = transformers.SwitchTransformersConfig(d_model=16, d_ff=32, num_experts=4,
                                                    expert_capacity=capacity)
        self.inp, self.moe = nn.Linear(6, 16), mst.SwitchTransformersSparseMLP(cfg)
        for p in self.moe.parameters():  # unit gain (HF's init leaves the experts tiny)
            nn.init.normal_(p, 0.0, p.shape[-1] ** -0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.moe(self.inp(x))


def test_switch_top1_experts_run_densely_and_bit_exact():
    x = np.random.default_rng(0).standard_normal((4, 6, 6)).astype(np.float32)
    model = Switch().eval()
    fg = capture(model, torch.from_numpy(x[:1]), "switch")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(run_float(fg, x) - want).max() < 1e-4
    qg = quantize_graph(fg, x, QuantConfig())
    assert any(nd.op == "topk_mask" for nd in qg.nodes)
    codes = qg.quantize_input(x)
    gold = reference.run(qg, codes)
    got = run_functional(compile_graph(qg, default_arch()), default_arch(), codes)
    assert np.array_equal(got.reshape(gold.shape), gold)
    assert cosine(qg.dequantize_output(gold), want) > 0.99


def test_a_capacity_that_drops_tokens_is_refused_in_one_line():
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 6, 6)).astype(np.float32))
    with pytest.raises(UnsupportedOpError) as e:
        capture(Switch(capacity=1).eval(), x, "switch")
    assert "its dense form (softmax probability of the top-1 expert" in str(e.value)
    assert "\n" not in str(e.value)
