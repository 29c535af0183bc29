"""Helpers for the tests of a rewrite before capture (a quant.rewrites.REWRITES row): the
rewritten fx graph computes torch's values, and the model runs bit-exact through the golden
reference and the simulator."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import fx

import qasic
from qasic.quant import capture, run_float


def rewritten(model: torch.nn.Module, x: np.ndarray, decompose: Callable[..., fx.Graph],
              *args) -> tuple[torch.export.ExportedProgram, fx.Graph]:
    """``model`` exported on one sample of ``x``, and ``decompose(its graph, *args)``."""
    ep = torch.export.export(model, (torch.from_numpy(x[:1]),))
    return ep, decompose(ep.graph_module.graph, *args)


def assert_computes_torch(ep: torch.export.ExportedProgram, new: fx.Graph,
                          model: torch.nn.Module, x: np.ndarray, tol: float = 1e-5) -> None:
    """``new``, a rewrite of ``ep``'s graph, computes ``model``'s values on ``x``. It runs node by
    node (fx.Interpreter: a constant tensor in a node's arguments, which fx's generated code
    cannot spell, is fine), fed the program's parameters, buffers and constants in the order of
    its signature."""
    state = {**ep.state_dict, **ep.constants}
    inputs = [state[s.target] for s in ep.graph_signature.input_specs if s.target]
    xt = torch.from_numpy(x)
    with torch.no_grad():
        got = fx.Interpreter(fx.GraphModule(ep.graph_module, new)).run(*inputs, xt)[0]
        torch.testing.assert_close(got, model(xt), rtol=tol, atol=tol)


def assert_bit_exact(model: torch.nn.Module, x: np.ndarray, cosine: float = 0.99) -> dict:
    """``qasic.evaluate(model, x)``'s record: the simulator equals the golden reference on every
    sample, and the output's cosine to fp32 is above ``cosine``."""
    r = qasic.evaluate(model, x, calibration=x)
    assert r["bit_exact"] and r["cosine"] > cosine, r["cosine"]
    return r


def assert_float_graph_computes_torch(model: torch.nn.Module, x: np.ndarray) -> None:
    """The float graph capture makes of ``model`` (after every rewrite) computes torch's values
    on all of ``x``."""
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    fg = capture(model, torch.from_numpy(x[:2]))
    got = run_float(fg, fg.to_internal(x)).reshape(want.shape)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
