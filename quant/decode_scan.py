"""Generation of Mamba's selective scan (quant.scan): its state h carried in DRAM.

The full graph unrolls the scan over its C positions; position i's nodes select dA_i, dBx_i and
C_i from tensors over the positions (a matmul by a constant selector whose only nonzero column
is i), h_i = dA_i * h_{i-1} + dBx_i, y_i = h_i @ C_i, and a concat stacks the y_i (through the
requant tables calibration puts before it). Calibration gives each role one encoding at every
position (quant.calibrate, ``scan.tied``), so position i's requantizations are position 1's:

    prefill  positions 0..P-1 as in the full graph (the selectors' first P columns, the concat
             of the first P outputs), then h_{P-1} into the state ``cache.<h_0>`` (d, n); an h
             of more axes (Mamba2's (heads, head_dim, n)) as rows (heads, head_dim * n)
    decode   position 1's nodes on the step's token (its selectors' column 1: the step's
             tensors have one position), reading h_{p-1} from the state (``cache_read`` into
             ``<state>.prev``: every tensor has one writer; viewed back to h's shape) and writing
             h_p over it (``cache_write`` of ``<state>``, after every read: the decay is h_p's
             ancestor); the concat is the step's y

A scan whose output is its state (the RG-LRU's, quant.rglru: y_i = h_i, no C) decodes the
same way: its stacked output is h_i's view, past the next position's decay that reads h_i too.

Each step is the full model's position p bit for bit: the same codes in, the same integer ops
and requantizations (checked: every position's selector is position 1's moved to its column).

Recurrences of other shapes (RWKV's WKV, the gated delta rule's S_t) are quant.recurrence's,
decoded by quant.decode alike.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph, QNode
from qasic.quant.scan import ScanStep, scans

TEMPLATE = 1  # the position whose nodes a decode step runs (the first with a state to read)


@dataclass(frozen=True)
class ScanPlan:
    steps: tuple[ScanStep, ...]
    position: dict[str, int]   # node name -> the position it belongs to
    selectors: frozenset[str]  # the selector constants' node names
    concat: str                # the node stacking the outputs
    tails: tuple[str, ...]     # per position, the tensor the concat reads
    state: str                 # the state's name

    def prefill(self, n: QNode, prompt: int) -> QNode | None:
        """``n`` in a prefill of ``prompt`` positions (None: a later position's, dropped)."""
        if n.name == self.concat:
            return replace(n, inputs=self.tails[:prompt])
        if self.position.get(n.name, 0) >= prompt:
            return None
        if n.name in self.selectors:
            return _columns(n, slice(0, prompt))
        return n


def plans(graph: QGraph, c: int) -> list[ScanPlan]:
    """A plan for each selective scan of ``graph`` over its ``c`` positions."""
    producer = {n.output: n for n in graph.nodes}
    readers: dict[str, list[QNode]] = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)
    out = []
    for steps in scans(graph, c):
        if c < 2:
            raise UnsupportedOpError(f"{steps[0].state}: a selective scan over 1 position; "
                                     "generation needs at least 2")
        position, selectors, tails, concat = {}, set(), [], None
        if steps[TEMPLATE].state is None:
            raise UnsupportedOpError(f"{steps[0].state}: a selective scan over {c} positions "
                                     "whose last one writes no state; generation needs at "
                                     "least 3")
        for s in steps:
            mine = [t for t in (s.decay, s.state, s.out) if t is not None]
            if s.decay is None:
                mine += [t for t in producer[_decay0(producer, s)].inputs]
                mine.append(_decay0(producer, s))
            for sel in (t for t in (s.sel_a, s.sel_b, s.sel_c) if t is not None):
                chain, const = _selection_chain(producer, sel)
                mine += chain
                selectors.add(const)
                mine.append(const)
            tail, decays = s.out, {t.decay for t in steps}  # y_i = h_i: h_i's next decay
            ends = _stacking(readers, tail, decays)
            while len(ends) == 1 and ends[0].op != "concat" and len(ends[0].inputs) == 1:
                tail = ends[0].output
                mine.append(tail)
                ends = _stacking(readers, tail, decays)
            if len(ends) != 1 or ends[0].op != "concat" or concat not in (None, ends[0].name):
                raise UnsupportedOpError(f"{s.out}: a selective scan's output that is not "
                                         "stacked with the others' by one concat; generation "
                                         "decodes Mamba's scan as HF's slow path writes it")
            concat = ends[0].name
            tails.append(tail)
            for t in mine:
                position[producer[t].name] = s.position
        outside = next((r for name in position for r in readers.get(name, [])
                        if r.name not in position and r.name != concat), None)
        if outside is not None:
            raise UnsupportedOpError(f"{outside.name} ({outside.op}) reads a selective scan's "
                                     "per-position tensors; generation runs one position a "
                                     "step, so only the scan and its stack may read them")
        cat = next(n for n in graph.nodes if n.name == concat)
        if tuple(cat.inputs) != tuple(tails):
            raise UnsupportedOpError(f"{concat}: it stacks a selective scan's outputs out of "
                                     "order or with other tensors; generation cannot decode it")
        plan = ScanPlan(steps, position, frozenset(selectors), concat, tuple(tails),
                        f"cache.{steps[0].state}")
        _check_selectors(graph, plan, c)
        out.append(plan)
    return out


