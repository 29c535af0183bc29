"""A causal convolution written as a zero pad then a conv1d without padding (qasic.quant
lowering_pad ``_conv1d_length``): S4's and Hyena's long convolutions, ``F.conv1d(F.pad(u,
(L - 1, 0)), k)`` with a kernel as long as the sequence. In a sequence model the pad folds into
the conv's padding (it was a placement matmul), so generation finds a causal token conv and
decodes it by its window."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from qasic.quant import QuantConfig, reference
from qasic.quant.quantize import quantize

C = 12


class _LongConvLM(torch.nn.Module):
    """Embedding, a depthwise causal conv of kernel C by F.pad + F.conv1d (a generated kernel:
    decaying cosines), a D skip, GELU, a 1x1 Conv1d, a head; (B, H, L) inside."""

    def __init__(self, vocab: int = 40, d: int = 16):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.head = torch.nn.Embedding(vocab, d), torch.nn.Linear(d, vocab)
        self.freq = torch.nn.Parameter(torch.rand(d, 1) * 3)
        self.skip = torch.nn.Parameter(torch.randn(d))
        self.mix = torch.nn.Conv1d(d, d, 1)

    def forward(self, ids):
        u = self.emb(ids).transpose(1, 2)  # (B, H, L)
        n = u.shape[-1]
        k = torch.exp(-0.3 * torch.arange(n)) * torch.cos(self.freq * torch.arange(n))
        y = F.conv1d(F.pad(u, (n - 1, 0)), k.flip(-1).unsqueeze(1), groups=u.shape[1])
        y = self.mix(F.gelu(y + u * self.skip[:, None])) + u
        return self.head(y.transpose(1, 2))


def test_a_zero_pad_read_by_a_conv1d_folds_into_its_padding_and_generates():
    from tests.quant.generation import assert_generates_like_the_golden_reference

    model = _LongConvLM().eval()
    calib = np.random.default_rng(0).integers(0, 40, (16, C))
    full = quantize(model, (torch.from_numpy(calib[:1]),), calib, QuantConfig())
    convs = [n for n in full.nodes if n.op == "conv2d" and np.shape(n.params["weight"])[2] > 1]
    assert len(convs) == 1 and convs[0].attrs["padding"] == (0, C - 1, 0, 0)
    assert not any(n.op == "matmul" for n in full.nodes)  # no placement matmul of the pad
    with torch.no_grad():
        want = model(torch.from_numpy(calib)).numpy()
    got = full.dequantize_output(reference.run(full, full.quantize_input(calib)))
    assert float((got * want).sum() / np.linalg.norm(got) / np.linalg.norm(want)) > 0.99
    assert_generates_like_the_golden_reference(full, calib[1, :5], 6)
