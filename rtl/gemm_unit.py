"""The GEMM unit: one GEMM instruction per ``start``, streamed straight out of the scratchpads.

``GemmUnit(arch)`` executes the GEMM row of ``isa.table`` on an R x C weight-stationary array
(``pe.PEArray`` with the ``skew.Skew`` triangles, as ``systolic.SystolicCore``), reading its
operands from the scratchpads and read-modify-writing the accumulator scratchpad. R, C =
``arch.array_rows``, ``arch.array_cols``; W = max(R, C); A = 8 * ``arch.acc_word_bytes``.

Ports (Verilog names ``<port>__<member>``; clock ``clk``, synchronous reset ``rst``):

* ``ctl``: ``ports.unit_control()`` (``start``, ``instr``, ``busy``, ``done``, ``error``,
  ``error_code``). ``error`` is always 0: the fields a GEMM may take are checked before a
  program runs (``qasic.isa.limits``); any word terminates on the schedule below.
* ``inp``: ``read_port(input addr bits, R)``: one streamed vector (<= R codes of <= 8 bits).
* ``wgt``: ``read_port(weight addr bits, W)``: a weight row, a stored row of a transposed tile,
  the block-scale row or the zero-point row.
* ``par``: ``read_port(param addr bits, 4C)``: C decode-table entries per read.
* ``acc_rd``, ``acc_wr``: ``read_port`` / ``write_port(acc addr bits, C, A)``: accumulator words
  (element address = word address); row t of the tile is the n words at acc_addr + t*n.

Every read fetches its full lane width; lanes past the operand are ignored (the scratchpad must
answer addresses up to ``lanes - 1`` past an operand, whatever it returns there).

Schedule (unit cycle i = 0 in the ``start`` cycle; ``qasic.rtl.timing`` has the formulas):

* prologue, i < pre = ``gemm_prologue_cycles``: with lut = 1 the param port reads the 2^wbits
  entries (C per cycle) into a register file (C write lanes, C asynchronous lookups: one per
  column); meanwhile the weight port reads the zero-point row (mulzp, i = 0) and, with
  wtrans = 1, the n stored rows (k codes each) into an R x C transposer of raw codes.
* weight rows: row R-1-j is read in cycle pre + j (j < R; rows >= k are not read) and, in
  cycle pre + 1 + j, decoded (unpack wbits, or transposer row; table lookup; minus the zero
  point; zero outside k x n; split into the PE's operand) and shifted into the array: fold
  cycle f = i - pre - 1 of ``timing.fold_cycles``'s schedule from here on.
* the scale row (bscale != none) is read in cycle pre + R (the weight port is free then).
* vector t (line l, row r) is read from inp_addr + l*inp_line_stride + r*inp_stride in cycle
  pre + R + t and enters the array decoded (unpack afmt; FP8 codes as levels or, for shift-add
  PEs, as the canonical ``sig << sh`` pair) in the next cycle.
* output row t leaves the de-skew in cycle pre + 2R + C - 1 + t; it is block-scaled, added to
  the accumulator words read in the cycle before (accumulate = 1), wrapped to acc_bits
  (sign-extended to A bits) and written in that cycle.
* ``done`` is high in the cycle of the last write, i = pre + 2R + C + T - 2; ``busy`` is high
  from i = 1 through that cycle. So busy = done = pre + 2R + C + T - 1
  (``timing.gemm_unit_cycles``), with pre = max(lut ? ceil(2^wbits / C) : 0,
  (bscale == mulzp) + (wtrans ? n : 0)).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from qasic.arch.config import ArchConfig
from qasic.isa.layouts import LAYOUTS
from qasic.isa.table import ACT_ENCODINGS, LUT_ENTRY_BYTES, LUT_SIG_BITS, WORD_BITS
from qasic.rtl.bscale import BlockScale, Bscale
from qasic.rtl.pe import PEArray, arch_operands
from qasic.rtl.ports import read_port, sram_addr_bits, unit_control, write_port
from qasic.rtl.skew import Skew
from qasic.rtl.timing import first_write_cycle, lut_read_cycles
from qasic.rtl.unpack import Fp8Level, Unpack, is_fp_encoding, split

GEMM = LAYOUTS["GEMM"]
WBITS = range(2, 9)            # weight code widths (isa.limits)
TABLE_ENTRIES = 1 << WBITS[-1]
TABLE_SHIFT_BITS = 5           # entry shifts are <= LUT_MAX_SHIFT = 31
COUNT_BITS = 30                # unit cycles: prologue + 2R + C + lines x rows (< 2^28) fit
CODE = unsigned(8)             # a raw weight code (wbits bits, zero-extended)
ENTRY = data.StructLayout({"sig": signed(LUT_SIG_BITS), "sh": unsigned(TABLE_SHIFT_BITS)})


class GemmUnit(wiring.Component):
    """One GEMM per ``start`` on an R x C array fed from the scratchpads (module doc)."""

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        r, c = arch.array_rows, arch.array_cols
        self.wide = max(r, c)
        self.a_op, self.w_op = arch_operands(arch)
        acc_word = 8 * arch.acc_word_bytes
        acc_addr = sram_addr_bits(arch, "acc")
        super().__init__({
            "ctl": Out(unit_control()),
            "inp": Out(read_port(sram_addr_bits(arch, "input"), r)),
            "wgt": Out(read_port(sram_addr_bits(arch, "weight"), self.wide)),
            "par": Out(read_port(sram_addr_bits(arch, "param"), LUT_ENTRY_BYTES * c)),
            "acc_rd": Out(read_port(acc_addr, c, acc_word)),
            "acc_wr": Out(write_port(acc_addr, c, acc_word)),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        a = self.arch
        r, c = a.array_rows, a.array_cols
        m.submodules.array = array = PEArray(r, c, self.a_op, self.w_op, a.acc_bits)
        m.submodules.skew = skew = Skew(self.a_op.shape, list(range(r)))
        m.submodules.deskew = deskew = Skew(signed(a.acc_bits), [c - 1 - j for j in range(c)])
        m.submodules.bscale = bscale = BlockScale(c, a.acc_bits)
        self._control(m)
        self._table(m)
        self._weights(m, array)
        self._inputs(m, skew)
        m.d.comb += [array.a_left.eq(skew.o), deskew.i.eq(array.sums), bscale.i.eq(deskew.o)]
        self._outputs(m, bscale)
        return m

    # -- control: the instruction word, the cycle counter, busy and done ----------------------

    def _control(self, m: Module) -> None:
        a, ctl = self.arch, self.ctl
        r, c = a.array_rows, a.array_cols
        running, word = Signal(), Signal(WORD_BITS)
        count = Signal(COUNT_BITS)
        self.launch = launch = Signal()
        m.d.comb += launch.eq(ctl.start & ~running)
        # f: the instruction's fields, straight from ``instr`` in the launch cycle.
        self.f = f = data.View(GEMM, Mux(launch, ctl.instr, word))
        self.i = i = Signal(COUNT_BITS)
        self.t = t = Signal(28)  # T = lines x rows, from the cycle after launch
        m.d.comb += i.eq(Mux(running, count, 0))
        with m.If(launch):
            m.d.sync += [word.eq(ctl.instr), t.eq(f.lines * f.rows)]
        self.mulzp = f.bscale == Bscale.mulzp
        self.scaled = f.bscale != Bscale.none
        self.pre = pre = Signal(COUNT_BITS)
        table = Signal(range(TABLE_ENTRIES + 1))
        weight = Signal(len(f.n) + 1)
        m.d.comb += [
            table.eq(Mux(f.lut, _per_wbits(f.wbits, lambda w: lut_read_cycles(c, w)), 0)),
            weight.eq(self.mulzp + Mux(f.wtrans, f.n, 0)),
            pre.eq(Mux(weight > table, weight, table)),
        ]
        last = pre + first_write_cycle(r, c) + t  # the last row's write: fold cycle N - 1
        done = running & (i == last)
        m.d.sync += [count.eq(i + 1), running.eq(Mux(launch, 1, running & ~done))]
        m.d.comb += [ctl.busy.eq(running), ctl.done.eq(done), ctl.error.eq(0),
                     ctl.error_code.eq(0)]
        self.running = running

    # -- the decode table (lut = 1) ----------------------------------------------------------

    def _table(self, m: Module) -> None:
        """Entries x at lane x % C of the chunk x // C read from lut_addr + 4C * chunk."""
        c, f, i = self.arch.array_cols, self.f, self.i
        chunks = lut_read_cycles(c, WBITS[-1])
        reading = self.running | self.launch
        read = reading & f.lut & (i < _per_wbits(f.wbits, lambda w: lut_read_cycles(c, w)))
        got, chunk = Signal(), Signal(range(max(chunks, 2)))
        m.d.comb += [self.par.en.eq(read),
                     self.par.addr.eq(f.lut_addr + i * (LUT_ENTRY_BYTES * c))]
        m.d.sync += [got.eq(read), chunk.eq(i)]
        # One write port per lane (entry chunk*C + lane), one asynchronous read per column.
        self.table = table = Memory(shape=ENTRY, depth=TABLE_ENTRIES, init=[])
        m.submodules.table = table
        d = self.par.data
        for lane in range(c):
            wr = table.write_port()
            at = LUT_ENTRY_BYTES * lane
            m.d.comb += [
                wr.en.eq(got & (chunk * c + lane < TABLE_ENTRIES)),
                wr.addr.eq(chunk * c + lane),
                wr.data.sh.eq(d[at][:TABLE_SHIFT_BITS]),
                wr.data.sig.eq(Cat(d[at + 1], d[at + 2], d[at + 3])),
            ]

    # -- weights: prologue reads, transposer, row decode, preload ----------------------------

    def _weights(self, m: Module, array: PEArray) -> None:
        a, f, i, pre = self.arch, self.f, self.i, self.pre
        r, c, wide = a.array_rows, a.array_cols, self.wide
        active = self.running | self.launch
        srows = Mux(self.mulzp, 2, Mux(self.scaled, 1, 0))
        base = Signal(26)
        row_bytes = Signal(12)
        m.d.comb += [
            base.eq(f.wgt_addr + srows * f.n),
            row_bytes.eq((Mux(f.wtrans, f.k, f.n) * f.wbits + 7) >> 3),
        ]
        zp_read = active & self.mulzp & (i == 0)
        tr_nn = i - self.mulzp
        tr_read = active & f.wtrans & (i >= self.mulzp) & (i < self.mulzp + f.n)
        kk_read = r - 1 - (i - pre)
        row_read = active & ~f.wtrans & (i >= pre) & (i < pre + r) & (kk_read < f.k)
        sc_read = active & self.scaled & (i == pre + r)
        addr = Mux(zp_read, f.wgt_addr + f.n,
                   Mux(tr_read, base + tr_nn * row_bytes,
                       Mux(row_read, base + kk_read * row_bytes, f.wgt_addr)))
        m.d.comb += [self.wgt.en.eq(zp_read | tr_read | row_read | sc_read),
                     self.wgt.addr.eq(addr)]
        zp_got, tr_got, sc_got = Signal(), Signal(), Signal()
        tr_col = Signal(range(max(c, 2)))
        m.d.sync += [zp_got.eq(zp_read), tr_got.eq(tr_read), sc_got.eq(sc_read),
                     tr_col.eq(tr_nn)]
        # Raw wbits codes of the row on the weight port (a weight row or a stored row).
        m.submodules.wunpack = unpack = Unpack(wide, wide)
        m.d.comb += [unpack.window.eq(self.wgt.data),
                     unpack.enc.eq(_per_wbits(f.wbits, lambda w: ACT_ENCODINGS.index(f"int{w}")))]
        zero = [Signal(signed(8), name=f"zp{n}") for n in range(c)]
        scale = [Signal(8, name=f"scale{n}") for n in range(c)]
        with m.If(zp_got):
            m.d.sync += [z.eq(self.wgt.data[n]) for n, z in enumerate(zero)]
        with m.If(sc_got):
            m.d.sync += [s.eq(self.wgt.data[n]) for n, s in enumerate(scale)]
        # The scale row is on the port in the cycle after its read (R = C = 1 needs it then).
        self.scales = [Mux(sc_got, self.wgt.data[n], s) for n, s in enumerate(scale)]
        trans = self._transposer(m, unpack, tr_got, tr_col)
        # Preload: cycles pre+1 .. pre+R shift rows R-1 .. 0 into the array.
        q = i - pre
        load = self.running & (i > pre) & (i <= pre + r)
        kk = Signal(range(max(r, 2)))
        m.d.comb += [kk.eq(r - q), array.load.eq(load)]
        row = Signal(data.ArrayLayout(CODE, c))
        with m.If(f.wtrans), m.Switch(kk):
            for k in range(r):
                with m.Case(k):
                    m.d.comb += row.eq(trans[k])
        with m.Else():
            m.d.comb += [row[n].eq(unpack.raw[n]) for n in range(c)]
        for n in range(c):
            level = self._weight_level(m, row[n], zero[n])
            keep = Signal(signed(len(level)), name=f"wlevel{n}")
            m.d.comb += keep.eq(Mux((n < f.n) & (kk < f.k), level, 0))
            sig, sh = split(m, keep, None, self.w_op.bits, self.w_op.shift_bits)
            if sh is None:
                m.d.comb += array.w_top[n].eq(sig)
            else:
                m.d.comb += [array.w_top[n].sig.eq(sig), array.w_top[n].sh.eq(sh)]

    def _transposer(self, m: Module, unpack: Unpack, got, col) -> list:
        """R rows of C raw codes: stored row nn (k codes) lands in column nn."""
        r, c = self.arch.array_rows, self.arch.array_cols
        rows = [Signal(data.ArrayLayout(CODE, c), name=f"trans{k}") for k in range(r)]
        for n in range(c):
            with m.If(got & (col == n)):
                m.d.sync += [rows[k][n].eq(unpack.raw[k]) for k in range(r)]
        return rows

    def _weight_level(self, m: Module, raw, zero):
        """The integer weight of a raw code: the signed code or its table level, minus the zero
        point (mulzp)."""
        f = self.f
        code = _per_wbits(f.wbits, lambda w: raw[:w].as_signed())
        entry = self.table.read_port(domain="comb")
        m.d.comb += entry.addr.eq(raw)
        sig, sh = entry.data.sig, entry.data.sh
        level = Signal(signed(LUT_SIG_BITS + (1 << TABLE_SHIFT_BITS) + 1))
        m.d.comb += level.eq(Mux(f.lut, sig << sh, code) - Mux(self.mulzp, zero, 0))
        return level

    # -- inputs: strided vector reads, decode, skew -------------------------------------------

    def _inputs(self, m: Module, skew: Skew) -> None:
        a, f, i, pre, t = self.arch, self.f, self.i, self.pre, self.t
        r = a.array_rows
        vec, line = Signal(26), Signal(26)
        col = Signal(16)
        read = self.running & (i >= pre + r) & (i < pre + r + t)
        m.d.comb += [self.inp.en.eq(read), self.inp.addr.eq(vec)]
        with m.If(self.launch):
            m.d.sync += [vec.eq(f.inp_addr), line.eq(f.inp_addr), col.eq(0)]
        with m.Elif(read):
            with m.If(col == f.rows - 1):
                m.d.sync += [col.eq(0), line.eq(line + f.inp_line_stride),
                             vec.eq(line + f.inp_line_stride)]
            with m.Else():
                m.d.sync += [col.eq(col + 1), vec.eq(vec + f.inp_stride)]
        valid = Signal()
        m.d.sync += valid.eq(read)
        m.submodules.aunpack = unpack = Unpack(r, r)
        m.d.comb += [unpack.window.eq(self.inp.data), unpack.enc.eq(f.afmt.as_value())]
        fp = is_fp_encoding(f.afmt.as_value())
        for k in range(r):
            m.submodules[f"fp8_{k}"] = fp8 = Fp8Level()
            m.d.comb += [fp8.byte.eq(unpack.raw[k][:8]), fp8.enc.eq(f.afmt.as_value())]
            on = valid & (k < f.k)
            if self.a_op.shift_bits:
                sig, sh = split(m, Mux(fp, fp8.sig, unpack.code[k]), Mux(fp, fp8.sh, 0),
                                self.a_op.bits, self.a_op.shift_bits)
                m.d.comb += [skew.i[k].sig.eq(Mux(on, sig, 0)), skew.i[k].sh.eq(Mux(on, sh, 0))]
            else:
                m.d.comb += skew.i[k].eq(Mux(on, Mux(fp, fp8.level, unpack.code[k]), 0))

    # -- outputs: block scale, accumulator read-modify-write ---------------------------------

    def _outputs(self, m: Module, bscale: BlockScale) -> None:
        a, f, i, pre, t = self.arch, self.f, self.i, self.pre, self.t
        c, acc_bits = a.array_cols, a.acc_bits
        first = pre + 1 + first_write_cycle(a.array_rows, c)  # unit cycle of row 0's write
        write = self.running & (i >= first) & (i < first + t)
        read = self.running & f.accumulate & (i >= first - 1) & (i < first - 1 + t)
        rd_addr, wr_addr = Signal(21), Signal(21)
        with m.If(self.launch):
            m.d.sync += [rd_addr.eq(f.acc_addr), wr_addr.eq(f.acc_addr)]
        with m.If(read):
            m.d.sync += rd_addr.eq(rd_addr + f.n)
        with m.If(write):
            m.d.sync += wr_addr.eq(wr_addr + f.n)
        m.d.comb += [
            bscale.mode.eq(f.bscale),
            self.acc_rd.en.eq(read), self.acc_rd.addr.eq(rd_addr),
            self.acc_wr.en.eq(write), self.acc_wr.addr.eq(wr_addr),
        ]
        for n in range(c):
            old = self.acc_rd.data[n][:acc_bits].as_signed()
            total = Signal(signed(acc_bits), name=f"acc{n}")  # wraps to acc_bits
            m.d.comb += [
                bscale.scale[n].eq(self.scales[n]),
                total.eq(bscale.o[n] + Mux(f.accumulate, old, 0)),
                self.acc_wr.data[n].eq(total),  # sign-extended to the word
                self.acc_wr.mask[n].eq(n < f.n),
            ]


def _per_wbits(wbits, value):
    """``value(w)`` for the runtime weight width ``wbits`` (2..8; ``value(8)`` otherwise)."""
    out = value(WBITS[-1])
    for w in WBITS[:-1]:
        out = Mux(wbits == w, value(w), out)
    return out
