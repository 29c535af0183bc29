"""Double-buffered steps and the dependency-token protocol that orders the three queues.

A kernel is a list of steps. Step s uses half s % 2 of the input/output scratchpads, so the loads
of step s+1 overlap the compute of step s and the stores of step s-1. Tokens (FIFOs between the
queues) enforce exactly the hazards of that reuse:

  load(s)    pops compute->load  pushed by compute(s-2)   (input half free again)
  compute(s) pops load->compute  pushed by load(s)        (operands present)
             pops store->compute pushed by store(s-2)     (output half free again), at its first
                                                          instruction that writes the output half
  store(s)   pops compute->store pushed by compute(s)     (results present)

Between kernels a SYNC on the compute queue waits for the previous kernel's last store and
releases the next kernel's first load (its inputs were stored by the previous kernels). The final
END waits for the last store. Every push has exactly one pop, in the same program order.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from qasic.isa.encoding import Instr


@dataclass
class Step:
    loads: list[Instr] = field(default_factory=list)
    computes: list[Instr] = field(default_factory=list)
    stores: list[Instr] = field(default_factory=list)
    # index in ``computes`` of the last instruction reading the input half (gets push_prev) and
    # of the first instruction writing the output half (gets pop_next)
    last_input_reader: int = -1
    first_output_writer: int = 0


def sequence(steps: list[Step], first_kernel: bool, last_kernel: bool) -> list[Instr]:
    """Flatten one kernel's steps into program order with token flags set."""
    out: list[Instr] = []
    n = len(steps)
    for s, step in enumerate(steps):
        if not (step.loads and step.computes and step.stores):
            raise ValueError("every step needs a load, a compute and a store")
        loads = _flag(step.loads, 0, pop_next=s >= 2 or (s == 0 and not first_kernel))
        loads = _flag(loads, -1, push_next=True)
        comp = _flag(step.computes, 0, pop_prev=True)
        comp = _flag(comp, step.first_output_writer, pop_next=s >= 2)
        comp = _flag(comp, step.last_input_reader, push_prev=s + 2 < n)
        comp = _flag(comp, -1, push_next=True)
        stores = _flag(step.stores, 0, pop_prev=True)
        stores = _flag(stores, -1, push_prev=s + 2 < n or s == n - 1)
        out += loads + comp + stores
    closing = Instr("END", pop_next=True) if last_kernel else \
        Instr("SYNC", pop_next=True, push_prev=True)
    return out + [closing]


def _flag(instrs: list[Instr], index: int, **flags: bool) -> list[Instr]:
    if not any(flags.values()):
        return instrs
    out = list(instrs)
    out[index] = replace(out[index], **{k: v for k, v in flags.items() if v})
    return out
