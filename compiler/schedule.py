"""Double-buffered steps and the dependency-token protocol that orders the three queues.

A kernel is a list of steps; every step loads something and computes something, and a *storing*
step also writes results back. Each scratchpad operand (input band, weights, parameters, the
output half) alternates between its two halves every time it is loaded (or stored), so an
operand kept on chip across steps keeps its half. Tokens (FIFOs between the queues) enforce
exactly the hazards of that reuse:

  load(s)    pops compute->load  pushed by compute(s-2)   (a half is free again: step s's loads
                                                          only overwrite halves last read by
                                                          step s-2 or earlier)
  compute(s) pops load->compute  pushed by load(s)        (operands present)
             pops store->compute pushed by the stores of the storing step two storing steps
                                 back, at the first instruction that writes the output half
  store(s)   pops compute->store pushed by compute(s)     (results present)

A kernel whose *loads* fill the output half (a gather or a strided copy, stored as it came) runs
with ``lag`` 1: compute(s) pops the token of store(s-1) and releases load(s+1), so load(s) waits
for store(s-2) to read the half it overwrites; its compute is a SYNC that only carries tokens.

Between kernels a SYNC on the compute queue waits for the previous kernel's last store and
releases the next kernel's first load (its inputs were stored by the previous kernels). The final
END waits for the last store. Every push has exactly one pop, in the same program order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from qasic.isa.encoding import Instr


@dataclass
class Step:
    loads: list[Instr] = field(default_factory=list)
    computes: list[Instr] = field(default_factory=list)
    stores: list[Instr] = field(default_factory=list)
    # index in ``computes`` of the first instruction writing the output half (storing steps)
    first_output_writer: int = 0


def empty_load() -> Instr:
    """A LOAD of nothing: carries a step's tokens when it has no operand to fetch."""
    return Instr("LOAD", {"mem": "input", "planes": 1})


def sequence(steps: list[Step], first_kernel: bool, last_kernel: bool, lag: int = 2
             ) -> list[Instr]:
    """Flatten one kernel's steps into program order with token flags set. ``lag``: steps
    s and s + lag share a half (2; 1 when the loads write the output half)."""
    out: list[Instr] = []
    n = len(steps)
    storing = [s for s, step in enumerate(steps) if step.stores]
    if not storing or storing[-1] != n - 1:
        raise ValueError("a kernel's last step must store its results")
    rank = {s: i for i, s in enumerate(storing)}
    for s, step in enumerate(steps):
        if not step.computes:
            raise ValueError("every step needs a compute instruction")
        # fills land at once, DRAM reads after the DRAM latency: the last DRAM read carries
        # the step's push, so every operand is present when the compute pops it
        loads = sorted(step.loads, key=lambda i: -i.args.get("fill", 0)) or [empty_load()]
        loads = _flag(loads, 0, pop_next=s >= lag or (s == 0 and not first_kernel))
        loads = _flag(loads, -1, push_next=True)
        comp = _flag(step.computes, 0, pop_prev=True)
        comp = _flag(comp, -1, push_prev=s + lag < n)
        stores = []
        if step.stores:
            i = rank[s]
            comp = _flag(comp, step.first_output_writer, pop_next=i >= lag)
            comp = _flag(comp, -1, push_next=True)
            stores = _flag(step.stores, 0, pop_prev=True)
            stores = _flag(stores, -1,
                           push_prev=i + lag < len(storing) or i == len(storing) - 1)
        out += loads + comp + stores
    closing = Instr("END", pop_next=True) if last_kernel else \
        Instr("SYNC", pop_next=True, push_prev=True)
    return out + [closing]


def _flag(instrs: list[Instr], index: int, **flags: bool) -> list[Instr]:
    if not any(flags.values()):
        return instrs
    out = list(instrs)
    out[index] = out[index].with_tokens(**{k: v for k, v in flags.items() if v})
    return out
