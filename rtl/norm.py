"""NORM: the row normalization unit (isa.table NORM; ``qasic.quant.intops.norm_rows`` as
``sim.rowops.norm`` applies it, bit for bit), V = ``arch.lanes`` lanes.

Row r holds ``len`` INT codes at input-scratchpad ``src_addr + r*src_stride`` (packed at fmt,
int16 included); v = x - zp. Per row, in groups of V codes (any bit offset, 2V-byte windows):
    sum pass     (center = 1 only) s = sum of v
    square pass  c = D v - s (center) or v; Q = sum of c^2 (c registered, squared a cycle later)
    settle       SETTLE cycles for Q, then Q + eps (eps: the int64 at param eps_addr, read once)
    root         r = max(isqrt(Q + eps), 1): one root bit per cycle, ROOT_CYCLES (32) bits
    divide       inv = floor(2^61 / r): a restoring divider, one quotient bit per cycle,
                 DIVIDE_CYCLES (62) bits
    output pass  t = (c inv + 2^40) >> 41, wrapped to acc_bits (sign-extended to the word), to
                 accumulator word acc_addr + (i // chunk) rows chunk + r chunk + (i mod chunk):
                 groups never cross a chunk, so each is one write of up to V consecutive words
The next row's first pass starts right after a row's output pass.

Ports (``NormUnit(arch)``, A_x = ``rtl.ports.sram_addr_bits(arch, x)``):
    * ``ctl``: ``rtl.ports.unit_control()``.
    * ``src``: ``read_port(A_input, 2V)``: a group of source codes.
    * ``eps``: ``read_port(A_param, 8)``: the epsilon, in the first cycle.
    * ``acc``: ``write_port(A_acc, V, 8 * arch.acc_word_bytes)``.

Cycles (``norm_cycles``; busy == done), G = ceil(len / V),
O = (len // chunk) * ceil(chunk / V) + ceil((len mod chunk) / V) output groups per row:
    busy = done = rows * ((1 + center) G + SETTLE + ROOT_CYCLES + DIVIDE_CYCLES + O)
                  + WRITE_DELAY + 1
    (rows = 0 or len = 0: 1 + WRITE_DELAY + 1), WRITE_DELAY = 3, SETTLE = 2.
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from qasic.arch.config import ArchConfig
from qasic.isa.layouts import INSTR
from qasic.isa.table import WORD_BITS
from qasic.quant.intops import NORM_FRAC_BITS
from qasic.rtl.ports import read_port, sram_addr_bits, unit_control, write_port
from qasic.rtl.unpack import Unpack, code_bits

SETTLE = 2
ROOT_CYCLES = 32       # root bits 31..0 (Q + eps < 2^63)
INV_BITS = 61          # intops._INV_BITS: inv = floor(2^61 / r)
DIVIDE_CYCLES = INV_BITS + 1
WRITE_DELAY = 3
OUT_SHIFT = INV_BITS - NORM_FRAC_BITS


def _ceil(a, b):
    return -(-a // b)


def norm_cycles(f, arch: ArchConfig):
    """(busy, done) of a NORM: an ``isa.encoding.Instr`` or ``sim.fastfields`` columns."""
    import numpy as np

    v, n, chunk = arch.lanes, f["len"], np.maximum(f["chunk"], 1)
    outs = (n // chunk) * _ceil(chunk, v) + _ceil(n % chunk, v)
    per_row = (1 + f["center"]) * _ceil(n, v) + SETTLE + ROOT_CYCLES + DIVIDE_CYCLES + outs
    work = np.where((f["rows"] == 0) | (n == 0), 1, f["rows"] * per_row)
    t = work + WRITE_DELAY + 1
    return t, t


class NormUnit(wiring.Component):
    """The NORM instruction (module doc)."""

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        self.lanes = v = arch.lanes
        self.window = 2 * v
        super().__init__({
            "ctl": Out(unit_control()),
            "src": Out(read_port(sram_addr_bits(arch, "input"), self.window)),
            "eps": Out(read_port(sram_addr_bits(arch, "param"), 8)),
            "acc": Out(write_port(sram_addr_bits(arch, "acc"), v, 8 * arch.acc_word_bytes)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes, arch = self.lanes, self.arch
        word = Signal(WORD_BITS)
        ins = data.View(INSTR, word).NORM
        new = data.View(INSTR, self.ctl.instr).NORM
        with m.If(self.ctl.start):
            m.d.sync += word.eq(self.ctl.instr)
        bits = code_bits(ins.fmt.as_value())
        n, chunk = ins.len, ins.chunk

        # ---- the walk ------------------------------------------------------------------------
        row = Signal(16)
        left = Signal(14)          # codes of the row not yet issued in this pass
        seg_left = Signal(13)      # output pass: codes left in this chunk
        bit = Signal(20)           # bit position of the group in the row
        src_row = Signal(24)
        chunk_base = Signal(20)    # accumulator word of this row's slot in the current chunk
        in_chunk = Signal(12)
        phase = Signal(2)          # 0 sum, 1 square, 2 output
        issue, fin, first_issue = Signal(), Signal(), Signal()
        seg = Mux(phase == 2, seg_left, left)
        cnt = Signal(range(lanes + 1))
        m.d.comb += cnt.eq(Mux(seg < lanes, seg, lanes))
        last = left == cnt          # the row's last group of this pass
        count_ = Signal(20)

        def restart_row():
            m.d.sync += [left.eq(n), bit.eq(0), in_chunk.eq(0),
                         seg_left.eq(Mux(n < chunk, n, chunk))]

        total = Signal(signed(40))     # s
        sumsq = Signal(64)             # Q
        eps = Signal(64)
        radicand = Signal(65)
        root, inv, rem = Signal(33), Signal(63), Signal(34)
        m.d.comb += radicand.eq(sumsq + eps)
        r = Mux(root == 0, 1, root)
        with m.FSM():
            with m.State("IDLE"), m.If(self.ctl.start):
                m.d.sync += [row.eq(0), left.eq(new.len), bit.eq(0), in_chunk.eq(0),
                             seg_left.eq(Mux(new.len < new.chunk, new.len, new.chunk)),
                             src_row.eq(new.src_addr), chunk_base.eq(new.acc_addr),
                             phase.eq(Mux(new.center, 0, 1)), first_issue.eq(1)]
                with m.If((new.rows == 0) | (new.len == 0)):
                    m.next = "EMPTY"
                with m.Else():
                    m.next = "PASS"
            with m.State("EMPTY"):
                m.d.comb += [self.ctl.busy.eq(1), fin.eq(1)]
                m.next = "DRAIN"
            with m.State("PASS"):
                m.d.comb += [self.ctl.busy.eq(1), issue.eq(1)]
                m.d.sync += [left.eq(left - cnt), bit.eq(bit + cnt * bits), first_issue.eq(0)]
                with m.If(phase == 2):
                    with m.If(seg_left == cnt):   # the chunk ends: the next chunk's slot
                        rest = left - cnt
                        m.d.sync += [seg_left.eq(Mux(rest < chunk, rest, chunk)),
                                     in_chunk.eq(0), chunk_base.eq(chunk_base + ins.rows * chunk)]
                    with m.Else():
                        m.d.sync += [seg_left.eq(seg_left - cnt), in_chunk.eq(in_chunk + cnt)]
                with m.If(last):
                    restart_row()
                    with m.If(phase == 0):
                        m.d.sync += phase.eq(1)
                    with m.Elif(phase == 1):
                        m.d.sync += [phase.eq(2), count_.eq(0)]
                        m.next = "ROOT"
                    with m.Else():
                        m.d.sync += [phase.eq(Mux(ins.center, 0, 1)), row.eq(row + 1),
                                     src_row.eq(src_row + ins.src_stride),
                                     chunk_base.eq(ins.acc_addr + (row + 1) * chunk)]
                        with m.If(row + 1 == ins.rows):
                            m.d.comb += fin.eq(1)
                            m.next = "DRAIN"
            with m.State("ROOT"):
                # SETTLE cycles for Q, then root bits 31..0: keep a bit if its square fits
                m.d.comb += self.ctl.busy.eq(1)
                m.d.sync += count_.eq(count_ + 1)
                with m.If(count_ == SETTLE - 1):
                    m.d.sync += root.eq(0)
                with m.If(count_ >= SETTLE):
                    k = (ROOT_CYCLES - 1 - (count_ - SETTLE)).as_unsigned()[:5]
                    trial = Signal(33)
                    m.d.comb += trial.eq(root | (1 << k))
                    with m.If(trial * trial <= radicand):
                        m.d.sync += root.eq(trial)
                with m.If(count_ == SETTLE + ROOT_CYCLES - 1):
                    m.d.sync += [count_.eq(0), rem.eq(0), inv.eq(0)]
                    m.next = "DIVIDE"
            with m.State("DIVIDE"):
                # quotient bits 61..0 of 2^61 / r (restoring)
                m.d.comb += self.ctl.busy.eq(1)
                m.d.sync += count_.eq(count_ + 1)
                shifted = Signal(35)
                m.d.comb += shifted.eq((rem << 1) | (count_ == 0))
                with m.If(shifted >= r):
                    m.d.sync += [rem.eq(shifted - r), inv.eq((inv << 1) | 1)]
                with m.Else():
                    m.d.sync += [rem.eq(shifted), inv.eq(inv << 1)]
                with m.If(count_ == DIVIDE_CYCLES - 1):
                    m.next = "PASS"
            with m.State("DRAIN"):
                m.d.comb += self.ctl.busy.eq(1)
                with m.If(self.ctl.done):
                    m.next = "IDLE"

        m.d.comb += [self.src.en.eq(issue), self.src.addr.eq(src_row + (bit >> 3)),
                     self.eps.en.eq(issue & first_issue), self.eps.addr.eq(ins.eps_addr)]

        # ---- pipeline ------------------------------------------------------------------------
        ctrl = data.StructLayout({"valid": 1, "phase": 2, "first": 1, "fin": 1, "eps": 1,
                                  "count": range(lanes + 1), "addr": 20, "off": 3})
        stages = [Signal(ctrl, name=f"nm{i}") for i in range(WRITE_DELAY + 1)]
        s0 = stages[0]
        m.d.comb += [s0.valid.eq(issue), s0.phase.eq(phase), s0.first.eq(left == n),
                     s0.fin.eq(fin), s0.eps.eq(issue & first_issue), s0.count.eq(cnt),
                     s0.addr.eq(chunk_base + in_chunk), s0.off.eq(bit[:3])]
        for a, b in itertools.pairwise(stages):
            m.d.sync += b.eq(a)
        s1, s2 = stages[1], stages[2]
        with m.If(s1.eps):
            m.d.sync += eps.eq(self.eps.data.as_value())

        m.submodules.unpack = unpack = Unpack(self.window, lanes)
        m.d.comb += [unpack.window.eq(self.src.data.as_value() >> s1.off),
                     unpack.enc.eq(ins.fmt.as_value())]
        group_sum, group_sq = 0, 0
        word_bits = 8 * arch.acc_word_bytes
        for i in range(lanes):
            v = Signal(signed(18), name=f"v{i}")
            m.d.comb += v.eq(Mux(i < s1.count, unpack.code[i] - ins.zp, 0))
            group_sum = group_sum + v
            c = Signal(signed(36), name=f"c{i}")   # stage 2
            m.d.sync += c.eq(Mux(i < s1.count, Mux(ins.center, n * v - total, v), 0))
            group_sq = group_sq + c * c
            t = Signal(signed(64), name=f"t{i}")
            m.d.comb += t.eq((c * inv + (1 << (OUT_SHIFT - 1))) >> OUT_SHIFT)
            out = Signal(word_bits, name=f"out{i}")  # stage 3: wrapped, sign-extended
            m.d.sync += out.eq(t[:arch.acc_bits].as_signed())
            m.d.comb += self.acc.data[i].eq(out)
        with m.If(s1.valid & (s1.phase == 0)):
            m.d.sync += total.eq(Mux(s1.first, 0, total) + group_sum)
        with m.If(s2.valid & (s2.phase == 1)):
            m.d.sync += sumsq.eq(Mux(s2.first, 0, sumsq) + group_sq)
        w = stages[WRITE_DELAY]
        m.d.comb += [
            self.acc.en.eq(w.valid & (w.phase == 2)), self.acc.addr.eq(w.addr),
            self.acc.mask.eq(Mux(w.valid, (1 << w.count) - 1, 0)),
            self.ctl.done.eq(w.fin),
        ]
        return m
