"""16-bit codes where 8 cost accuracy: a post-LN transformer's norm outputs keep an int16 copy
for their residual adds (QuantConfig.norm_residual_bits), and the graph output may be int16
(QuantConfig.output_bits)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import ConfigError
from qasic.quant import QuantConfig
from qasic.quant.encodings import RESIDUAL_COPY, split_norm_residuals
from tests.quant.transformer_nets import check


class PostLN(nn.Module):
    """BERT's order: h = ln1(x + fc(x)), y = ln2(h + mlp(h)), per block; a linear head."""

    def __init__(self, vocab: int = 50, d: int = 32, depth: int = 2, context: int = 16):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(context, d) * 0.3)
        self.ln0 = nn.LayerNorm(d)
        self.fc = nn.ModuleList(nn.Linear(d, d) for _ in range(depth))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(),
                                               nn.Linear(2 * d, d)) for _ in range(depth))
        self.ln1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(depth))
        self.ln2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(depth))
        self.head = nn.Linear(d, vocab)

    def forward(self, ids):
        x = self.ln0(self.tok(ids) + self.pos[:ids.shape[1]])
        for fc, mlp, ln1, ln2 in zip(self.fc, self.mlp, self.ln1, self.ln2, strict=True):
            h = ln1(x + fc(x))
            x = ln2(h + mlp(h))
        return self.head(x)


def _ids(batch: int = 128, s: int = 16, vocab: int = 50) -> np.ndarray:
    return np.random.default_rng(0).integers(0, vocab, size=(batch, s)).astype(np.int64)


FP8_NORM16 = {"activation_format": "fp8_e4m3", "norm_input_bits": 16}


def test_norm_outputs_feeding_adds_get_an_int16_copy_and_the_output_is_int16():
    torch.manual_seed(3)
    model, x = PostLN().eval(), _ids()
    _, q8, cos8 = check(model, x, QuantConfig(8, **FP8_NORM16))
    _, q, cos = check(model, x, QuantConfig(8, **FP8_NORM16, norm_residual_bits=16,
                                            output_bits=16))
    copies = [n for n in q.nodes if n.name.endswith(".residual")]
    # ln0 and each block's ln1 and ln2 but the last (which only the head reads)
    assert sorted(n.name for n in copies) == ["ln0.residual", "ln1.0.residual",
                                              "ln1.1.residual", "ln2.0.residual"]
    for c in copies:
        assert q.tensors[c.output].bits == 16 and not q.tensors[c.output].is_fp
        assert {u.op for u in q.nodes if c.output in u.inputs} == {"add"}
        assert q.tensors[c.output[:-len(".residual")]].is_fp  # the GEMMs still read FP8
    out = q.tensors[q.output]
    assert out.bits == 16 and not out.is_fp and q8.tensors[q8.output].bits != 16
    assert cos > cos8 > 0.99, (cos, cos8)                              # 0.9989 > 0.9976


def test_split_norm_residuals_is_idempotent_and_marks_norms_only_adds_read():
    torch.manual_seed(3)
    from qasic.quant import capture

    graph = capture(PostLN(depth=1).eval(), torch.from_numpy(_ids(2)))
    once = split_norm_residuals(graph)
    twice = split_norm_residuals(once)
    assert [(n.name, n.inputs, dict(n.attrs)) for n in twice.nodes] == [
        (n.name, n.inputs, dict(n.attrs)) for n in once.nodes]
    assert len(once.nodes) == len(graph.nodes) + 2  # ln0, ln1.0 copied; ln2.0 feeds the head
    assert all(n.attrs.get(RESIDUAL_COPY) for n in once.nodes if n.name.endswith(".residual"))


@pytest.mark.parametrize("key", ["norm_residual_bits", "output_bits"])
def test_wide_widths_are_checked(key):
    with pytest.raises(ConfigError, match=rf"^{key} = 17 is out of range: allowed integers "
                                          r"2..16$"):
        QuantConfig(**{key: 17})
