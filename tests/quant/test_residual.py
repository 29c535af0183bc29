"""A residual model exercises the add op: linear -> relu, + skip, -> relu -> linear."""

import numpy as np
import pytest
import torch
from torch import nn

from qasic.quant import QuantConfig, capture, quantize, reference, run_dequantized, run_float
from qasic.quant.evaluate import cosine


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 16)
        self.relu1 = nn.ReLU()
        self.relu2 = nn.ReLU()
        self.fc2 = nn.Linear(16, 4)

    def forward(self, x):
        return self.fc2(self.relu2(self.relu1(self.fc1(x)) + x))


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = Residual().eval()
    x = np.random.default_rng(0).normal(size=(512, 16)).astype(np.float32)
    graph = quantize(model, torch.from_numpy(x[:1]), x[:256], QuantConfig(8))
    return model, x, graph


def test_residual_graph(setup):
    g = setup[2]
    assert [(n.name, n.op) for n in g.nodes] == [
        ("fc1", "linear"), ("relu1", "relu"), ("add", "add"), ("relu2", "relu"),
        ("fc2", "linear")]
    add = g.node("add")
    assert add.inputs == ("relu1", "input")
    assert add.params["multiplier"].shape == (3,)  # [a, b, out]
    assert add.attrs["clamp"][0] == g.tensors["add"].zero_point  # relu2 fused into the add


def test_residual_matches_float(setup):
    model, x, g = setup
    with torch.no_grad():
        want = model(torch.from_numpy(x[256:])).numpy()
    assert cosine(run_dequantized(g, x[256:]), want) > 0.99


def test_add_is_within_one_step_of_the_real_sum(setup):
    _, x, g = setup
    env = reference.run(g, g.quantize_input(x[256:]), keep=True)

    def real(name):
        t = g.tensors[name]
        return t.scale * (env[name] - t.zero_point)

    out = g.tensors["add"]
    want = np.maximum(real("relu1") + real("input"), 0.0)  # relu2 is fused: the add clamps
    inside = want <= out.scale * (out.qmax - out.zero_point)  # outside the range it saturates
    # only the final rounding: the 2^20-scaled intermediates are near exact
    assert np.abs(real("add") - want)[inside].max() <= out.scale * (0.5 + 1e-3)
    assert np.array_equal(env["relu2"], env["add"])


def test_add_in_float_graph():
    model = Residual().eval()
    graph = capture(model, torch.zeros(1, 16))
    x = np.random.default_rng(1).normal(size=(8, 16))
    with torch.no_grad():
        want = model(torch.from_numpy(x).float()).double().numpy()
    np.testing.assert_allclose(run_float(graph, x), want, rtol=1e-4, atol=1e-5)
