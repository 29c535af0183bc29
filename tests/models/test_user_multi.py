"""A user model of several inputs from a data file of 'calibration.NAME' arrays (one per forward
parameter): packed behind one batch, or one line naming the missing, unknown, skipped or
misshaped array and the shape expected."""

from __future__ import annotations

import numpy as np
import pytest

from qasic.errors import InputError
from qasic.models.user import user_trained_model

MODEL = '''
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb, self.lin = nn.Embedding(20, 4), nn.Linear(3, 4)
    def forward(self, x, ids, scale=None):
        return self.lin(x) + self.emb(ids).sum(1)

def make():
    return Net()
'''


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL)
    return f"{path}:make"


def _data(tmp_path, **arrays):
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


def _x(n=4):
    r = np.random.default_rng(0)
    return r.standard_normal((n, 3)).astype(np.float32), r.integers(0, 20, (n, 5))


def test_arrays_named_after_the_parameters_are_packed(model, tmp_path):
    x, ids = _x()
    tx, tids = _x(2)
    data = _data(tmp_path, **{"calibration.x": x, "calibration.ids": ids, "test_x.x": tx,
                              "test_x.ids": tids, "test_y": np.zeros(2, np.int64)})
    tm = user_trained_model(model, data)
    assert tm.calibration.shape == (4, 8) and tm.test_inputs.shape == (2, 8)
    assert np.array_equal(tm.calibration[:, 3:], ids)  # the forward's order: x, then ids
    import torch

    with torch.no_grad():
        got = tm.module(torch.from_numpy(tm.calibration)).numpy()
        want = tm.module.module(torch.from_numpy(x), torch.from_numpy(ids)).numpy()
    assert np.array_equal(got, want)


def test_a_missing_input_is_one_line(model, tmp_path):
    x, _ = _x()
    with pytest.raises(InputError, match=r"has no 'calibration.ids': model net's forward needs "
                                         r"x, ids"):
        user_trained_model(model, _data(tmp_path, **{"calibration.x": x}))
    with pytest.raises(InputError, match=r"forward takes 2 inputs \(x, ids\); .* give one array "
                                         r"per input, 'calibration.x', 'calibration.ids'"):
        user_trained_model(model, _data(tmp_path, calibration=x))


def test_an_unknown_or_misshaped_array_is_one_line(model, tmp_path):
    x, ids = _x()
    with pytest.raises(InputError, match=r"'calibration.mask' names no parameter of model net's "
                                         r"forward \(x, ids, scale\)"):
        user_trained_model(model, _data(tmp_path, **{"calibration.x": x, "calibration.ids": ids,
                                                     "calibration.mask": ids}))
    with pytest.raises(InputError, match=r"'test_x.ids' has shape \(2, 4\); expected "
                                         r"\(batch, 5\)"):
        user_trained_model(model, _data(tmp_path, **{
            "calibration.x": x, "calibration.ids": ids, "test_x.x": x[:2],
            "test_x.ids": ids[:2, :4], "test_y": np.zeros(2, np.int64)}))
    with pytest.raises(InputError, match=r"forward failed on data file .*'s first sample "
                                         r"\(x \(4,\) float32, ids \(5,\) int64\)"):
        user_trained_model(model, _data(tmp_path, **{"calibration.x": np.zeros((4, 4),
                                                                                np.float32),
                                                     "calibration.ids": ids}))
    with pytest.raises(InputError, match="holds both 'calibration' and 'calibration.NAME'"):
        user_trained_model(model, _data(tmp_path, calibration=x, **{"calibration.x": x,
                                                                     "calibration.ids": ids}))
    with pytest.raises(InputError, match=r"'calibration.ids' holds token id 2[0-4], outside"):
        user_trained_model(model, _data(tmp_path, **{"calibration.x": x,
                                                     "calibration.ids": ids + 5 * (ids > 15)}))
