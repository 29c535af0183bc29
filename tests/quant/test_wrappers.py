"""Wrapper higher-order ops (qasic.quant.wrappers): torch.export keeps an autocast or no_grad
region as a call of a subgraph; capture walks the subgraph's nodes in its place, nested ones
too, and the model runs bit-exact."""

from __future__ import annotations

import operator

import numpy as np
import pytest
import torch
from torch import nn

from qasic.errors import UnsupportedOpError
from qasic.quant import capture, wrappers

D = 8


class Regions(nn.Module):
    """A linear, a region under ``autocast(enabled=False)`` (x-transformers' rotary) holding a
    ``no_grad`` region, a ``no_grad`` region alone and a linear; ``region`` picks which."""

    def __init__(self, region: str = "both"):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(D, D), nn.Linear(D, D)
        self.region = region

    def forward(self, x):
        y = self.a(x)
        if self.region in ("autocast", "both"):
            with torch.autocast("cpu", enabled=False):
                y = torch.relu(y.float()) * 2
                with torch.no_grad():
                    y = torch.sigmoid(y) - 0.5
        if self.region in ("grad", "both"):
            with torch.no_grad():
                y = y + self.b(y)
        return self.b(y)


def _x(batch: int = 8) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((batch, D)).astype(np.float32)


def _hops(graph) -> list[str]:
    return [str(n.target) for n in graph.nodes if n.op == "call_function"
            and n.target in wrappers.WRAPPERS]


def test_export_keeps_the_regions_as_wrapper_calls_which_inline_removes():
    ep = torch.export.export(Regions().eval(), (torch.from_numpy(_x(2)),))
    # export splits the autocast region at the no_grad one inside it (and keeps an empty
    # third part)
    assert _hops(ep.graph) == ["wrap_with_autocast"] * 3 + ["wrap_with_set_grad_enabled"]
    graph = wrappers.inline(ep.graph_module)
    assert _hops(graph) == [] and not [n for n in graph.nodes if n.op == "get_attr"]
    targets = [getattr(n.target, "__name__", "") for n in graph.nodes if n.op == "call_function"]
    assert [t.split(".")[0] for t in targets if not t.startswith(("_assert", "to"))] == [
        "linear", "relu", "mul", "sigmoid", "sub", "linear", "add", "linear"]
    gm = torch.fx.GraphModule(ep.graph_module, graph)  # the copy computes what torch does
    params = [p.detach() for p in ep.module().parameters()]
    x = torch.from_numpy(_x(2))
    torch.testing.assert_close(gm(*params, x)[0], Regions().eval()(x), rtol=0, atol=0)


def test_nested_wrappers_are_inlined_too():
    """A no_grad call whose subgraph calls an autocast one (built by hand: torch.export
    flattens the regions it traces)."""
    hop = torch.ops.higher_order
    inner = _module(lambda g, x: (g.call_function(torch.ops.aten.relu.default, (x,)),))

    def mid_body(g, x):
        call = g.call_function(hop.wrap_with_autocast, ("cpu", torch.bfloat16, False, False,
                                                        g.get_attr("inner"), x))
        y = g.call_function(operator.getitem, (call, 0))
        return (g.call_function(torch.ops.aten.mul.Tensor, (y, 2.0)),)

    mid = _module(mid_body, inner=inner)
    top = _module(lambda g, x: (g.call_function(operator.getitem, (g.call_function(
        hop.wrap_with_set_grad_enabled, (False, g.get_attr("mid"), x)), 0)),), mid=mid)
    graph = wrappers.inline(top)
    assert [n.target for n in graph.nodes if n.op == "call_function"] == [
        torch.ops.aten.relu.default, torch.ops.aten.mul.Tensor]
    x = torch.randn(3, D)
    torch.testing.assert_close(torch.fx.GraphModule({}, graph)(x)[0], torch.relu(x) * 2)


G, X = "graph", "x"  # the subgraph's and the input's places in a wrapper's arguments
HOP = torch.ops.higher_order
CALLS = {  # wrapper -> (args, kwargs) as torch 2.13's signatures have them
    "wrap_with_autocast": (("cpu", torch.bfloat16, False, False, G, X), {}),
    "wrap_with_set_grad_enabled": ((False, G, X), {}),
    "wrap": ((G, X), {}),
    "tag_activation_checkpoint": ((G, X), {"use_reentrant": False}),  # the checkpoint's own
    "wrap_activation_checkpoint": ((G, X), {}),
    "invoke_subgraph": ((G, "region", X), {}),
    "hints_wrapper": ((G, (X,), {}), {"hints": {}}),
}


