"""Bad inputs a user makes, one test per class: each is one line (exit 1 from the CLI), or runs
when running it is the obvious meaning (a float64 or half model, an int image to a float model,
a tuple model's picked output with labels). Each crashed with a traceback before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qasic.cli import main
from qasic.errors import InputError

MODEL_FILE = """
import torch
from torch import nn


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(6, 16), nn.Linear(16, 3)

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.relu(h))


class Pair(MLP):
    def forward(self, x):
        h = self.a(x)
        return self.b(torch.relu(h)), h


def mlp():
    return MLP()


def pair():
    return Pair()


def double():
    return MLP().double()
"""


def _x(n: int = 16) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad_inputs")
    (d / "m.py").write_text(MODEL_FILE)
    x = _x()
    y = np.random.default_rng(1).integers(0, 3, len(x))
    np.savez(d / "ok.npz", calibration=x, test_x=x, test_y=y)
    np.savez(d / "empty.npz", calibration=x[:0])
    np.savez(d / "ints.npz", calibration=(x * 10).astype(np.int64))
    np.savez(d / "rank.npz", calibration=x[:, :, None])
    np.savez(d / "test_shape.npz", calibration=x, test_x=x[:, :5], test_y=y)
    np.savez(d / "labels_2d.npz", calibration=x, test_x=x, test_y=np.eye(3)[y])
    return d


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(("data", "says"), [
    ("empty.npz", "'calibration' has no samples (shape (0, 6)); give at least one"),
    ("ints.npz", ("first sample (shape (1, 6), int64 (integer arrays are token ids, fed as "
                  "int64; give floats for features)): RuntimeError: mat1 and mat2")),
    ("rank.npz", ("first sample (shape (1, 6, 1), float32): RuntimeError: mat1 and mat2 "
                  "shapes cannot be multiplied")),
    ("test_shape.npz", "'test_x' has samples of shape (5,), 'calibration' of (6,)"),
    ("labels_2d.npz", "'test_y' is a float64 array of shape (16, 3); give one whole class"),
])
def test_a_data_file_the_model_cannot_take_is_one_line(user, capsys, data, says):
    """An empty calibration batch (ZeroDivisionError in capture before), int features to a
    float model and a sample of the wrong rank (torch's RuntimeError from the fp32 accuracy, or
    torch's own logged traceback before the export's line), test samples of another shape
    than calibration's (RuntimeError) and one-hot labels (a numpy broadcast error; float
    labels were truncated to class indices)."""
    assert main(["quantize", "--model", f"{user}/m.py:mlp", "--data", f"{user}/{data}"]) == 1
    err = _one_line(capsys)
    assert says in err and "give" in err.rpartition(":")[2]


def test_a_tuple_models_picked_output_scores_its_labels(user, capsys):
    """--output 0 with test labels: the fp32 accuracy of the picked output ('tuple' object has
    no attribute 'argmax' before)."""
    from qasic.models.outputs import select_output
    from qasic.models.user import user_trained_model

    trained = select_output(user_trained_model(f"{user}/m.py:pair", f"{user}/ok.npz"), 0)
    plain = user_trained_model(f"{user}/m.py:mlp", f"{user}/ok.npz")
    assert trained.fp32_accuracy == plain.fp32_accuracy and 0 <= plain.fp32_accuracy <= 1


def test_a_float64_or_half_model_runs_on_a_float32_copy(user):
    """model.double() / .half(): the float32 data could not feed it (RuntimeError: mat1 and mat2
    must have the same dtype); the weights are quantized from a float32 copy, the user's module
    is left as it was."""
    import qasic
    from qasic.models.user import user_trained_model

    x = _x()
    for dtype in (torch.float64, torch.float16):
        torch.manual_seed(0)
        module = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(),
                                     torch.nn.Linear(16, 3)).to(dtype).eval()
        r = qasic.evaluate(module, x, calibration=x)
        assert r["bit_exact"] and r["cosine"] > 0.999, (dtype, r["cosine"])
        assert module[0].weight.dtype == dtype
    trained = user_trained_model(f"{user}/m.py:double", f"{user}/ok.npz")
    assert 0 <= trained.fp32_accuracy <= 1


def test_int_inputs_to_a_float_model_are_its_floats_and_float_ids_must_be_whole():
    """evaluate(module, int array): an int image to a float model is its values as floats
    (RuntimeError in the fp32 run before); to a model of ids, floats that are not whole
    numbers are one line."""
    import qasic

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(6, 3)).eval()
    x = np.rint(_x() * 4)
    r = qasic.evaluate(module, x.astype(np.int64), calibration=x.astype(np.float32))
    assert r["bit_exact"] and r["cosine"] > 0.999
    with pytest.raises(InputError, match="calibration batch's first sample .* int64 .*token ids"):
        qasic.evaluate(module, x, calibration=x.astype(np.int64))
    emb = torch.nn.Sequential(torch.nn.Embedding(10, 4), torch.nn.Flatten(),
                              torch.nn.Linear(12, 2)).eval()
    ids = np.random.default_rng(0).integers(0, 10, (8, 3))
    with pytest.raises(InputError, match="are token ids .* not whole numbers: give int ids"):
        qasic.evaluate(emb, ids + 0.5, calibration=ids)


def test_compile_to_a_missing_directory_is_one_line_before_the_work(user, capsys, tmp_path):
    """FileNotFoundError at the save, after quantizing and compiling, before."""
    out = tmp_path / "no" / "p.qasic"
    assert main(["compile", "--model", f"{user}/m.py:mlp", "--data", f"{user}/ok.npz",
                 "--out", str(out)]) == 1
    assert f"--out {out}: directory {out.parent} does not exist" in _one_line(capsys)
    assert main(["compile", "--model", f"{user}/m.py:mlp", "--data", f"{user}/ok.npz",
                 "--out", str(tmp_path)]) == 1
    assert "is a directory; give a file name like" in _one_line(capsys)


def test_a_failed_trace_is_one_line_without_torchs_logged_traceback(caplog):
    """torch logs a failed fake-tensor kernel with its traceback (38 lines on stderr before
    qasic's one line here, and after every batch-of-two trace a model written for batch 1
    fails): the capture quiets that logger; the error still names the failure."""
    import logging

    from qasic.errors import UnsupportedOpError
    from qasic.quant import QuantConfig, quantize

    with caplog.at_level(logging.ERROR), pytest.raises(UnsupportedOpError, match="torch.export"):
        quantize(torch.nn.Linear(6, 3).eval(), torch.zeros(1, 6, 1),
                 np.zeros((2, 6, 1), np.float32), QuantConfig())
    assert not [r for r in caplog.records if r.name.startswith("torch._subclasses")]
