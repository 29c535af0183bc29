"""Mamba's selective scan as the capture unrolls it: one recurrence over the token positions.

HF's slow path runs, for each position i, h_i = dA_i * h_{i-1} + dBx_i (h of (d_inner,
d_state)) and y_i = h_i @ C_i, where dA_i, dBx_i and C_i are position i of tensors over all C
positions; torch.export unrolls the loop, so the QGraph holds per position

    sel_a   a view of matmul(constant selector, dA)   dA_i (d, n)
    decay   mul(sel_a, h_{i-1})                        (at position 0, mul by a constant 0)
    sel_b   a view of matmul(constant selector, dBx)  dBx_i (d, n)
    state   add(decay, sel_b)                          h_i
    sel_c   a view of matmul(constant selector, C)    C_i (n, 1)
    out     matmul(state, sel_c)                       y_i (d, 1)

Mamba2's scan as quant.recurrent_scan captures it has h of (heads, head_dim, state) and reads
each output from the decay instead, y_i = (dA_i * h_{i-1}) @ C_i (the token's own term, from
B_i . C_i, is added outside the scan), so nothing reads its last state h_{C-1}: its last
position is a decay and an output only (``sel_b`` and ``state`` None). Its selections are
along a leading axis: each reads its tensor through a view (1, C, rest) of its own.

RecurrentGemma's RG-LRU as quant.rglru captures it is a scan whose output is its state,
h_i = a_i * h_{i-1} + x_i and y_i = h_i (h of (width,)): no C (``sel_c`` None, ``out`` the
state), its outputs stacked by views of the states.

``scans`` finds each such chain (strictly: every position's selections read the same three
tensors, views apart, the chain runs over all C positions, position 0's decay multiplies a
constant). A decode step runs one position of it on a state read from DRAM, so each role has
one encoding at every position (``tied``: calibration observes a role over all positions at once;
quant.calibrate) and the step is the same program whatever p. Recurrences of other shapes (RWKV's
WKV, the gated delta rule's) are quant.recurrence's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLES = ("sel_a", "decay", "sel_b", "state", "sel_c", "out")
_VIEWS = ("reshape", "permute", "flatten")


@dataclass(frozen=True)
class ScanStep:
    """The tensors of position ``position`` of a scan, by role (``decay`` is None at 0)."""

    position: int
    sel_a: str
    decay: str | None
    sel_b: str | None  # None (and ``state``) at the last position of an output read from decay
    state: str | None
    sel_c: str | None  # None in a scan whose output is its state (``out`` the state)
    out: str
    prev: str | None  # h_{i-1}


def scans(graph: Any, positions: int) -> list[tuple[ScanStep, ...]]:
    """Every selective scan of ``graph`` (a QGraph or an FGraph) over ``positions`` tokens, its
    steps in position order."""
    producer = {n.output: n for n in graph.nodes}
    readers: dict[str, list] = {}
    for n in graph.nodes:
        for t in n.inputs:
            readers.setdefault(t, []).append(n)
    step_of = {}
    for n in graph.nodes:
        step = _step(n, producer)
        if step is not None:
            step_of[n.output] = step
    out = []
    for first in (s for s in step_of.values() if s[1] is None):
        chain, state = [first], first[0]
        while True:
            nxt = [s for s in step_of.values() if s[1] == state]
            if len(nxt) != 1:
                break
            chain.append(nxt[0])
            state = nxt[0][0]
        steps = [_scan_step(i, s, producer, readers) for i, s in enumerate(chain)]
        if len(chain) == positions - 1:  # outputs read from the decays: h_(C-1) is dead
            steps.append(_last_step(len(chain), chain[-1][0], producer, readers))
        if len(steps) != positions or None in steps:
            continue
        sources = [{_source(producer, getattr(s, r)) for s in steps if getattr(s, r)}
                   for r in ("sel_a", "sel_b", "sel_c")]
        if len({s.sel_c is None for s in steps}) == 1 and steps[0].sel_c is None:
            sources.pop()  # every output is its state (the RG-LRU's): no C
        if all(len(x) == 1 for x in sources) and len(set.union(*sources)) == len(sources):
            out.append(tuple(steps))  # each role selects from one tensor, the tensors distinct
    return out


def tied(graph: Any) -> dict[str, tuple[int, str]]:
    """tensor -> (scan, role) for the tensors that share one encoding across a scan's positions:
    each role's requantizing producers (the selections' matmuls, the decays, the states, the
    outputs; views take their input's encoding). Position 0's decay (a product by 0) keeps its
    own. A graph whose input is not token ids (C,) has none."""
    shape = tuple(graph.shapes[graph.input])
    if len(shape) != 1:
        return {}
    return _tied_scans(graph, shape[0])


def _tied_scans(graph: Any, c: int) -> dict[str, tuple[int, str]]:
    producer = {n.output: n for n in graph.nodes}
    out: dict[str, tuple[int, str]] = {}
    for k, steps in enumerate(scans(graph, c)):
        for s in steps:
            for role in ROLES:
                t = getattr(s, role)
                if t is not None:  # an output that is the state keeps its role "state"
                    out.setdefault(_unviewed(producer, t), (k, role))
    return out


def _step(n: Any, producer: dict) -> tuple[str, str | None] | None:
    """(h_i, h_{i-1}) for an add that is a scan step, h_{i-1} None at position 0."""
    if n.op != "add" or len(n.inputs) != 2:
        return None
    for decay, sel in (n.inputs, n.inputs[::-1]):
        m = producer.get(decay)
        if m is None or m.op != "mul" or _selection(producer, sel) is None:
            continue
        a, b = m.inputs
        for x, prev in ((a, b), (b, a)):
            if _selection(producer, x) is None:
                continue
            p = producer.get(prev)
            if p is not None and p.op == "constant":
                return n.output, None
            if p is not None and p.op == "add":
                return n.output, prev
    return None


def _scan_step(i: int, link: tuple[str, str | None], producer: dict, readers: dict
               ) -> ScanStep | None:
    state, prev = link
    n = producer[state]
    decay, sel_b = (n.inputs if producer[n.inputs[0]].op == "mul" else n.inputs[::-1])
    sel_a = next(t for t in producer[decay].inputs if _selection(producer, t) is not None)
    outs = [r for t in (state, decay) for r in readers.get(t, []) if r.op == "matmul"
            and r.inputs[0] == t and _selection(producer, r.inputs[1]) is not None]
    if not outs:  # y_i = h_i (the RG-LRU's)
        return ScanStep(i, sel_a, decay if prev is not None else None, sel_b, state, None,
                        state, prev)
    if len(outs) != 1:
        return None
    return ScanStep(i, sel_a, decay if prev is not None else None, sel_b, state,
                    outs[0].inputs[1], outs[0].output, prev)


def _last_step(i: int, prev: str, producer: dict, readers: dict) -> ScanStep | None:
    """The last position of a scan whose outputs read the decays (y_i = (dA_i * h_(i-1)) @ C_i:
    quant.recurrent_scan's Mamba2): its decay of h_(i-1) and its output, no state (nothing
    reads h_i)."""
    decays = [r for r in readers.get(prev, []) if r.op == "mul"
              and any(t != prev and _selection(producer, t) is not None for t in r.inputs)]
    if len(decays) != 1:
        return None
    decay = decays[0]
    outs = [r for r in readers.get(decay.output, []) if r.op == "matmul"
            and r.inputs[0] == decay.output and _selection(producer, r.inputs[1]) is not None]
    if len(outs) != 1:
        return None
    sel_a = next(t for t in decay.inputs if t != prev)
    return ScanStep(i, sel_a, decay.output, None, None, outs[0].inputs[1], outs[0].output, prev)


def _selection(producer: dict, tensor: str) -> Any:
    """The matmul(constant, X) that ``tensor`` is a view of, or None."""
    n = producer.get(tensor)
    while n is not None and n.op in _VIEWS:
        n = producer.get(n.inputs[0])
    if n is None or n.op != "matmul":
        return None
    c = producer.get(n.inputs[0])
    return n if c is not None and c.op == "constant" else None


def _source(producer: dict, tensor: str) -> str:
    """The tensor over the positions that ``tensor`` selects from (views of it followed back:
    a selection along a leading axis reads it viewed as (1, C, rest), one view per position)."""
    return _unviewed(producer, _selection(producer, tensor).inputs[1])


def _unviewed(producer: dict, tensor: str) -> str:
    n = producer.get(tensor)
    while n is not None and n.op in _VIEWS:
        tensor = n.inputs[0]
        n = producer.get(tensor)
    return tensor
