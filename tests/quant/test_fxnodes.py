"""qasic.quant.fxnodes.rebuild, the graph-copy loop of the rewrites: None copies a node, a node
of the new graph replaces it, a value already mapped aliases it, DROP leaves it out."""

from __future__ import annotations

import operator

import pytest
import torch
from torch import fx

from qasic.quant.fxnodes import DROP, copied, rebuild, rewrite_matches


def _graph() -> fx.Graph:
    def f(x):
        a = torch.relu(x)
        b = torch.neg(a)
        return b + x

    g = fx.symbolic_trace(f).graph
    for n in g.nodes:
        n.meta["tag"] = n.name
    return g


def _ops(g: fx.Graph) -> list:
    return [(n.op, n.target, n.name) for n in g.nodes]


def test_none_copies_every_node_as_it_is():
    g = _graph()
    new = rebuild(g, lambda new, node, env: None)
    assert new is not g
    assert _ops(new) == _ops(g)
    assert [n.meta["tag"] for n in new.nodes] == [n.name for n in g.nodes]
    add = next(n for n in new.nodes if n.target is operator.add)
    assert all(a.graph is new for a in add.args)  # inputs mapped into the copy, not the old graph


def test_a_returned_node_replaces_and_an_alias_skips():
    def replace(new, node, env):
        if node.target is torch.relu:
            return new.call_function(torch.sigmoid, (env[node.args[0]],))
        if node.target is torch.neg:
            return env[node.args[0]]  # neg(a) read as a itself
        return None

    new = rebuild(_graph(), replace)
    assert [n.target for n in new.nodes if n.op == "call_function"] == [torch.sigmoid,
                                                                        operator.add]
    add = next(n for n in new.nodes if n.target is operator.add)
    assert add.args[0].target is torch.sigmoid
    x = torch.randn(5)
    assert torch.equal(fx.GraphModule(torch.nn.Module(), new)(x), torch.sigmoid(x) + x)


def test_drop_leaves_a_node_out_and_a_reader_of_it_fails():
    def drop_neg(new, node, env):
        return DROP if node.target is torch.neg else None

    with pytest.raises(KeyError):
        rebuild(_graph(), drop_neg)  # the add reads the dropped neg

    def drop_both(new, node, env):
        if node.target is torch.neg:
            return DROP
        return env[node.args[1]] if node.target is operator.add else None  # add read as x

    new = rebuild(_graph(), drop_both)
    assert [n.op for n in new.nodes] == ["placeholder", "call_function", "output"]


def test_a_copy_can_be_annotated_and_returned():
    def mark(new, node, env):
        out = copied(new, node, env)
        out.meta["seen"] = True
        return out

    new = rebuild(_graph(), mark)
    assert _ops(new) == _ops(_graph())
    assert all(n.meta["seen"] for n in new.nodes)


def test_rewrite_matches_builds_each_match_and_is_the_graph_itself_when_none():
    g = _graph()
    assert rewrite_matches(g, lambda n: None, None) is g
    assert rewrite_matches(g, lambda n: False, None) is g
    seen = []

    def build(new, node, m, env):
        seen.append((node.name, m))
        return new.call_function(torch.sigmoid, (env[node.args[0]],))

    new = rewrite_matches(g, lambda n: ("x",) if n.target is torch.relu else None, build)
    assert seen == [("relu", ("x",))]
    assert [n.target for n in new.nodes if n.op == "call_function"] == [torch.sigmoid,
                                                                        torch.neg, operator.add]


def test_rewrite_matches_leaves_out_the_nodes_to_drop():
    g = _graph()
    neg = next(n for n in g.nodes if n.target is torch.neg)
    new = rewrite_matches(g, lambda n: n.target is operator.add,
                          lambda new, node, _, env: env[node.args[1]], drop={neg})
    assert [n.target for n in new.nodes if n.op == "call_function"] == [torch.relu]
    with pytest.raises(KeyError):  # the add, copied, reads the dropped neg
        rewrite_matches(g, lambda n: n.target is torch.relu,
                        lambda new, node, _, env: env[node.args[0]], drop={neg})
