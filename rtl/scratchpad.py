"""A banked scratchpad: element-addressed ports of any alignment, one access per port per cycle.

Element ``a`` lives in bank ``a mod NB`` at row ``a // NB``, NB = the widest port's lanes rounded
up to a power of two, each bank one ``amaranth.lib.memory.Memory`` of one element per row. An
access of ``lanes`` consecutive elements at any address touches each bank at most once, so it is
one cycle: the port's lanes are rotated onto the banks (lane i -> bank (addr + i) mod NB, row
(addr + i) // NB) and the banks' outputs rotated back.

Ports are the flipped signatures of ``rtl.ports.read_port`` / ``write_port`` (connect a
requester with ``wiring.connect``):

* ``read<j>`` (``read_lanes[j]`` lanes): ``en`` and ``addr`` in cycle k, ``data`` valid in cycle
  k + 1 and held until the port's next ``en``. A read in the cycle of a write to the same element
  returns the old element (read-during-write: old data); a read in the next cycle returns the new.
* ``write<j>`` (``write_lanes[j]`` lanes): with ``en``, lane i with mask bit i set writes element
  ``addr + i``. Two write ports writing one element in one cycle: the higher port index wins
  (the lower port's write of that element is dropped; its other lanes are written).

Element addresses wrap modulo 2^addr_bits (addr_bits = ceil_log2(elements)); an element at or
beyond ``elements`` is not stored (a masked-off lane may point there: DMA units write a beat's
first lane below the row's start and mask it).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In
from amaranth.utils import ceil_log2

from qasic.rtl.ports import read_port, write_port


def bank_count(read_lanes: list[int], write_lanes: list[int]) -> int:
    """Banks of a scratchpad: its widest port's lanes, rounded up to a power of two."""
    return 1 << ceil_log2(max([1, *read_lanes, *write_lanes]))


class Scratchpad(wiring.Component):
    """``elements`` elements of ``lane_bits`` bits; members ``read0..``, ``write0..`` as above."""

    def __init__(self, elements: int, lane_bits: int, read_lanes: list[int],
                 write_lanes: list[int]) -> None:
        self._MustUse__silence = True  # a refused scratchpad is no unused elaboratable
        if elements < 1 or any(n < 1 for n in [*read_lanes, *write_lanes]):
            raise ValueError(f"scratchpad: elements = {elements} and every port's lanes "
                             f"(read {read_lanes}, write {write_lanes}) must be >= 1")
        self.elements, self.lane_bits = elements, lane_bits
        self.read_lanes, self.write_lanes = list(read_lanes), list(write_lanes)
        self.banks = bank_count(read_lanes, write_lanes)
        self.addr_bits = max(1, ceil_log2(elements))
        if self.banks > 1 << self.addr_bits:
            raise ValueError(f"scratchpad: {elements} elements are fewer than the widest port's "
                             f"{self.banks} banks; make the scratchpad larger or the port "
                             f"narrower")
        self.depth = -(-elements // self.banks)
        self._MustUse__silence = False
        members = {f"read{j}": In(read_port(self.addr_bits, n, lane_bits))
                   for j, n in enumerate(read_lanes)}
        members.update({f"write{j}": In(write_port(self.addr_bits, n, lane_bits))
                        for j, n in enumerate(write_lanes)})
        super().__init__(members)

    def port(self, kind: str, j: int):
        return getattr(self, f"{kind}{j}")

    def elaborate(self, platform) -> Module:
        m = Module()
        nb, sh = self.banks, ceil_log2(self.banks)
        row_bits = max(1, self.addr_bits - sh)
        mems = []
        for k in range(nb):
            mem = Memory(shape=unsigned(self.lane_bits), depth=self.depth, init=[])
            m.submodules[f"bank{k}"] = mem
            mems.append(mem)

        def rows_of(addr) -> list:
            """Per bank, the row the access at ``addr`` touches there (mod 2^addr_bits)."""
            if sh == 0:
                return [addr[:row_bits]] * nb
            if sh >= self.addr_bits:  # one row: every element wraps into it
                return [0] * nb
            q, r = addr[sh:], addr[:sh]
            return [(q + (k < r)).as_unsigned()[:row_bits] for k in range(nb)]

        # Writes: per port and bank, (enable, row, data); a higher port wins a same-element tie.
        writes = []
        for j, lanes in enumerate(self.write_lanes):
            p = self.port("write", j)
            rows = rows_of(p.addr)
            r = p.addr[:sh] if sh else 0
            per_bank = []
            for k in range(nb):
                lane = Signal(range(nb), name=f"w{j}_lane{k}")
                m.d.comb += lane.eq((k - r) % nb if not sh else (k - r)[:sh])
                en = Signal(name=f"w{j}_en{k}")
                dat = Signal(self.lane_bits, name=f"w{j}_data{k}")
                cases_en = [p.mask[i] for i in range(lanes)] + [0] * (nb - lanes)
                cases_dat = [p.data[i] for i in range(lanes)] + [0] * (nb - lanes)
                with m.Switch(lane):
                    for i in range(nb):
                        with m.Case(i):
                            m.d.comb += [en.eq(p.en & cases_en[i]), dat.eq(cases_dat[i])]
                per_bank.append((en, rows[k], dat))
            writes.append(per_bank)
        for k, mem in enumerate(mems):
            for j in range(len(writes)):
                en, row, dat = writes[j][k]
                beaten = 0
                for hi in range(j + 1, len(writes)):
                    h_en, h_row, _ = writes[hi][k]
                    beaten = beaten | (h_en & (h_row == row))
                wp = mem.write_port()
                m.d.comb += [wp.en.eq(en & ~beaten), wp.addr.eq(row), wp.data.eq(dat)]

        # Reads: every bank read at its row; lane i takes bank (r + i) mod NB, r registered.
        for j, lanes in enumerate(self.read_lanes):
            p = self.port("read", j)
            rows = rows_of(p.addr)
            r_q = Signal(max(1, sh), name=f"r{j}_rot")
            if sh:
                with m.If(p.en):
                    m.d.sync += r_q.eq(p.addr[:sh])
            outs = []
            for k, mem in enumerate(mems):
                rp = mem.read_port(transparent_for=())
                m.d.comb += [rp.en.eq(p.en), rp.addr.eq(rows[k])]
                outs.append(rp.data)
            both = Cat(*outs, *outs)  # rotate right by r elements: lane i = bank (r + i) mod NB
            rot = Signal(2 * nb * self.lane_bits, name=f"r{j}_both")
            m.d.comb += rot.eq(both >> (r_q * self.lane_bits) if sh else both)
            m.d.comb += p.data.as_value().eq(rot[:lanes * self.lane_bits])
        return m