def _calling(name: str, args: tuple, kwargs: dict) -> torch.fx.GraphModule:
    """A graph of one input that calls wrapper ``name`` on a relu subgraph."""
    inner = _module(lambda g, x: (g.call_function(torch.ops.aten.relu.default, (x,)),))

    def body(g, x):
        put = {G: g.get_attr("inner"), X: x}

        def arg(a):
            if isinstance(a, tuple):
                return tuple(arg(b) for b in a)
            return put.get(a, a) if isinstance(a, str) else a

        call = g.call_function(getattr(HOP, name), arg(args), kwargs)
        return (g.call_function(operator.getitem, (call, 0)),)

    return _module(body, inner=inner)


@pytest.mark.parametrize("name", list(CALLS))
def test_every_wrapper_is_inlined_from_where_its_signature_keeps_the_subgraph(name):
    graph = wrappers.inline(_calling(name, *CALLS[name]))
    assert [n.target for n in graph.nodes if n.op == "call_function"] == [
        torch.ops.aten.relu.default]
    x = torch.randn(3, D)
    torch.testing.assert_close(torch.fx.GraphModule({}, graph)(x)[0], torch.relu(x))


def test_a_wrapper_whose_subgraph_takes_keywords_is_not_inlined():
    module = _calling("wrap", (G, X), {"scale": 2.0})
    assert wrappers.inline(module) is module.graph


def _module(body, **children) -> torch.fx.GraphModule:
    """A GraphModule of one input whose outputs are ``body(graph, input)``."""
    g = torch.fx.Graph()
    g.output(body(g, g.placeholder("x")))
    return torch.fx.GraphModule(nn.Module(), g) if not children else _with(g, children)


def _with(g: torch.fx.Graph, children: dict) -> torch.fx.GraphModule:
    root = nn.Module()
    for name, child in children.items():
        root.add_module(name, child)
    return torch.fx.GraphModule(root, g)


class Bfloat16Region(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(D, D)

    def forward(self, x):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = self.a(x)
        return y.float()


def test_an_enabled_autocast_region_is_a_change_of_dtype_refused_in_one_line():
    """Its subgraph is inlined like any other; its values are bfloat16, and the cast back is
    refused as every change of dtype is (never a silent wrong answer)."""
    with pytest.raises(UnsupportedOpError) as e:
        capture(Bfloat16Region().eval(), torch.from_numpy(_x(2)))
    msg = str(e.value)
    assert msg.startswith("node 'to': a cast to torch.float32; the model must stay in "
                          "torch.bfloat16") and "\n" not in msg


class Cond(nn.Module):
    """torch.cond on a constant predicate: control flow, no wrapper."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(D, D)
        self.register_buffer("flag", torch.ones(1))

    def forward(self, x):
        return torch.cond(self.flag.sum() > 0, lambda t: t * 2, lambda t: t - 1, (self.a(x),))


def test_other_higher_order_ops_are_refused_in_one_line_naming_them():
    """Before: "fx op 'get_attr' is not supported"."""
    with pytest.raises(UnsupportedOpError) as e:
        capture(Cond().eval(), torch.from_numpy(_x(2)))
    msg = str(e.value)
    assert msg.startswith("node 'true_graph_0': a subgraph of higher-order op cond (control "
                          "flow") and "wrap_with_autocast" in msg and "\n" not in msg


def test_a_graph_without_wrappers_is_left_as_it_is():
    ep = torch.export.export(nn.Linear(D, D), (torch.zeros(2, D),))
    assert wrappers.inline(ep.graph_module) is ep.graph


def test_models_with_autocast_and_no_grad_regions_capture_and_run_bit_exact():
    import qasic

    for region in ("autocast", "grad", "both"):
        model = Regions(region).eval()
        graph = capture(model, torch.from_numpy(_x(2)))
        assert [n.op for n in graph.nodes].count("linear") == 3 - (region == "autocast")
        record = qasic.evaluate(model, _x(), calibration=_x())
        assert record["bit_exact"] and record["cosine"] > 0.99, (region, record["cosine"])
