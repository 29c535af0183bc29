import math

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, export_check, run_float


class CompilingShortcut(nn.Module):
    """Takes a path under torch.export (the compiler) that its eager forward does not."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        y = self.fc(x)
        if torch.compiler.is_compiling():
            return torch.relu(y)
        return y


class Plain(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.relu(self.fc(x))


def _x(batch=2):
    return torch.from_numpy(np.random.default_rng(0).normal(size=(batch, 8)).astype(np.float32))


def test_a_model_whose_export_differs_from_eager_is_refused_in_one_line():
    model = CompilingShortcut().eval()
    with torch.no_grad():  # relu changes the function: the exported program is another one
        y = model(_x())
    want = float(torch.relu(y).sub(y).norm() / y.norm())
    assert want > 0.3
    with pytest.raises(UnsupportedOpError) as e:
        capture(model, _x())
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("the exported program differs from the eager model at the output "
                          f"(relative error {want:.3g}")
    assert "export the model yourself and pass the ExportedProgram" in msg


def test_a_batch_of_one_is_compared_on_the_batch_it_was_traced_with():
    # _trace exports a batch of one as two samples: the check runs both on the doubled batch
    with pytest.raises(UnsupportedOpError, match="differs from the eager model"):
        capture(CompilingShortcut().eval(), _x(1))
    graph = capture(Plain().eval(), _x(1))
    assert [n.op for n in graph.nodes] == ["linear", "relu"]


def test_an_ordinary_model_is_captured_and_computes_eager():
    model = Plain().eval()
    graph = capture(model, _x())
    x = _x(3).numpy()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).double().numpy()
    np.testing.assert_allclose(run_float(graph, graph.to_internal(x)), want, atol=1e-5)


def test_an_exported_program_is_taken_as_the_function_no_eager_to_compare():
    model = CompilingShortcut().eval()
    ep = torch.export.export(model, (_x(),))  # the user chose the exported path (with relu)
    graph = capture(ep, _x())
    assert [n.op for n in graph.nodes] == ["linear", "relu"]


def test_errors_name_each_output_of_a_structure():
    class Pair(nn.Module):
        def forward(self, x):
            shifted = x + 1 if torch.compiler.is_compiling() else x
            return {"same": x * 2, "other": shifted}

    model = Pair()
    ep = torch.export.export(model, (_x(),))
    got = dict(export_check.errors(model, ep, (_x(),)))
    assert got["output ['same']"] == 0.0
    assert got["output ['other']"] == pytest.approx(
        float(torch.ones(2, 8).norm() / _x().norm()), rel=1e-6)


def test_relative_error():
    a = torch.tensor([3.0, 4.0, float("nan"), float("inf")])
    assert export_check.relative_error(a.clone(), a) == 0.0
    assert export_check.relative_error(a + torch.tensor([0, 0.5, 0, 0]), a) == pytest.approx(0.1)
    assert math.isinf(export_check.relative_error(a[:2], a))  # shapes differ
    assert math.isinf(export_check.relative_error(torch.tensor([3.0, 4.0, 1.0, 1.0]), a))
    assert export_check.relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert math.isinf(export_check.relative_error(torch.ones(3), torch.zeros(3)))


def test_float_noise_passes():
    model = Plain().eval()
    ep = torch.export.export(model, (_x(),))
    noisy = export_check.relative_error(model(_x()) * (1 + 1e-6), model(_x()))
    assert noisy < export_check.TOLERANCE
    export_check.check(model, ep, (_x(),))  # no refusal
