"""The table of capture patches: one row each, owned by a real module, and the model the same
after the patches are left (its modules, their classes, forwards and tensors)."""

import importlib

import torch

from qasic.quant import capture_patches


def test_rows_are_named_once_and_owned_by_a_quant_module():
    names = [p.name for p in capture_patches.PATCHES]
    assert len(names) == len(set(names))
    for p in capture_patches.PATCHES:
        importlib.import_module(f"qasic.quant.{p.owner}")
        assert p.does


class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.LSTM(4, 6, batch_first=True)
        self.cell = torch.nn.GRUCell(6, 6)
        self.register_buffer("pad", torch.tensor(3))

    def forward(self, x):
        y, _ = self.rnn(x)
        self.cached = y.sum()  # a tensor attribute the forward sets: gone after the patches
        return self.cell(y[:, -1])


def test_applied_leaves_the_model_as_it_was():
    model = _Tiny().eval()
    x = torch.randn(2, 5, 4)
    before = model(x)
    del model.cached
    classes = [type(m) for m in model.modules()]
    forwards = [m.forward for m in model.modules()]
    with capture_patches.applied(model, (x,)):
        inside = model(x)
    assert torch.allclose(inside, before, atol=1e-5)  # the patches compute the same function
    assert [type(m) for m in model.modules()] == classes
    assert [m.forward for m in model.modules()] == forwards
    assert not hasattr(model, "cached")
    assert int(model.pad) == 3
    assert torch.equal(model(x), before)
