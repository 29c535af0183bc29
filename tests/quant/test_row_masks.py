"""Masked attention by a mask computed from the activations (quant.row_masks): Mask2Former's
decoder form, nn.MultiheadAttention with a bool attn_mask of (mask logits < 0), a row masked
everywhere unmasked again. The float graph equals torch, the mask is the softmax's row-mask
input, the quantized model simulates bit-exact to the golden reference close to torch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from qasic.arch.config import default_arch
from qasic.errors import UnsupportedOpError
from qasic.quant import QuantConfig, capture, quantize, reference, run_float
from qasic.quant.evaluate import cosine

Q, K, D, HEADS = 6, 12, 16, 2


class MaskedCross(nn.Module):
    """(batch, Q + K, D): Q queries attend to the K memory tokens where the query's predicted
    mask (query . memory) is positive, all of them where it is nowhere."""

    def __init__(self, use: str = "softmax"):
        super().__init__()
        torch.manual_seed(0)
        self.embed, self.attn = nn.Linear(D, D), nn.MultiheadAttention(D, HEADS)
        self.out, self.use = nn.Linear(D, D), use

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, mem = x[:, :Q], x[:, Q:]
        logits = torch.einsum("bqc,bkc->bqk", self.embed(q), mem)
        m = (logits.sigmoid().unsqueeze(1).repeat(1, HEADS, 1, 1).flatten(0, 1) < 0.5).bool()
        m = m * (m.sum(-1) != m.shape[-1]).to(m.dtype).unsqueeze(-1)  # Mask2Former's rows
        if self.use == "mask_read":  # the additive mask read by something else than the scores
            extra = torch.zeros_like(m, dtype=x.dtype).masked_fill_(m, float("-inf"))
            return self.out(q) + extra.view(-1, HEADS, Q, K)[:, 0, :, :1]
        y = self.attn(q.transpose(0, 1), mem.transpose(0, 1), mem.transpose(0, 1),
                      attn_mask=m, need_weights=self.use == "baddbmm")[0]
        return self.out(y.transpose(0, 1))


def _x(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, Q + K, D)).astype(np.float32)


@pytest.mark.parametrize("use", ["softmax", "baddbmm"])
def test_float_graph_equals_torch_and_the_mask_is_the_softmax_input(use):
    """sdpa's attn_mask (need_weights=False) or the scores' baddbmm (True): one softmax whose
    second input is the 0/1 codes of the kept keys."""
    net = MaskedCross(use).eval()
    x = _x(3)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).double().numpy()
    assert np.isfinite(want).all()
    g = capture(net, torch.from_numpy(x[:1]))
    soft = [n for n in g.nodes if n.op == "softmax"]
    assert len(soft) == 1 and len(soft[0].inputs) == 2
    valid = next(n for n in g.nodes if n.output == soft[0].inputs[1])
    assert valid.op == "lut" and valid.attrs["integer_codes"] == 8
    assert g.shapes[soft[0].inputs[1]] == g.shapes[soft[0].inputs[0]] == (HEADS, Q, K)
    got = run_float(g, g.to_internal(x)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_quantized_masked_attention_simulates_bit_exact_close_to_torch():
    """W8A8: simulator == golden reference; cosine 0.9997 measured."""
    from qasic.compiler import compile_graph
    from qasic.sim.run import run_functional

    net = MaskedCross().eval()
    cal, x = _x(32), _x(4, seed=1)
    g = quantize(net, torch.from_numpy(cal[:1]), cal, QuantConfig())
    codes = g.quantize_input(x)
    want = reference.run(g, codes)
    got = run_functional(compile_graph(g, default_arch()), default_arch(), codes)
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    with torch.no_grad():
        f = net(torch.from_numpy(x)).numpy()
    c = cosine(g.dequantize_output(want).reshape(f.shape), f)
    assert c > 0.995, c


def test_the_mask_read_by_anything_else_is_refused_in_one_line():
    with pytest.raises(UnsupportedOpError) as e:
        capture(MaskedCross("mask_read").eval(), torch.from_numpy(_x(1)))
    msg = str(e.value)
    assert "an attention mask computed from the activations (RowMask)" in msg
    assert "\n" not in msg
