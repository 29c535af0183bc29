"""POST: the post-processing unit (isa.table POST, ``sim.kernels.post`` bit for bit).

An accumulator tile of ``rows x n`` words (dense, word ``acc_addr + m*n + i``) becomes ``rows``
output rows of ``n`` codes at ``out_addr + m*out_stride``, packed at ``ofmt``:
``out = clamp(requant(acc + bias[i], mult[i], shift[i]) + out_zp, lo, hi)``; FP8 output: the lane's
quarter levels (``requantize_fine``) clamped to the levels of the codes lo, hi, then encoded
(``rtl.pack``: one rounding of the exact value); with
``lut`` = 1 each code c is replaced by the table byte at ``lut_addr + (c mod 2^B)`` (B <= 8: an
int16 output has no table). ``out_zp``, ``lo`` and ``hi`` are 16-bit fields (int16 codes; FP8's
codes sit in their low bytes).

Datapath: C = ``arch.array_cols`` lanes. The tile is walked row by row in groups of up to C
channels. A group's 16-byte parameter records (bias int64, mult int32, shift int32 at
``param_addr + 16 i``) are copied into registers first, 4C bytes per cycle (ceil(4 cnt / C)
cycles for cnt channels); with n <= C (every tile the compiler emits) that happens once per
instruction, with n > C before every group. Each issue cycle reads C accumulator words
(sign-extended from ``acc_bits``) and, with a row's last group, the output byte the row ends in
(its bits beyond the row keep their value). Lanes: 64-bit bias add (registered),
``rtl.requant`` lane (2 cycles), zero point / clamp or FP8 clamp and encode (registered), table
lookup and the ``rtl.pack.RowPacker`` (combinational into the output write port). With ``lut``
= 1 the 2^B-byte table is first copied into registers, 4C bytes per cycle.

Ports (``PostUnit(arch)``; C = array_cols, A_x = ``rtl.ports.sram_addr_bits(arch, x)``):
    * ``ctl``: ``rtl.ports.unit_control()``.
    * ``acc``: ``read_port(A_acc, C, 8 * arch.acc_word_bytes)``.
    * ``param``: ``read_port(A_param, 4 * C)`` (bytes).
    * ``out``: ``write_port(A_output, rtl.pack.port_bytes(C, 16))`` (bytes: 2C, int16 codes).
    * ``tail``: ``read_port(A_output, 1)``: the byte a row ends in.

Cycles (``post_cycles``; busy == done), G = ceil(n / C) groups per row,
T = lut * ceil(2^B / 4C) table cycles (B the code bits of ofmt),
R = sum over the groups of ceil(4 cnt / C) = 4 (n // C) + ceil(4 (n mod C) / C) record cycles:
    S = rows * G + R          (n <= C: the records once)
    S = rows * (G + R)        (n > C: every group reloads its records)
    S = 0                     (rows = 0 or n = 0: no records read either)
    busy = done = T + max(S, 1) + PIPELINE   (PIPELINE = 6)
The instruction starts in cycle s; table and record reads and group issues fill s+1 .. s+T+S,
a group's bytes are written 5 cycles after its issue, ``done`` with the last write.
"""

from __future__ import annotations

import itertools

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from qasic.arch.config import ArchConfig
from qasic.isa.layouts import INSTR
from qasic.isa.table import POST_PARAM_BYTES_PER_CHANNEL, WORD_BITS
from qasic.rtl.pack import Fp8Encode, RowPacker, fine_clamp, port_bytes
from qasic.rtl.ports import read_port, sram_addr_bits, unit_control, write_port
from qasic.rtl.requant import LATENCY, RequantLane
from qasic.rtl.unpack import Fp8Level, code_bits, is_fp_encoding

PIPELINE = 6          # busy = done = L + max(S, 1) + PIPELINE
WRITE_DELAY = 5       # reads of a group in cycle t -> its bytes written in cycle t + 5
TABLE_BYTES = 256     # the largest code table (B = 8)
PARAM = POST_PARAM_BYTES_PER_CHANNEL
PARAM_PORT_BYTES_PER_LANE = 4  # the param port: 4C bytes (as the GEMM unit's decode-table port)
WIDEST = 16           # the widest output code (int16)


