"""A recurrence unrolled over the token positions, of any body and any number of states, found
by its selections, so that generation carries its states in DRAM. The ones captured so:

    Mamba's selective scan     h_i = dA_i * h_(i-1) + dBx_i, y_i = h_i @ C_i (HF's slow path)
    Mamba2's (quant.recurrent_scan)  y_i = (dA_i * h_(i-1)) @ C_i: nothing reads h_(C-1)
    RecurrentGemma's RG-LRU    h_i = a_i * h_(i-1) + x_i, y_i = h_i (quant.rglru)
    the gated delta rule       S_t = g_t S_(t-1) + beta_t k_t (v_t - k_t^T g_t S_(t-1))^T,
                               o_t = q_t^T S_t (Qwen3-Next, Qwen3.5, OLMo-Hybrid, Kimi: one
                               state, quant.recurrent_scan)
    RWKV's WKV                 three states num, den, m (quant.wkv)
    xLSTM's mLSTM              two states m and S = [C | n] (quant.mlstm)

Position t of the recurrence reads its per-position inputs through selections (a matmul of a
constant (1, C) selector whose only nonzero column is t by a tensor over the C positions, as
torch.export captures ``x[:, t]``) and the previous position's tensors; its output (one per
position) is stacked with the others by one concat. So every node that reads a selection of
position t, or a node of position t, is of position t (the latest position it reads), and the
recurrence is the connected set of those nodes ending at the concat:

    states   the tensors of position t - 1 that position t reads (WKV: num, den, m); position
             0 reads constants instead (its own nodes: the scalars of the start fold into
             tables), nothing before t - 1
    late     a node of position t - 1 that only position t reads is placed at t when that
             makes the states smaller (an LSTM's recurrent parts h_(t-1) W_h?^T, 4 H values:
             the state is h_(t-1), H values, and a step does the matmuls)
    roles    positions 1..C-2 are the same nodes in the same order (role i: the i-th node of
             its position), each reading the same roles; the last position may lack the nodes
             only a next position would read (the last state update: dead)

Two nodes of no position that are the same view of the same tensor count as one (each selection
of the gated delta rule's reads its tensor through a view (1, C, rest) of its own).

``tied`` gives each requantizing role one encoding over its positions (quant.calibrate), and
position 0's states their roles' (a step reads them from DRAM as it reads later ones); a
recurrence that starts from 0 (position 0 runs position 1's nodes on zero initial states: the
gated delta rule's, Mamba's, the RG-LRU's) ties position 0's nodes too (Mamba's decay of
h_(-1) = 0 then takes its role's encoding: its zeros are coded exactly either way);
``widened`` names its roles that can be int16 codes at every position, not a state's
(QuantConfig.recurrence_bits). Then position t's
nodes are position 1's bit for bit, but for the selectors' column (``plans`` checks it on the
quantized graph). A decode step runs position TEMPLATE's nodes on the step's
token (selectors' column 1), reading each state from DRAM (``cache_read`` into ``<state>.prev``)
and writing it back after the last of them (``cache_write``); a prefill of P tokens runs
positions 0..P-1 and writes the states of position P-1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from qasic.errors import UnsupportedOpError

TEMPLATE = 1  # the position a decode step runs (the first that reads states)
_VIEWS = ("reshape", "permute", "flatten")
# no encoding of their own (quant.calibrate.SHARES_INPUT); a concat has its own (the one its
# inputs are requantized to: quant.calibrate.concat_pins), tied as any other role's
_SHARES = ("relu", "clamp", "maxpool2d", "flatten", "reshape", "upsample_nearest", "permute",
           "constant", "channels")


@dataclass(frozen=True)
class Recurrence:
    position: dict[str, int]                # node name -> its position
    selectors: frozenset[str]               # the selector constants' node names
    concat: str                             # the node stacking the outputs
    tails: tuple[str, ...]                  # per position, the tensor the concat reads
    states: tuple[tuple[str, ...], ...]     # per state, its tensor at positions 0, 1, ...
    roles: dict[str, int]                   # tensor -> role, positions >= 1 (and 0's states)
    last: str                               # the last node of position TEMPLATE
    selections: frozenset[str]              # the selections' node names
    from_zero: bool                         # position 0 runs TEMPLATE's nodes on zero states

    def state(self, k: int) -> str:
        """The DRAM state of state ``k`` (named by its tensor at position 0)."""
        return f"cache.{self.states[k][0]}"

    def prefill(self, n: Any, prompt: int) -> Any:
        """``n`` in a prefill of ``prompt`` positions (None: a later position's, dropped)."""
        if n.name == self.concat:
            return replace(n, inputs=self.tails[:prompt])
        if self.position.get(n.name, 0) >= prompt:
            return None
        return _columns(n, slice(0, prompt)) if n.name in self.selectors else n

    def decode(self, n: Any, reads: dict[str, str]) -> Any:
        """``n`` in a decode step: position TEMPLATE's nodes, each state's tensor of position
        TEMPLATE - 1 read as ``reads[k]`` (state k from DRAM); other positions' nodes and the
        concat: None."""
        if n.name == self.concat or self.position.get(n.name) != TEMPLATE:
            return None
        if n.name in self.selectors:
            return _columns(n, slice(TEMPLATE, TEMPLATE + 1))
        prev = {s[TEMPLATE - 1]: reads[k] for k, s in enumerate(self.states)}
        return replace(n, inputs=tuple(prev.get(t, t) for t in n.inputs))


def plans(graph: Any, c: int) -> list[Recurrence]:
    """Every recurrence of ``graph`` (a QGraph or an FGraph) over its ``c`` positions (module
    doc); a QGraph's are checked to run the same integer ops at every position."""
    if c < 3:
        return []
    producer = {n.output: n for n in graph.nodes}
    selected = {n.name: t for n in graph.nodes
                if (t := _selected(n, producer, graph.shapes, c)) is not None}
    if not selected:
        return []
    position: dict[str, int] = {}
    selectors: dict[str, str] = {}  # selection node -> its selector constant
    stacks: list[Any] = []
    for n in graph.nodes:
        t = selected.get(n.name)
        if t is not None:
            position[n.name], selectors[n.name] = t, producer[n.inputs[0]].name
            position[selectors[n.name]] = t
            continue
        mine = [position[producer[x].name] for x in n.inputs
                if x in producer and producer[x].name in position]
        if not mine:
            continue
        if n.op == "concat" and sorted(mine) == list(range(c)):
            stacks.append(n)
        elif n.op != "concat" or len(set(mine)) == 1:
            position[n.name] = max(mine)
    late = dict(position)
    _late(graph, producer, late, set(selectors) | set(selectors.values()))
    found = []
    for cat in stacks:
        plan = None
        if late != position:  # the smaller states, where the recurrence still has its roles
            try:
                plan = _plan(graph, producer, late, selectors, cat, c)
            except UnsupportedOpError:
                plan = None
        if plan is None:  # as written (a hand-written RWKV loop's w * num stays at t - 1)
            plan = _plan(graph, producer, position, selectors, cat, c)
        if plan is not None:
            found.append(plan)
    return found


def _late(graph: Any, producer: dict, position: dict, fixed: set[str]) -> None:
    """Place at position p + 1 the nodes of position p that only position p + 1 reads, when
    that shrinks the states (module doc: a step computes them from the smaller tensors they
    read; an LSTM's recurrent parts h_(t-1) W_h?^T, 4 H values, from h_(t-1), H values).
    Greedily (each move that does not grow the states: the first of an LSTM's four linears of
    h_(t-1) makes h_(t-1) a state, the other three then shrink them), kept only if the
    states shrink in all; ``position`` is updated in place."""
    readers: dict[str, list[str]] = {}
    for n in graph.nodes:
        for x in n.inputs:
            readers.setdefault(x, []).append(n.name)
    by_name = {n.name: n for n in graph.nodes}
    size = {n.name: int(np.prod(graph.shapes[n.output])) for n in graph.nodes}

    def positioned(n: Any) -> list[str]:
        return [producer[x].name for x in n.inputs if x in producer
                and producer[x].name in position]

    def cut(pos: dict) -> int:  # the values a position reads of an earlier one
        return sum(size[m] for m in pos if m not in fixed and any(
            pos.get(r, -1) > pos[m] for r in readers.get(by_name[m].output, ())))

    moved = dict(position)
    changed = True
    while changed:
        changed = False
        for n in reversed(graph.nodes):
            p = moved.get(n.name)
            if p is None or n.name in fixed or n.output == graph.output:
                continue
            after = readers.get(n.output, [])
            ins = positioned(n)
            if not after or any(moved.get(r) != p + 1 for r in after) \
                    or any(moved[m] != p for m in ins):
                continue
            new = sum(size[m] for m in set(ins) if not any(
                moved.get(r) == p + 1 for r in readers[by_name[m].output] if r != n.name))
            if new <= size[n.name]:
                moved[n.name] = p + 1
                changed = True
    if cut(moved) < cut(position):
        position.update(moved)


def tied(graph: Any) -> dict[str, tuple[str, int, int]]:
    """tensor -> (``"recurrence"``, which, role) for each requantizing node's output of a
    recurrence at positions >= 1 and each state at position 0: one encoding per role. A graph
    whose input is not token ids (C,) has none."""
    shape = tuple(graph.shapes[graph.input])
    if len(shape) != 1:
        return {}
    producer = {n.output: n for n in graph.nodes}
    out: dict[str, tuple[str, int, int]] = {}
    for k, p in enumerate(plans(graph, shape[0])):
        for t, role in p.roles.items():
            if producer[t].op not in _SHARES:
                out[t] = ("recurrence", k, role)
        for s in p.states:  # position 0's state a view (sLSTM's m = i_0 by unbind)
            src = _viewed(s[0], producer)
            if src != s[0] and src not in p.roles and p.position.get(producer[src].name) == 0:
                out.setdefault(src, ("recurrence", k, p.roles[s[0]]))
        stack = _pinned_role(graph, p)
        if stack is not None:
            out[stack[0]] = ("recurrence", k, stack[1])
    return out


def _pinned_role(graph: Any, p: Recurrence) -> tuple[str, int] | None:
    """(the stacking concat's output, a role) when a role's tensor takes the concat's
    TensorQ (quant.calibrate.concat_pins): the last position's output, read by the concat
    alone, where earlier ones, states too, reach it through requant luts (sLSTM's y_t). The
    concat then takes that role's encoding, so the last position's tensor keeps it (before:
    the concat's, a multiplier of its own, and generation refused)."""
    from qasic.quant.calibrate import concat_pins

    cat = next(n for n in graph.nodes if n.name == p.concat)
    out = cat.output
    producer = {n.output: n for n in graph.nodes}
    if not any(t in producer and producer[t].attrs.get("fn") == "requant" for t in cat.inputs):
        return None  # every position's output takes the concat's TensorQ (alike already)
    pins = concat_pins(graph)
    return next(((out, role) for t, role in p.roles.items()
                 if pins.get(t) == out and t != out and producer[t].op not in _SHARES
                 and producer[t].attrs.get("fn") != "requant"), None)


def _viewed(tensor: str, producer: dict) -> str:
    """The tensor that ``tensor`` is a view of (through ops with no encoding of their own:
    ``_SHARES``), ``tensor`` itself if it has its own. Position 0's state may be a view of a
    node of no role (xLSTM's sLSTM starts m = iraw, a row of the unbound gates): tying the
    view's source to the state's role codes position 0's state as later ones, so a step reads
    every state in one encoding (before: position 1's requantizations of m differed from 2's,
    and generation refused)."""
    while producer[tensor].op in _SHARES and producer[tensor].op != "constant" \
            and producer[tensor].inputs and producer[tensor].inputs[0] in producer:
        tensor = producer[tensor].inputs[0]
    return tensor


def widened(graph: Any, storable: Callable[[str], bool]) -> set[str]:
    """The tensors of ``tied``'s roles, in a recurrence that starts from 0 (``from_zero``: the
    gated delta rule's; Mamba's have none), that ``storable`` (encodings.int16_storable: an
    add's or a matmul's output read by adds and norms alone) holds for at every position, but
    the states' (a decode step reads them from DRAM at the activation width) and the
    selections' (their codes are their source's): QuantConfig.recurrence_bits wide. Other
    recurrences keep activation_bits: xLSTM's mLSTM terms measured no better at 16 bits (the
    survey row's cosine 0.9880 -> 0.9872), RWKV's have none."""
    shape = tuple(graph.shapes[graph.input])
    if len(shape) != 1:
        return set()
    producer = {n.output: n for n in graph.nodes}
    out: set[str] = set()
    for p in (p for p in plans(graph, shape[0]) if p.from_zero):
        states = {t for s in p.states for t in s}
        by_role: dict[int, list[str]] = {}
        for t, role in p.roles.items():
            n = producer[t]
            if n.op not in _SHARES and n.name not in p.selections:
                by_role.setdefault(role, []).append(t)
        for tensors in by_role.values():
            if not states & set(tensors) and all(storable(t) for t in tensors):
                out.update(tensors)
    return out


def _plan(graph: Any, producer: dict, position: dict, selectors: dict, cat: Any,
          c: int) -> Recurrence | None:
    """The recurrence that the concat ``cat`` stacks, or None if it is not one (module doc)."""
    body = _connected(graph, producer, position, [producer[t].name for t in cat.inputs])
    by_pos: list[list[Any]] = [[] for _ in range(c)]
    for n in graph.nodes:
        if n.name in body and n.op != "constant":
            by_pos[position[n.name]].append(n)
    if [position[producer[t].name] for t in cat.inputs] != list(range(c)):
        return None
    roles: dict[str, int] = {}
    firsts: dict[int, str] = {}  # a state's role -> its tensor at position 0
    template = by_pos[TEMPLATE]
    for t in range(TEMPLATE, c):
        if not _match(by_pos[t], template, t, producer, position, roles, firsts,
                      partial=t >= c - 2):
            return None
    states = []
    for role, first in sorted(firsts.items()):
        at = {position[producer[x].name]: x for x, r in roles.items() if r == role}
        states.append((first, *(at[t] for t in range(TEMPLATE, c) if t in at)))
        roles[first] = role
    if not states:
        return None
    first = _first_roles(by_pos[0], template, producer, position, roles)
    for x, role in first.items():
        roles.setdefault(x, role)
    plan = Recurrence({name: position[name] for name in body}, frozenset(
        selectors[n] for n in body if n in selectors), cat.name, tuple(cat.inputs),
        tuple(states), roles, template[-1].name, frozenset(n for n in body if n in selectors),
        bool(first))
    if hasattr(graph, "tensors"):  # a QGraph: every position runs position 1's integer ops
        _check_same(graph, plan, by_pos, c)
    return plan


def _first_roles(nodes: list, template: list, producer: dict, position: dict, roles: dict
                 ) -> dict[str, int]:
    """tensor -> role for position 0's nodes when each runs as a node of position TEMPLATE
    does, on the zero initial states where TEMPLATE reads the states of position 0 (a
    recurrence that starts from 0, as the gated delta rule's): they share their role's
    encoding. None when position 0 runs other nodes (RWKV's: its start folds into tables)."""
    known, out = dict(roles), {}
    free = dict(enumerate(template))
    for n in nodes:
        role = next((r for r, want in free.items()
                     if _same(n, want, 0, producer, position, known, {})), None)
        if role is not None:
            known[n.output] = out[n.output] = role
            del free[role]
    return out if len(out) == len(nodes) else {}


def _connected(graph: Any, producer: dict, position: dict, tails: list[str]) -> set[str]:
    """The positioned nodes the tails are computed from, through positioned nodes only."""
    out: set[str] = set()
    todo = list(tails)
    by_name = {n.name: n for n in graph.nodes}
    while todo:
        name = todo.pop()
        if name in out or name not in position:
            continue
        out.add(name)
        todo.extend(producer[t].name for t in by_name[name].inputs if t in producer)
    return out


def _match(nodes: list, template: list, t: int, producer: dict, position: dict, roles: dict,
           firsts: dict, partial: bool) -> bool:
    """Give position ``t``'s nodes the roles of position TEMPLATE's (module doc); the last
    position (``partial``) may lack some."""
    i = 0
    for role, want in enumerate(template):
        if i == len(nodes):
            return partial
        if not _same(nodes[i], want, t, producer, position, roles, firsts):
            if partial:
                continue
            return False
        roles[nodes[i].output] = role
        i += 1
    return i == len(nodes)


def _same(n: Any, want: Any, t: int, producer: dict, position: dict, roles: dict,
          firsts: dict) -> bool:
    """Whether ``n`` (of position t) is ``want`` (of position TEMPLATE) moved by t - TEMPLATE:
    the same op and attrs; inputs of the same roles at the same relative position (a state
    read from t - 1 where ``want`` reads position 0's tensor: ``firsts``), a selector's one
    column moved, the same other tensors."""
    if n.op != want.op or len(n.inputs) != len(want.inputs) or set(n.attrs) != set(want.attrs) \
            or not all(_same_array(v, want.attrs[k]) for k, v in n.attrs.items()):
        return False
    for a, b in zip(n.inputs, want.inputs, strict=True):
        na, nb = producer.get(a), producer.get(b)
        pa = position.get(na.name) if na is not None else None
        pb = position.get(nb.name) if nb is not None else None
        if t == 0 and pa is None and pb == TEMPLATE - 1 and _zero(na):
            continue  # position 0 reads the zero initial state where ``want`` reads S_0
        if pa is None or pb is None:
            if not (pa is None and pb is None and _alike(a, b, producer)):
                return False
        elif na.op == "constant":  # a selector: its one column moved
            if nb.op != "constant" or not np.array_equal(
                    np.asarray(na.params["value"])[..., t],
                    np.asarray(nb.params["value"])[..., TEMPLATE]):
                return False
        elif (pa - t, pb - TEMPLATE) == (0, 0):
            if roles.get(a) != roles.get(b):
                return False
        elif (pa - t, pb - TEMPLATE) == (-1, -1):
            if t > TEMPLATE and (a not in roles or firsts.setdefault(roles[a], b) != b):
                return False
        else:
            return False
    return True


def _alike(a: str, b: str, producer: dict) -> bool:
    """Tensors of no position that hold the same values: the same tensor, equal constants, or
    the same view of alike tensors (each selection of the gated delta rule's or Mamba2's reads
    its tensor through a view (1, C, rest) of its own)."""
    if a == b:
        return True
    na, nb = producer.get(a), producer.get(b)
    if na is None or nb is None or na.op != nb.op:
        return False
    if na.op == "constant":
        return _equal(na, nb)
    return na.op in _VIEWS and len(na.inputs) == len(nb.inputs) == 1 \
        and set(na.attrs) == set(nb.attrs) \
        and all(_same_array(v, nb.attrs[k]) for k, v in na.attrs.items()) \
        and _alike(na.inputs[0], nb.inputs[0], producer)


def _zero(n: Any) -> bool:
    """Whether ``n`` is a constant 0 (the initial state of a recurrence that starts from 0)."""
    return n is not None and n.op == "constant" and "value" in n.params \
        and not np.asarray(n.params["value"]).any()


def _equal(a: Any, b: Any) -> bool:
    return a.name == b.name or np.array_equal(np.asarray(a.params.get("value")),
                                              np.asarray(b.params.get("value")))


def _selected(n: Any, producer: dict, shapes: Any, c: int) -> int | None:
    """t if ``n`` is a selection of position t: matmul(constant (1, C) one-hot at t, X)."""
    if n.op != "matmul" or n.attrs.get("transpose_b") or n.inputs[0] not in producer:
        return None
    sel = producer[n.inputs[0]]
    if sel.op != "constant" or tuple(shapes[n.inputs[1]])[-2:-1] != (c,):
        return None
    value = np.asarray(sel.params["value"])
    if value.shape[-2:] != (1, c) or np.count_nonzero(value) != value.size // c:
        return None
    cols = np.flatnonzero(value.reshape(-1, c).any(axis=0))
    return int(cols[0]) if cols.size == 1 else None


def _columns(n: Any, cols: slice) -> Any:
    value = np.asarray(n.params["value"])[..., cols]
    return replace(n, params={**n.params, "value": value})


def _check_same(graph: Any, plan: Recurrence, by_pos: list, c: int) -> None:
    """Every position's node of a role has position TEMPLATE's params and output encoding (the
    selectors, constants, are compared by ``_same``), so a step runs one program whatever p."""
    template = {plan.roles[n.output]: n for n in by_pos[TEMPLATE]}
    for t in range(TEMPLATE + 1, c):
        for n in by_pos[t]:
            want = template[plan.roles[n.output]]
            differs = next((k for k, v in n.params.items() if not _same_array(
                v, want.params.get(k))), None)
            if differs is None and graph.tensors[n.output] != graph.tensors[want.output]:
                differs = "output encoding"
            if differs is not None:
                raise UnsupportedOpError(
                    f"{n.name}: position {t} of a recurrence over the tokens differs from "
                    f"position {TEMPLATE}'s {want.name} ({differs}); generation runs one "
                    "position's program at every step")


def _same_array(a: Any, b: Any) -> bool:
    """Equal values (arrays, tuples or scalars; of another kind: by ``==``)."""
    try:
        a, b = np.asarray(a), np.asarray(b)
    except ValueError:  # ragged
        return bool(a == b)
    if a.dtype == object or b.dtype == object:
        return bool(a.tolist() == b.tolist())
    return a.shape == b.shape and bool(np.array_equal(a, b))
