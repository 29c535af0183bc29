"""The table of capture patches: one row each, owned by a real module, and the model the same
after the patches are left (its modules, their classes, forwards and tensors)."""

import importlib

import pytest
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


class _CastsItsRouter(torch.nn.Module):
    """Switch Transformers' and NLLB-MoE's routers: ``self.classifier.to(self.dtype)`` in the
    forward (torch.export failed: "Couldn't swap Linear.weight")."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.classifier, self.out = torch.nn.Linear(6, 6), torch.nn.Linear(6, 3)

    def forward(self, x):
        self.classifier = self.classifier.to(torch.float32)
        return self.out(torch.relu(self.classifier(x)))


class _OffloadsExperts(torch.nn.Module):
    """lucidrains' soft-moe / st-moe Experts: the forward moves every expert to its device
    (the unused ones to the CPU), ``expert.to(device)``, then runs them (torch.export failed:
    "Couldn't swap Linear.weight")."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.experts = torch.nn.ModuleList(torch.nn.Linear(6, 6) for _ in range(2))
        self.out = torch.nn.Linear(6, 3)

    def forward(self, x):
        for expert in self.experts:
            expert.to("cpu")
        return self.out(sum(torch.relu(e(x)) for e in self.experts))


@pytest.mark.parametrize("cls", [_CastsItsRouter, _OffloadsExperts])
def test_a_module_cast_to_its_own_dtype_or_device_in_the_forward_runs_bit_exact(cls):
    import numpy as np

    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.quant import QuantConfig, capture, reference, run_float
    from qasic.quant.evaluate import cosine
    from qasic.quant.quantize import quantize_graph
    from qasic.sim.run import run_functional

    to = torch.nn.Module.to
    model = cls().eval()
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    fg = capture(model, torch.from_numpy(x[:1]), "casts")
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.abs(run_float(fg, x) - want).max() < 1e-5
    qg = quantize_graph(fg, x, QuantConfig())
    codes = qg.quantize_input(x)
    gold = reference.run(qg, codes)
    got = run_functional(compile_graph(qg, default_arch()), default_arch(), codes)
    assert np.array_equal(got.reshape(gold.shape), gold)
    assert cosine(qg.dequantize_output(gold), want) > 0.99
    assert torch.nn.Module.to is to  # put back after the trace


def test_fsmts_padding_mask_is_built_even_without_padding_while_tracing():
    """FSMT's make_padding_mask returns None when no id is padding (control flow on the ids):
    while tracing, the all-False mask (which masks nothing); put back after."""
    import pytest

    fsmt = pytest.importorskip("transformers.models.fsmt.modeling_fsmt")
    from qasic.quant import hf_masks

    ids, saved = torch.tensor([[5, 6, 7]]), fsmt.make_padding_mask
    assert saved(ids, 1) is None
    with hf_masks.always_padding_masks():
        assert torch.equal(fsmt.make_padding_mask(ids, 1), torch.zeros(1, 3, dtype=torch.bool))
    assert fsmt.make_padding_mask is saved
    assert "always_padding_masks" in [p.name for p in capture_patches.PATCHES]
