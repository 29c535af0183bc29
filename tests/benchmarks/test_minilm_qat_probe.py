"""The QAT probe's straight-through fake quantizer rounds as the golden reference encodes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.minilm_qat_probe import FP_FIELDS, fake_quant
from qasic.quant.graph import TensorQ

ENCODINGS = [TensorQ(0.37, 0, 8, fmt) for fmt in FP_FIELDS] + [TensorQ(0.05, -3, 8, "int"),
                                                               TensorQ(1e-3, 0, 16, "int")]


@pytest.mark.parametrize("tq", ENCODINGS, ids=lambda tq: f"{tq.fmt}{tq.bits}")
def test_fake_quant_equals_encode_then_decode_and_passes_gradients_straight(tq):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(50_000) * np.exp(rng.standard_normal(50_000) * 2)
    x = np.concatenate([x, [0.0, -0.0, 1e9, -1e9]])
    xt = torch.tensor(x, requires_grad=True)
    y = fake_quant().apply(xt, tq)
    np.testing.assert_array_equal(y.detach().numpy(), tq.decode(tq.encode(x)))
    y.sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), np.ones_like(x))
