"""Mixed-precision sensitivity on a token model: the torch forms of the transformer ops equal
the float executor, and every method scores every linear layer (LM logits: per position)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.quant import capture, run_float
from qasic.quant.sensitivity import METHODS, torch_forward
from tests.quant.transformer_nets import TokenModel


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(3)
    model = TokenModel(depth=1, form="sdpa").eval()
    ids = np.random.default_rng(0).integers(0, 50, size=(16, 16))
    return capture(model, torch.from_numpy(ids[:2])), ids


def test_torch_forms_equal_the_float_executor(lm):
    graph, ids = lm
    want = run_float(graph, graph.to_internal(ids))
    with torch.no_grad():
        got = torch_forward(graph, torch.from_numpy(ids), {}).double().numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_scores_every_linear(lm, method):
    graph, ids = lm
    kw = {"n_iter": 2} if method == "hawq" else {}
    scores = METHODS[method](graph, ids, bits=(2, 8), **kw)
    assert set(scores) == {n.name for n in graph.weighted_nodes()}
    for s in scores.values():
        assert np.isfinite(s[2]) and np.isfinite(s[8]) and s[2] >= s[8] - 1e-9
