"""compile_graph runs with Python's cyclic collector held off (compiler.collector), restores it,
and emits the same program as with the collector on."""

from __future__ import annotations

import gc

import pytest

from qasic.arch.config import default_arch
from qasic.compiler import compile_graph
from qasic.compiler.collector import collector_held
from qasic.isa.program import to_bytes
from tests.graphs import residual_graph


@pytest.fixture
def collector_on():
    was_on = gc.isenabled()
    gc.enable()
    yield
    if not was_on:
        gc.disable()


def test_compile_runs_without_the_collector_and_restores_it(collector_on):
    seen = []
    compile_graph(residual_graph(), default_arch(), progress=lambda _: seen.append(gc.isenabled()))
    assert seen and not any(seen)  # every kernel lowered with the collector off
    assert gc.isenabled()


def test_same_program_with_the_collector_on(collector_on):
    graph, arch = residual_graph(), default_arch()
    seen = []
    with_gc = compile_graph.__wrapped__(graph, arch, progress=lambda _: seen.append(gc.isenabled()))
    assert seen and all(seen)
    assert to_bytes(compile_graph(graph, arch)) == to_bytes(with_gc)


def test_held_block_restores_state_on_error_and_when_nested(collector_on):
    with pytest.raises(RuntimeError), collector_held():
        assert not gc.isenabled()
        raise RuntimeError("inside")
    assert gc.isenabled()
    gc.disable()  # a caller that turned it off keeps it off
    with collector_held():
        with collector_held():
            pass
        assert not gc.isenabled()
    assert not gc.isenabled()