def _ceil(a, b):
    return -(-a // b)


def post_cycles(rows, n, lut, code_bits_, arch: ArchConfig):
    """(busy, done) of a POST: ints or numpy arrays alike (module doc)."""
    import numpy as np

    c = arch.array_cols
    groups = _ceil(n, c)
    records = 4 * (n // c) + _ceil(4 * (n % c), c)
    work = np.where(n <= c, rows * groups + records, rows * (groups + records))
    work = np.where((rows == 0) | (n == 0), 0, work)
    table = lut * _ceil(np.left_shift(1, code_bits_), PARAM_PORT_BYTES_PER_LANE * c)
    t = table + np.maximum(work, 1) + PIPELINE
    return t, t


def post_duration(f, arch: ArchConfig):
    """``post_cycles`` of an ``isa.encoding.Instr`` or of POST's ``sim.fastfields`` columns."""
    from qasic.rtl.vector import code_bits_of

    return post_cycles(f["rows"], f["n"], f["lut"], code_bits_of(f, "ofmt"), arch)


class PostUnit(wiring.Component):
    """The POST instruction (module doc)."""

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        c = arch.array_cols
        self.lanes = c
        self.param_bytes = PARAM_PORT_BYTES_PER_LANE * c
        out_bits = sram_addr_bits(arch, "output")
        super().__init__({
            "ctl": Out(unit_control()),
            "acc": Out(read_port(sram_addr_bits(arch, "acc"), c, 8 * arch.acc_word_bytes)),
            "param": Out(read_port(sram_addr_bits(arch, "param"), self.param_bytes)),
            "out": Out(write_port(out_bits, port_bytes(c, WIDEST))),
            "tail": Out(read_port(out_bits, 1)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        arch, lanes, width = self.arch, self.lanes, self.param_bytes
        word = Signal(WORD_BITS)
        ins = data.View(INSTR, word).POST
        new = data.View(INSTR, self.ctl.instr).POST
        with m.If(self.ctl.start):
            m.d.sync += word.eq(self.ctl.instr)
        rows, n = ins.rows, ins.n
        zp, lo, hi = ins.out_zp, ins.lo, ins.hi
        ofmt, lut = ins.ofmt.as_value(), ins.lut
        bits = code_bits(ofmt)
        is_fp = is_fp_encoding(ofmt)
        m.submodules.lo_level = lo_level = Fp8Level()
        m.submodules.hi_level = hi_level = Fp8Level()
        m.d.comb += [lo_level.byte.eq(lo.as_unsigned()[:8]), lo_level.enc.eq(ofmt),
                     hi_level.byte.eq(hi.as_unsigned()[:8]), hi_level.enc.eq(ofmt)]

        # ---- registers filled from the param port: the output table, one group's records -----
        table = Signal(8 * TABLE_BYTES)
        records = Signal(8 * PARAM * lanes)
        ld = Signal(range(TABLE_BYTES // width + 2))   # reads of the current load issued
        ld_valid, ld_table, ld_index = Signal(), Signal(), Signal.like(ld)
        m.d.sync += ld_valid.eq(0)
        t_total = Signal.like(ld)      # ceil(2^B / P)
        with m.Switch(bits):
            for b in range(2, 9):
                with m.Case(b):
                    m.d.comb += t_total.eq(_ceil(1 << b, width))
        for target, size, is_table in ((table, TABLE_BYTES, 1), (records, PARAM * lanes, 0)):
            with m.If(ld_valid & (ld_table == is_table)), m.Switch(ld_index):
                for k in range(_ceil(size, width)):
                    with m.Case(k):
                        lo_bit = 8 * width * k
                        top = min(8 * width, 8 * size - lo_bit)
                        m.d.sync += target[lo_bit:lo_bit + top].eq(
                            self.param.data.as_value()[:top])

        # ---- the walk: row by row, groups of C channels ---------------------------------------
        row = Signal(16)            # row of the group being issued
        row_left = Signal(13)       # channels of this row not yet issued
        acc_row = Signal(20)        # accumulator word of the row's channel 0
        acc_ptr = Signal(20)
        par_ptr = Signal(24)
        out_row = Signal(24)
        issue, issue_last_row_group, issue_fin = Signal(), Signal(), Signal()
        count = Signal(range(lanes + 1))
        m.d.comb += count.eq(Mux(row_left < lanes, row_left, lanes))
        p_total = Signal.like(ld)   # ceil(16 count / P) reads of the group's records
        with m.Switch(count):
            for c in range(lanes + 1):
                with m.Case(c):
                    m.d.comb += p_total.eq(_ceil(PARAM * c, width))
        tail_off = Signal(24)
        m.d.comb += tail_off.eq((n * bits) >> 3)
        empty = (rows == 0) | (n == 0)
        one_group = n <= lanes

        with m.FSM():
            with m.State("IDLE"), m.If(self.ctl.start):
                m.d.sync += [ld.eq(0), row.eq(0), row_left.eq(new.n),
                             acc_row.eq(new.acc_addr), acc_ptr.eq(new.acc_addr),
                             par_ptr.eq(new.param_addr), out_row.eq(new.out_addr)]
                with m.If(new.lut):
                    m.next = "TABLE"
                with m.Elif((new.rows == 0) | (new.n == 0)):
                    m.next = "RUN"
                with m.Else():
                    m.next = "PARAM"
            with m.State("TABLE"):
                m.d.comb += self.ctl.busy.eq(1)
                self._load(m, ins.lut_addr, ld, ld_valid, ld_table, ld_index, 1)
                with m.If(ld + 1 == t_total):
                    m.d.sync += ld.eq(0)
                    with m.If(empty):
                        m.next = "RUN"
                    with m.Else():
                        m.next = "PARAM"
            with m.State("PARAM"):
                m.d.comb += self.ctl.busy.eq(1)
                self._load(m, par_ptr, ld, ld_valid, ld_table, ld_index, 0)
                with m.If(ld + 1 == p_total):
                    m.d.sync += ld.eq(0)
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.ctl.busy.eq(1)
                self._run_step(m, rows, n, row, row_left, acc_row, acc_ptr, par_ptr,
                               ins.param_addr, out_row, ins.out_stride, issue,
                               issue_last_row_group, issue_fin, empty)
                with m.If(issue_fin):
                    m.next = "DRAIN"
                with m.Elif(~one_group):
                    m.next = "PARAM"   # the next group's records
            with m.State("DRAIN"):
                m.d.comb += self.ctl.busy.eq(1)
                with m.If(self.ctl.done):
                    m.next = "IDLE"

        # ---- reads of the issued group ---------------------------------------------------------
        m.d.comb += [
            self.acc.en.eq(issue), self.acc.addr.eq(acc_ptr),
            self.tail.en.eq(issue & issue_last_row_group),
            self.tail.addr.eq(out_row + tail_off),
        ]
        # ---- the pipeline: control travels beside the data --------------------------------------
        ctrl = data.StructLayout({"valid": 1, "first": 1, "last": 1, "fin": 1,
                                  "count": range(lanes + 1), "row_addr": 24})
        stages = [Signal(ctrl, name=f"p{i}") for i in range(WRITE_DELAY + 1)]
        m.d.comb += [
            stages[0].valid.eq(issue), stages[0].first.eq(row_left == n),
            stages[0].last.eq(issue_last_row_group), stages[0].fin.eq(issue_fin),
            stages[0].count.eq(count), stages[0].row_addr.eq(out_row),
        ]
        for a, b in itertools.pairwise(stages):
            m.d.sync += b.eq(a)
        tails = [Signal(8, name=f"tail{i}") for i in range(2, WRITE_DELAY + 1)]
        m.d.sync += tails[0].eq(self.tail.data[0])
        for a, b in itertools.pairwise(tails):
            m.d.sync += b.eq(a)

        # ---- lanes ------------------------------------------------------------------------------
        word = 8 * arch.acc_word_bytes
        acc_flat = self.acc.data.as_value()
        codes = []
        mask = Signal(8)  # a table index: B <= 8 (the verifier keeps int16 output table-free)
        m.d.comb += mask.eq((1 << bits) - 1)
        for i in range(lanes):
            x, q, sh = Signal(signed(64)), Signal(signed(32)), Signal(signed(32))
            rec = records[8 * PARAM * i:8 * PARAM * (i + 1)]
            acc_v = acc_flat[word * i:word * i + arch.acc_bits].as_signed()
            m.d.sync += [x.eq(acc_v + rec[:64].as_signed()), q.eq(rec[64:96].as_signed()),
                         sh.eq(rec[96:128].as_signed())]
            lane = RequantLane()
            m.submodules[f"requant{i}"] = lane
            m.d.comb += [lane.x.eq(x), lane.q.eq(q), lane.shift.eq(sh)]
            # stage p4: y valid -> clamp and encode -> code register (p5)
            y = lane.y
            with_zp = Signal(signed(66))
            m.d.comb += with_zp.eq(y + zp)
            int_code = Signal(signed(66))
            m.d.comb += int_code.eq(Mux(with_zp < lo, lo, with_zp))
            int_final = Mux(int_code > hi, hi, int_code)
            enc = Fp8Encode()
            m.submodules[f"fp8_{i}"] = enc
            m.d.comb += [enc.z.eq(fine_clamp(m, lane.z, lo_level.level, hi_level.level)),
                         enc.enc.eq(ofmt)]
            code = Signal(WIDEST, name=f"code{i}")
            m.d.sync += code.eq(Mux(is_fp, enc.code, int_final[:WIDEST]))
            # stage p5: the table
            looked = table.word_select(code[:8] & mask, 8)
            codes.append(Mux(lut, looked, code))
        assert 1 + LATENCY + 1 + 1 == WRITE_DELAY  # x, requant, code register, write

        m.submodules.packer = packer = RowPacker(lanes, len(self.out.addr), widest=WIDEST)
        p = stages[WRITE_DELAY]
        m.d.comb += [
            packer.valid.eq(p.valid), packer.first.eq(p.first), packer.last.eq(p.last),
            packer.row_addr.eq(p.row_addr), packer.count.eq(p.count), packer.enc.eq(ofmt),
            packer.tail.eq(tails[-1]),
            self.ctl.done.eq(p.fin),
        ]
        for i in range(lanes):
            m.d.comb += packer.codes[i].eq(codes[i])
        wiring.connect(m, packer.port, wiring.flipped(self.out))
        return m

    def _load(self, m, base, ld, ld_valid, ld_table, ld_index, is_table: int) -> None:
        """One read of a register load: P bytes at base + ld * P, into chunk ld next cycle."""
        m.d.comb += [self.param.en.eq(1), self.param.addr.eq(base + ld * self.param_bytes)]
        m.d.sync += [ld.eq(ld + 1), ld_valid.eq(1), ld_table.eq(is_table), ld_index.eq(ld)]

    def _run_step(self, m, rows, n, row, row_left, acc_row, acc_ptr, par_ptr, param_addr,
                  out_row, out_stride, issue, last_group, fin, empty) -> None:
        """One cycle of the run phase: issue the group (row, n - row_left) or, for an empty
        tile, only the end marker."""
        lanes = self.lanes
        last_row = row + 1 == rows
        m.d.comb += [
            issue.eq(~empty),
            last_group.eq(row_left <= lanes),
            fin.eq(empty | (last_row & (row_left <= lanes))),
        ]
        with m.If(row_left <= lanes):  # the row's last group: next row
            m.d.sync += [row.eq(row + 1), row_left.eq(n), acc_row.eq(acc_row + n),
                         acc_ptr.eq(acc_row + n), par_ptr.eq(param_addr),
                         out_row.eq(out_row + out_stride)]
        with m.Else():
            m.d.sync += [row_left.eq(row_left - lanes), acc_ptr.eq(acc_ptr + lanes),
                         par_ptr.eq(par_ptr + PARAM * lanes)]