def _stacking(readers: dict, tensor: str, decays: set) -> list[QNode]:
    """The readers of ``tensor`` on the way to the stack of outputs: all but a next position's
    decay (which reads a state that is its position's output: the RG-LRU's)."""
    return [r for r in readers.get(tensor, []) if r.output not in decays]
def decode_node(n: QNode, plan: ScanPlan, state: str) -> QNode | None:
    """``n`` in a decode step: position TEMPLATE's nodes on the step's token, the decay reading
    the state ``state`` (h_{p-1}); other positions' nodes and the concat are None."""
    if n.name == plan.concat or plan.position.get(n.name) != TEMPLATE:
        return None
    step = plan.steps[TEMPLATE]
    if n.name in plan.selectors:
        return _columns(n, slice(TEMPLATE, TEMPLATE + 1))
    if n.output == step.decay:
        return replace(n, inputs=tuple(state if t == step.prev else t for t in n.inputs))
    return n


def previous(plan: ScanPlan) -> str:
    """The decode step's tensor h_(p-1): the state as the last step left it (its own name: the
    step's cache_write of h_p names the state)."""
    return f"{plan.state}.prev"


def _columns(n: QNode, cols: slice) -> QNode:
    value = np.asarray(n.params["value"])[..., cols]
    return replace(n, params={**n.params, "value": value})


def _decay0(producer: dict, s: ScanStep) -> str:
    """Position 0's decay: the mul (of dA_0 by a constant 0) the first state adds."""
    a, b = producer[s.state].inputs
    return a if a != s.sel_b else b


def _selection_chain(producer: dict, tensor: str) -> tuple[list[str], str]:
    """(the views down to the selection matmul and it, its constant selector)."""
    chain = [tensor]
    n = producer[tensor]
    while n.op != "matmul":
        chain.append(n.inputs[0])
        n = producer[n.inputs[0]]
    return chain, n.inputs[0]


def _check_selectors(graph: QGraph, plan: ScanPlan, c: int) -> None:
    """Every position's selector is position TEMPLATE's with its column moved: the step runs
    the same selection (code and encoding) whatever p."""
    producer = {n.output: n for n in graph.nodes}
    for role in ("sel_a", "sel_b", "sel_c"):
        if _selector(producer, plan.steps[TEMPLATE], role) is None:
            continue  # no C: the RG-LRU's outputs are its states
        want = _selector(producer, plan.steps[TEMPLATE], role)[..., TEMPLATE]
        for s in plan.steps:
            i, v = s.position, _selector(producer, s, role)
            if v is not None and (v.shape[-1] != c or not np.array_equal(v[..., i], want)
                                  or np.delete(v, i, axis=-1).any()):
                raise UnsupportedOpError(f"a selective scan's selection at position {i} is "
                                         "not the others' moved to its column; generation "
                                         "cannot run it as one step")


def _selector(producer: dict, s: ScanStep, role: str) -> np.ndarray | None:
    """The constant selector of ``role`` at step ``s`` (None: the role is not there, the last
    position's sel_b)."""
    tensor = getattr(s, role)
    if tensor is None:
        return None
    return np.asarray(producer[_selection_chain(producer, tensor)[1]].params["value"])
