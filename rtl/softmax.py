"""SOFTMAX: the row softmax unit (isa.table SOFTMAX; ``qasic.quant.intops.softmax_rows`` as
``sim.rowops.softmax`` calls it, bit for bit), V = ``arch.lanes`` lanes.

Row r holds ``len`` INT codes at ``src_addr + r*src_stride`` (packed at fmt); key j takes part
unless ``causal`` and j > q_pos + r, or ``masked`` and the byte at ``mask_addr + r*mask_stride
+ j`` is 0 (the mask row steps with the source row, so a per-row mask costs no cycle).
Per row, three passes over the row in groups of V codes (read at any bit offset, 2V-byte
windows, ``rtl.unpack.Unpack``) and one divide:
    max pass    m = max of the valid codes
    exp pass    e[j] = EXP[m - x[j]] (valid keys; else 0), S = sum of e
    (``sunk``: the sink code joins the max, its EXP[m - sink] starts the sum; no result)
    divide      R = floor(2^32 / S) (0 when S = 0): a restoring divider, one quotient bit per
                cycle, 33 bits (DIVIDE_CYCLES), after SETTLE = 1 cycle for S to settle
    scale pass  y[j] = (e[j] * R * qmax + 2^31) >> 32, qmax = 2^(Bo-1) - 1, packed at ofmt
                (``rtl.pack.RowPacker``; the byte a row ends in keeps its bits beyond it)
The exp pass starts right after the max pass (m is complete when its first group needs it).
The exp table (2^B int32 entries at param table_addr, each in [0, 2^16] as the simulator
checks) is copied into registers (17 bits an entry) first, V entries per cycle.

Ports (``SoftmaxUnit(arch)``, A_x = ``rtl.ports.sram_addr_bits(arch, x)``):
    * ``ctl``: ``rtl.ports.unit_control()``.
    * ``src``: ``read_port(A_output, 2V)``: a group of source codes.
    * ``mask``: ``read_port(A_output, V)``: the group's mask bytes.
    * ``param``: ``read_port(A_param, 4V)``.
    * ``out``: ``write_port(A_output, rtl.pack.port_bytes(V, 8))``.
    * ``tail``: ``read_port(A_output, 1)``: the byte a result row ends in.

Cycles (``softmax_cycles``; busy == done), G = ceil(len / V):
    busy = done = ceil(2^B / V) + rows * (3 G + SETTLE + DIVIDE_CYCLES) + WRITE_DELAY + 1
    (rows = 0 or len = 0: no table, no rows: 1 + WRITE_DELAY + 1)
B the code bits of fmt, WRITE_DELAY = 4 (a scale group's reads in cycle t, its bytes written
in t + 4; ``done`` with the last write).
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from qasic.arch.config import ArchConfig
from qasic.isa.layouts import INSTR
from qasic.isa.table import WORD_BITS
from qasic.rtl.pack import RowPacker, port_bytes
from qasic.rtl.ports import read_port, sram_addr_bits, unit_control, write_port
from qasic.rtl.post import PARAM_PORT_BYTES_PER_LANE
from qasic.rtl.unpack import Unpack, code_bits

DIVIDE_CYCLES = 33     # quotient bits 32..0 of 2^32 / S
SETTLE = 1             # the exp pass's last group reaches S in the second cycle after it
WRITE_DELAY = 4
ENTRY_BITS = 17        # exp-table entries lie in [0, 2^16]
ENTRY_STRIDE = 32
TABLE_ENTRIES = 256


def _ceil(a, b):
    return -(-a // b)


def softmax_cycles(f, arch: ArchConfig):
    """(busy, done) of a SOFTMAX: an ``isa.encoding.Instr`` or ``sim.fastfields`` columns."""
    import numpy as np

    from qasic.rtl.vector import code_bits_of

    v = arch.lanes
    groups = _ceil(f["len"], v)
    work = _ceil(np.left_shift(1, code_bits_of(f, "fmt")), v) \
        + f["rows"] * (3 * groups + SETTLE + DIVIDE_CYCLES)
    work = np.where((f["rows"] == 0) | (f["len"] == 0), 1, work)
    t = work + WRITE_DELAY + 1
    return t, t


class SoftmaxUnit(wiring.Component):
    """The SOFTMAX instruction (module doc)."""

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        self.lanes = v = arch.lanes
        self.param_bytes = PARAM_PORT_BYTES_PER_LANE * v
        self.window = 2 * v
        out_bits = sram_addr_bits(arch, "output")
        super().__init__({
            "ctl": Out(unit_control()),
            "src": Out(read_port(out_bits, self.window)),
            "mask": Out(read_port(out_bits, v)),
            "param": Out(read_port(sram_addr_bits(arch, "param"), self.param_bytes)),
            "out": Out(write_port(out_bits, port_bytes(v, 8))),
            "tail": Out(read_port(out_bits, 1)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes = self.lanes
        word = Signal(WORD_BITS)
        ins = data.View(INSTR, word).SOFTMAX
        new = data.View(INSTR, self.ctl.instr).SOFTMAX
        with m.If(self.ctl.start):
            m.d.sync += word.eq(self.ctl.instr)
        bits, obits = code_bits(ins.fmt.as_value()), code_bits(ins.ofmt.as_value())
        # the result codes' bits: qbits when narrower than ofmt's container, else ofmt's
        qbits = Mux(ins.qbits != 0, ins.qbits, obits)
        qmax = Signal(8)
        m.d.comb += qmax.eq((1 << (qbits - 1).as_unsigned()[:4]) - 1)

        # ---- the exp table in registers ------------------------------------------------------
        entries = [Signal(ENTRY_BITS, name=f"exp{k}") for k in range(TABLE_ENTRIES)]
        # looked up at a power-of-two stride (a plain shift in Verilog; the pad bits are 0)
        table = Cat(*(Cat(e, Const(0, ENTRY_STRIDE - ENTRY_BITS)) for e in entries))
        ld = Signal(range(TABLE_ENTRIES // lanes + 2))
        ld_valid, ld_index = Signal(), Signal.like(ld)
        m.d.sync += ld_valid.eq(0)
        t_total = Signal.like(ld)
        with m.Switch(bits):
            for b in range(2, 9):
                with m.Case(b):
                    m.d.comb += t_total.eq(_ceil(1 << b, lanes))
        for k, entry in enumerate(entries):  # read ld brings entries ld*V .. ld*V + V - 1
            i = k % lanes
            with m.If(ld_valid & (ld_index == k // lanes)):
                m.d.sync += entry.eq(self.param.data.as_value()[32 * i:32 * i + ENTRY_BITS])

        # ---- the walk ----------------------------------------------------------------------
        row = Signal(16)
        left = Signal(17)          # codes of the row not yet issued in this pass
        bit = Signal(20)           # bit position of the group in the row
        key = Signal(16)           # index of the group's first code
        src_row, dst_row, mask_row = Signal(24), Signal(24), Signal(24)
        div_count = Signal(range(DIVIDE_CYCLES + SETTLE + 1))
        issue, fin, last = Signal(), Signal(), Signal()
        passno = Signal(2)         # 0 max, 1 exp, 2 scale
        cnt = Signal(range(lanes + 1))
        m.d.comb += [cnt.eq(Mux(left < lanes, left, lanes)), last.eq(left <= lanes)]

        def next_group():
            m.d.sync += [left.eq(left - cnt), bit.eq(bit + cnt * bits), key.eq(key + cnt)]

        def restart_row():
            m.d.sync += [left.eq(ins.len), bit.eq(0), key.eq(0)]

        total = Signal(33)         # S
        rem, quo = Signal(34), Signal(33)
        recip = Signal(33)         # R
        with m.FSM():
            with m.State("IDLE"), m.If(self.ctl.start):
                m.d.sync += [ld.eq(0), row.eq(0), left.eq(new.len), bit.eq(0), key.eq(0),
                             src_row.eq(new.src_addr), dst_row.eq(new.dst_addr),
                             mask_row.eq(new.mask_addr), passno.eq(0)]
                with m.If((new.rows == 0) | (new.len == 0)):
                    m.next = "EMPTY"
                with m.Else():
                    m.next = "TABLE"
            with m.State("EMPTY"):
                m.d.comb += [self.ctl.busy.eq(1), fin.eq(1)]
                m.next = "DRAIN"
            with m.State("TABLE"):
                m.d.comb += [self.ctl.busy.eq(1), self.param.en.eq(1),
                             self.param.addr.eq(ins.table_addr + ld * self.param_bytes)]
                m.d.sync += [ld.eq(ld + 1), ld_valid.eq(1), ld_index.eq(ld)]
                with m.If(ld + 1 == t_total):
                    m.next = "PASS"
            with m.State("PASS"):
                m.d.comb += [self.ctl.busy.eq(1), issue.eq(1)]
                next_group()
                with m.If(last):
                    restart_row()
                    with m.If(passno == 0):
                        m.d.sync += passno.eq(1)
                    with m.Elif(passno == 1):
                        m.d.sync += [passno.eq(2), div_count.eq(0)]
                        m.next = "DIVIDE"
                    with m.Else():
                        m.d.sync += [passno.eq(0), row.eq(row + 1),
                                     src_row.eq(src_row + ins.src_stride),
                                     dst_row.eq(dst_row + ins.dst_stride),
                                     mask_row.eq(mask_row + ins.mask_stride)]
                        with m.If(row + 1 == ins.rows):
                            m.d.comb += fin.eq(1)
                            m.next = "DRAIN"
            with m.State("DIVIDE"):
                # SETTLE cycles for S, then one quotient bit of 2^32 / S per cycle (restoring)
                m.d.comb += self.ctl.busy.eq(1)
                m.d.sync += div_count.eq(div_count + 1)
                with m.If(div_count == SETTLE - 1):
                    m.d.sync += [rem.eq(0), quo.eq(0)]
                with m.If(div_count >= SETTLE):
                    k = DIVIDE_CYCLES - 1 - (div_count - SETTLE)   # the quotient bit, 32..0
                    shifted = Signal(34)
                    m.d.comb += shifted.eq((rem << 1) | (k == 32))
                    with m.If(shifted >= total):
                        m.d.sync += [rem.eq(shifted - total), quo.eq((quo << 1) | 1)]
                    with m.Else():
                        m.d.sync += [rem.eq(shifted), quo.eq(quo << 1)]
                with m.If(div_count == SETTLE + DIVIDE_CYCLES - 1):
                    m.next = "PASS"
            with m.State("DRAIN"):
                m.d.comb += self.ctl.busy.eq(1)
                with m.If(self.ctl.done):
                    m.next = "IDLE"
        m.d.comb += recip.eq(Mux(total == 0, 0, quo))

        # ---- reads -------------------------------------------------------------------------
        m.d.comb += [
            self.src.en.eq(issue), self.src.addr.eq(src_row + (bit >> 3)),
            self.mask.en.eq(issue & ins.masked), self.mask.addr.eq(mask_row + key),
            self.tail.en.eq(issue & (passno == 2) & last),
            self.tail.addr.eq(dst_row + ((ins.len * obits) >> 3)),
        ]

        # ---- pipeline ----------------------------------------------------------------------
        ctrl = data.StructLayout({"valid": 1, "pass": 2, "first": 1, "last": 1, "fin": 1,
                                  "count": range(lanes + 1), "row": 16, "key": 16,
                                  "row_addr": 24, "off": 3, "tail": 8})
        stages = [Signal(ctrl, name=f"sm{i}") for i in range(WRITE_DELAY + 1)]
        s0 = stages[0]
        m.d.comb += [s0.valid.eq(issue), s0["pass"].eq(passno), s0.first.eq(key == 0),
                     s0.last.eq(last), s0.fin.eq(fin), s0.count.eq(cnt), s0.row.eq(row),
                     s0.key.eq(key), s0.row_addr.eq(dst_row), s0.off.eq(bit[:3])]
        for i, (a, b) in enumerate(itertools.pairwise(stages)):
            m.d.sync += b.eq(a)
            if i == 1:
                m.d.sync += b.tail.eq(self.tail.data[0])
        s1 = stages[1]

        m.submodules.unpack = unpack = Unpack(self.window, lanes)
        m.d.comb += [unpack.window.eq(self.src.data.as_value() >> s1.off),
                     unpack.enc.eq(ins.fmt.as_value())]
        best, any_valid = Signal(signed(9)), Signal()   # m of the row, and whether it exists
        group_best, group_any = Const(0, signed(9)), Const(0, 1)
        lane_e, group_sum = [], 0
        for i in range(lanes):
            x = unpack.code[i][:9].as_signed()
            j = s1.key + i
            ok = Signal(name=f"ok{i}")
            m.d.comb += ok.eq((i < s1.count) & (~ins.causal | (j <= ins.q_pos + s1.row))
                              & (~ins.masked | (self.mask.data[i] != 0)))
            # materialized step by step: an expression reusing the previous one twice per lane
            # would be inlined 2^V times by the Verilog backend
            step_best, step_any = Signal(signed(9), name=f"gb{i}"), Signal(name=f"ga{i}")
            m.d.comb += [step_best.eq(Mux(ok & (~group_any | (x > group_best)), x, group_best)),
                         step_any.eq(group_any | ok)]
            group_best, group_any = step_best, step_any
            d = Signal(8, name=f"d{i}")
            m.d.comb += d.eq((best - x)[:8])
            e = Signal(ENTRY_BITS, name=f"e{i}")
            m.d.comb += e.eq(Mux(ok, table.word_select(d, ENTRY_STRIDE)[:ENTRY_BITS], 0))
            lane_e.append(e)
            group_sum = group_sum + e
        gb, ga = Signal(signed(9)), Signal()
        m.d.comb += [gb.eq(group_best), ga.eq(group_any)]
        # an attention sink (sunk): one more key of code sink in every row, no result
        sink, sink_e = Signal(signed(9)), Signal(ENTRY_BITS)
        m.d.comb += [sink.eq(ins.sink[:9].as_signed()),
                     sink_e.eq(Mux(ins.sunk, table.word_select((best - sink)[:8],
                                                               ENTRY_STRIDE)[:ENTRY_BITS], 0))]
        with m.If(s1.valid & (s1["pass"] == 0)):
            with m.If(s1.first):  # a row's first group starts from nothing (or the sink)
                m.d.sync += [best.eq(Mux(ins.sunk & (~ga | (sink > gb)), sink, gb)),
                             any_valid.eq(ga | ins.sunk)]
            with m.Else():
                with m.If(ga & (~any_valid | (gb > best))):
                    m.d.sync += best.eq(gb)
                m.d.sync += any_valid.eq(any_valid | ga)
        with m.If(s1.valid & (s1["pass"] == 1)):
            m.d.sync += total.eq(Mux(s1.first, sink_e, total) + group_sum)

        # scale: stage 1 e (registered), stage 2 e * R, stage 3 the code
        m.submodules.packer = packer = RowPacker(lanes, len(self.out.addr), widest=8)
        for i in range(lanes):
            e2 = Signal(ENTRY_BITS, name=f"e2_{i}")
            p3 = Signal(unsigned(ENTRY_BITS + 33), name=f"p3_{i}")
            y4 = Signal(8, name=f"y4_{i}")
            m.d.sync += [e2.eq(lane_e[i]), p3.eq(e2 * recip)]
            m.d.sync += y4.eq(((p3 * qmax) + (1 << 31)) >> 32)
            m.d.comb += packer.codes[i].eq(y4)
        w = stages[WRITE_DELAY]
        m.d.comb += [
            packer.valid.eq(w.valid & (w["pass"] == 2)), packer.first.eq(w.first),
            packer.last.eq(w.last), packer.count.eq(w.count), packer.row_addr.eq(w.row_addr),
            packer.enc.eq(ins.ofmt.as_value()), packer.tail.eq(w.tail),
            self.ctl.done.eq(w.fin),
        ]
        wiring.connect(m, packer.port, wiring.flipped(self.out))
        return m
