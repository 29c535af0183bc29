"""The three in-order instruction queues and the four dependency-token FIFOs.

``InstrQueue`` holds one queue's instructions in its program memory (written by the loader, one
word per cycle, in program order) and issues them in order to its execution units, the way
``qasic.sim.timing.schedule`` replays them:

* The head instruction issues (``start`` of its unit, for one cycle) in the first cycle in which
  the queue is free (no unit of the queue has ``busy`` high) and every token it pops is
  available. Popping consumes the token in the issue cycle.
* When the unit reports ``done`` for it, the queue pushes the instruction's tokens. A DMA unit
  may have several instructions in flight; their ``done`` pulses come in issue order, so the
  push flags wait in a small FIFO (``inflight`` entries) between issue and completion.
* SYNC and END run in the queue itself: issued, done and their tokens pushed in the same cycle
  (busy 1, done 1: the tokens are visible in the next cycle, as the timing model says).

The head is read one cycle ahead (the program memory has one cycle of read latency and the read
address is ``pc + 1`` in an issue cycle), so back-to-back instructions issue in consecutive
cycles.

``TokenFifos``: a dependency token carries no data, so each FIFO is a counter: a push in cycle c
is visible to a pop from cycle c + 1 on (``avail``); a push and a pop may happen in one cycle.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from qasic.isa.table import BY_NAME, HEADER, WORD_BITS
from qasic.isa.tokens import FIFOS, POPS, PUSHES
from qasic.rtl.ports import ERROR_CODE_BITS, unit_control

# Opcodes a queue executes itself, without a unit.
QUEUE_OPS = ("SYNC", "END")
TOKEN_BITS = 16  # tokens outstanding per FIFO
# error codes of the queues themselves (units report their own codes)
ERR_NO_UNIT = 0x01  # an opcode this queue has no unit for (the loader's routing prevents it)


def _opcode(word):
    return word[HEADER[0].lo:HEADER[0].lo + HEADER[0].width]


def _flag(word, name: str):
    f = next(f for f in HEADER if f.name == name)
    return word[f.lo]


class InstrQueue(wiring.Component):
    """One in-order queue: program memory, head register, issue logic, in-flight push flags.

    ``units`` maps a unit name to the opcodes it executes; each becomes a member of that name
    with the flipped ``unit_control()`` signature (the queue drives ``start`` and ``instr``).

    Ports: ``load_en``/``load_data`` append a word (loader), ``clear`` empties the queue,
    ``run`` (level) lets it issue; ``count`` words loaded; ``issue`` high in each issue cycle;
    ``avail_prev``/``avail_next`` tokens in the FIFOs it pops; ``pop_prev``/``pop_next``
    consume one (issue cycle); ``push_prev``/``push_next`` send one (completion cycle);
    ``occupied`` high in every cycle that counts as the queue being busy (an issue cycle or a
    unit's busy cycle: the sum over a program is the simulator's per-queue busy total);
    ``idle`` every instruction issued and none in flight; ``error``/``error_code`` the first
    fault of a unit (sticky; the queue stops issuing).
    """

    def __init__(self, queue: str, depth: int, units: dict[str, tuple[str, ...]],
                 inflight: int = 128) -> None:
        for ops in units.values():
            for op in ops:
                if BY_NAME[op].queue != queue:
                    raise ValueError(f"{op} runs on the {BY_NAME[op].queue} queue, not {queue}")
        self.queue, self.depth, self.units = queue, depth, dict(units)
        self.inflight = 1 << max(1, ceil_log2(inflight))
        members = {
            "load_en": In(1), "load_data": In(WORD_BITS), "clear": In(1), "run": In(1),
            "count": Out(range(depth + 1)),
            "avail_prev": In(1), "avail_next": In(1),
            "pop_prev": Out(1), "pop_next": Out(1), "push_prev": Out(1), "push_next": Out(1),
            "issue": Out(1), "occupied": Out(1), "idle": Out(1),
            "error": Out(1), "error_code": Out(ERROR_CODE_BITS),
        }
        for name in units:
            members[name] = In(unit_control())
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.prog = prog = Memory(shape=WORD_BITS, depth=max(2, self.depth), init=[])
        wr, rd = prog.write_port(), prog.read_port()
        pc, count = Signal(range(self.depth + 1)), self.count
        with m.If(self.clear):
            m.d.sync += [count.eq(0), pc.eq(0)]
        with m.Elif(self.load_en & (count < self.depth)):
            m.d.sync += count.eq(count + 1)
        m.d.comb += [wr.en.eq(self.load_en & ~self.clear & (count < self.depth)),
                     wr.addr.eq(count), wr.data.eq(self.load_data)]

        head = rd.data
        primed = Signal()  # rd.data holds instruction pc (one cycle after run rose)
        m.d.sync += primed.eq(self.run & ~self.clear)
        valid = Signal()
        m.d.comb += valid.eq(self.run & primed & (pc < count) & ~self.error)

        busy = Signal()
        m.d.comb += busy.eq(Const(0, 1) if not self.units else
                            _any(getattr(self, u).busy for u in self.units))
        pops_ok = Signal()
        m.d.comb += pops_ok.eq((~_flag(head, "pop_prev") | self.avail_prev)
                               & (~_flag(head, "pop_next") | self.avail_next))
        flight = _FlightFifo(self.inflight)
        m.submodules.flight = flight
        issue = Signal()
        m.d.comb += issue.eq(valid & ~busy & pops_ok & ~flight.full)
        m.d.comb += [rd.addr.eq(Mux(issue, pc + 1, pc)), rd.en.eq(1)]
        with m.If(issue):
            m.d.sync += pc.eq(pc + 1)
        m.d.comb += [self.pop_prev.eq(issue & _flag(head, "pop_prev")),
                     self.pop_next.eq(issue & _flag(head, "pop_next"))]

        opcode = _opcode(head)
        local = Signal()
        m.d.comb += local.eq(_is_any(opcode, QUEUE_OPS))
        routed = Signal()
        m.d.comb += routed.eq(_is_any(opcode, [op for ops in self.units.values() for op in ops]))
        for name, ops in self.units.items():
            port = getattr(self, name)
            m.d.comb += [port.start.eq(issue & _is_any(opcode, ops)), port.instr.eq(head)]

        # push flags of issued unit instructions, popped at their done
        done = _any(getattr(self, u).done for u in self.units) if self.units else Const(0, 1)
        m.d.comb += [
            flight.w_en.eq(issue & ~local),
            flight.w_data.eq(Cat(_flag(head, "push_prev"), _flag(head, "push_next"))),
            flight.r_en.eq(done),
        ]
        local_issue = issue & local
        m.d.comb += [
            self.push_prev.eq(Mux(local_issue, _flag(head, "push_prev"),
                                  done & flight.r_data[0])),
            self.push_next.eq(Mux(local_issue, _flag(head, "push_next"),
                                  done & flight.r_data[1])),
            self.issue.eq(issue),
            self.occupied.eq(issue | busy),
            self.idle.eq(primed & (pc >= count) & flight.empty & ~busy),
        ]

        # the first error wins and stops the queue
        errors = [(getattr(self, u).error, getattr(self, u).error_code) for u in self.units]
        with m.If(~self.error):
            with m.If(valid & ~routed & ~local):
                m.d.sync += [self.error.eq(1), self.error_code.eq(ERR_NO_UNIT)]
            for err, code in errors:
                with m.Elif(err):
                    m.d.sync += [self.error.eq(1), self.error_code.eq(code)]
        with m.If(self.clear):
            m.d.sync += [self.error.eq(0), self.error_code.eq(0)]
        return m


class _FlightFifo(wiring.Component):
    """A small FIFO of 2-bit push flags (push_prev, push_next) with a combinational read side:
    ``r_data`` is the oldest entry; ``r_en`` drops it. Write and read may share a cycle."""

    def __init__(self, depth: int) -> None:
        self.depth = depth
        super().__init__({
            "w_en": In(1), "w_data": In(2), "r_en": In(1), "r_data": Out(2),
            "full": Out(1), "empty": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        bits = ceil_log2(self.depth)
        store = Signal(2 * self.depth)
        head, tail, level = Signal(bits), Signal(bits), Signal(range(self.depth + 1))
        m.d.comb += [
            self.r_data.eq(store.word_select(head, 2)),
            self.full.eq(level == self.depth),
            self.empty.eq(level == 0),
        ]
        with m.If(self.w_en):
            m.d.sync += [store.word_select(tail, 2).eq(self.w_data), tail.eq(tail + 1)]
        with m.If(self.r_en):
            m.d.sync += head.eq(head + 1)
        m.d.sync += level.eq(level + self.w_en - self.r_en)
        return m


class TokenFifos(wiring.Component):
    """The four token FIFOs (``isa.tokens.FIFOS`` order) as counters.

    Per FIFO k: ``push[k]`` and ``pop[k]`` in; ``avail[k]`` out (count > 0, registered: a push
    is visible from the next cycle). ``overflow`` goes high (sticky) if a count would pass
    2^TOKEN_BITS - 1 or a pop finds no token; the queues never pop without ``avail``.
    """

    def __init__(self) -> None:
        n = len(FIFOS)
        super().__init__({"push": In(n), "pop": In(n), "avail": Out(n), "overflow": Out(1),
                          "clear": In(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        for k in range(len(FIFOS)):
            count = Signal(TOKEN_BITS, name=f"tokens_{k}")
            m.d.comb += self.avail[k].eq(count != 0)
            with m.If(self.clear):
                m.d.sync += count.eq(0)
            with m.Else():
                m.d.sync += count.eq(count + self.push[k] - self.pop[k])
                with m.If((self.pop[k] & ~self.push[k] & (count == 0))
                          | (self.push[k] & ~self.pop[k] & (count == (1 << TOKEN_BITS) - 1))):
                    m.d.sync += self.overflow.eq(1)
        return m


def connect_tokens(m: Module, fifos: TokenFifos, queues: dict[str, InstrQueue]) -> None:
    """Wire each queue's pop/push flags to the FIFO ``isa.tokens`` names for it."""
    for (queue, flag), k in POPS.items():
        direction = flag.split("_")[1]
        m.d.comb += [getattr(queues[queue], f"avail_{direction}").eq(fifos.avail[k]),
                     fifos.pop[k].eq(getattr(queues[queue], flag))]
    for (queue, flag), k in PUSHES.items():
        m.d.comb += fifos.push[k].eq(getattr(queues[queue], flag))


def _any(signals):
    out = Const(0, 1)
    for s in signals:
        out = out | s
    return out


def _is_any(opcode, names):
    out = Const(0, 1)
    for name in names:
        out = out | (opcode == BY_NAME[name].code)
    return out
