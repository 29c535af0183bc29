"""The vector unit: POOL, ADD and LUT on the output scratchpad (``sim.kernels.pool``, ``add``,
``lut`` bit for bit), V = ``arch.lanes`` lanes.

Every instruction runs in three phases: a prologue copies its parameters (ADD: 11 int32; POOL
avg: 6 int32; LUT: the 2^B-byte table) from the param port into registers, P = 4V bytes per
cycle, and (ADD, LUT) reads the byte its result row ends in; the run phase issues one group of up
to V codes per cycle; the pipeline drains into ``rtl.pack.RowPacker`` and the output write port.
A group's source codes are read at any bit offset (2V-byte windows, ``rtl.unpack.Unpack``).

* LUT: groups of V codes of the row ``src``: raw code -> table byte (registered) -> packer.
  Write delay 2.
* ADD: groups of V elements; with ``bcast`` = c > 0 the run walks rows of c elements (a group
  never crosses a row end, so b is read at offset 0 of each row). v(x) = level (FP8) or code - z;
  add: requant lanes A, B on v << 20, their sum into lane O; mul: v(a) * v(b) into lane O; then
  zero point and clamp (or FP8: lane O's quarter levels clamped and encoded, one rounding of
  the exact value). Write delay 8.
* POOL: per output pixel, per group of V channels, one source pixel per cycle over the kh x kw
  window (max of order keys from the floor ``lo``, or the sum of v(x)); the group's result goes
  through lane O (avg) or a 2-cycle delay (max), then the packer; read port b fetches the byte the
  output pixel ends in with the group that finishes it. Write delay 5.

Ports (``VectorUnit(arch)``, A_x = ``rtl.ports.sram_addr_bits(arch, x)``):
    * ``ctl``: ``rtl.ports.unit_control()``. ``error`` with ``error_code`` ERROR_UNSUPPORTED
      for an opcode this unit does not run (SOFTMAX, NORM are not built yet); it then completes
      like an empty instruction.
    * ``a``, ``b``: ``read_port(A_output, 2V)`` (bytes): the a / b operands, POOL's source (a)
      and row-end bytes (b).
    * ``param``: ``read_port(A_param, 4V)`` (bytes).
    * ``out``: ``write_port(A_output, rtl.pack.port_bytes(V, 16))`` (2V bytes).

Cycles (``vector_cycles``; busy == done; L the prologue, S the groups, W the write delay):
    busy = done = L + max(S, 1) + W + 1
    LUT   L = ceil(2^B / 4V) (B the code bits of fmt), S = ceil(count / V), W = 2
    ADD   L = ceil(44 / 4V), W = 8; S = ceil(count / V) (bcast = 0), or with bcast = c:
          (count // c) * ceil(c / V) + ceil((count mod c) / V)
    POOL  L = ceil(24 / 4V) (max reads the block too and ignores it), W = 5,
          S = oh * ow * ceil(c / V) * kh * kw
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import Out

from qasic.arch.config import ArchConfig
from qasic.isa.layouts import INSTR, Op
from qasic.isa.table import ADD_PARAM_BYTES, POOL_PARAM_BYTES, WORD_BITS, encoding_bits
from qasic.quant.reference import ADD_LEFT_SHIFT
from qasic.rtl.pack import Fp8Encode, RowPacker, fine_clamp, port_bytes
from qasic.rtl.ports import read_port, sram_addr_bits, unit_control, write_port
from qasic.rtl.post import PARAM_PORT_BYTES_PER_LANE
from qasic.rtl.requant import RequantLane
from qasic.rtl.unpack import Fp8Level, Unpack, code_bits, is_fp_encoding

ERROR_UNSUPPORTED = 1
TABLE_BYTES = 256
DELAY = {"LUT": 2, "ADD": 8, "POOL": 5}   # group reads in cycle t -> bytes written in t + DELAY
OPS = ("POOL", "ADD", "LUT")              # the unit's local opcode numbers


def _ceil(a, b):
    return -(-a // b)


def vector_cycles(op: str, f, arch: ArchConfig):
    """(busy, done) of a POOL, ADD or LUT with fields ``f``: an ``isa.encoding.Instr`` or the
    columns of one opcode (``sim.fastfields``: ints or numpy arrays alike, ``fmt_bits`` the
    code bits of fmt): the module doc's formula."""
    import numpy as np

    v, p = arch.lanes, PARAM_PORT_BYTES_PER_LANE * arch.lanes
    if op == "LUT":
        pro, groups = _ceil(np.left_shift(1, code_bits_of(f, "fmt")), p), _ceil(f["count"], v)
    elif op == "ADD":
        c = np.maximum(f["bcast"], 1)
        whole = np.where(f["bcast"] > 0, (f["count"] // c) * _ceil(c, v)
                         + _ceil(f["count"] % c, v), _ceil(f["count"], v))
        pro, groups = _ceil(ADD_PARAM_BYTES, p), whole
    elif op == "POOL":
        oh = (f["h"] - f["kh"]) // np.maximum(f["sh"], 1) + 1
        ow = (f["w"] - f["kw"]) // np.maximum(f["sw"], 1) + 1
        pro = _ceil(POOL_PARAM_BYTES, p)
        groups = oh * ow * _ceil(f["c"], v) * f["kh"] * f["kw"]
    else:
        raise ValueError(f"vector_cycles: {op} is not run by the vector unit (POOL, ADD, LUT)")
    t = pro + np.maximum(groups, 1) + DELAY[op] + 1
    return t, t


def code_bits_of(f, name: str):
    """Code bits of the encoding field ``name`` of ``f``: the column ``<name>_bits``
    (``sim.fastfields``), or from an Instr's symbolic value."""
    try:
        return f[f"{name}_bits"]
    except KeyError:
        return encoding_bits(f[name])


class VectorUnit(wiring.Component):
    """POOL, ADD and LUT (module doc)."""

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        self.lanes = v = arch.lanes
        self.param_bytes = PARAM_PORT_BYTES_PER_LANE * v
        self.window = 2 * v
        out_bits = sram_addr_bits(arch, "output")
        super().__init__({
            "ctl": Out(unit_control()),
            "a": Out(read_port(out_bits, self.window)),
            "b": Out(read_port(out_bits, self.window)),
            "param": Out(read_port(sram_addr_bits(arch, "param"), self.param_bytes)),
            "out": Out(write_port(out_bits, port_bytes(v, 16))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        lanes = self.lanes
        word = Signal(WORD_BITS)
        ins = data.View(INSTR, word)
        pool, add, lut = ins.POOL, ins.ADD, ins.LUT
        op = Signal(2)
        is_pool, is_add = op == 0, op == 1  # else 2: LUT
        start_op = data.View(INSTR, self.ctl.instr).header.opcode
        known = Signal()
        m.d.comb += known.eq((start_op == Op.POOL) | (start_op == Op.ADD) | (start_op == Op.LUT))

        # ---- per-instruction quantities ------------------------------------------------------
        a_enc = Mux(is_add, add.fmt.as_value(), Mux(is_pool, pool.fmt.as_value(),
                                                      lut.fmt.as_value()))
        b_enc = add.bfmt.as_value()
        o_enc = Mux(is_add, add.ofmt.as_value(), Mux(is_pool, pool.fmt.as_value(),
                                                      lut.ofmt.as_value()))
        a_bits, b_bits, o_bits = Signal(5), Signal(5), Signal(5)
        m.d.comb += [a_bits.eq(code_bits(a_enc)), b_bits.eq(code_bits(b_enc)),
                     o_bits.eq(code_bits(o_enc))]
        a_fp, b_fp, o_fp = (is_fp_encoding(e) for e in (a_enc, b_enc, o_enc))
        avg = pool.mode.as_value() == 1
        mul = add.op.as_value() == 1
        count = Mux(is_add, add.count, lut.count)
        dst = Mux(is_add, add.dst_addr, lut.dst_addr)
        pro_total = Signal(range(TABLE_BYTES // self.param_bytes + 4))
        with m.Switch(op):
            with m.Case(0):
                m.d.comb += pro_total.eq(_ceil(POOL_PARAM_BYTES, self.param_bytes))
            with m.Case(1):
                m.d.comb += pro_total.eq(_ceil(ADD_PARAM_BYTES, self.param_bytes))
            with m.Case(2), m.Switch(a_bits):
                for b in range(2, 9):
                    with m.Case(b):
                        m.d.comb += pro_total.eq(_ceil(1 << b, self.param_bytes))
        pro_addr = Mux(is_add, add.param_addr, Mux(is_pool, pool.param_addr, lut.table_addr))

        # ---- registers: the table / parameter block, the row-end byte ---------------------------
        table = Signal(8 * TABLE_BYTES)
        pro_count = Signal.like(pro_total)
        t_valid, t_index = Signal(), Signal.like(pro_total)
        m.d.sync += t_valid.eq(0)
        with m.If(t_valid), m.Switch(t_index):
            for k in range(_ceil(TABLE_BYTES, self.param_bytes)):
                with m.Case(k):
                    lo_bit = 8 * self.param_bytes * k
                    width = min(8 * self.param_bytes, 8 * TABLE_BYTES - lo_bit)
                    m.d.sync += table[lo_bit:lo_bit + width].eq(self.param.data.as_value()[:width])

        def param(index: int):
            return table[32 * index:32 * index + 32].as_signed()
        za, zb = param(0), param(1)
        zo = Mux(is_pool, param(1), param(2))
        qa, sa, qb, sb = param(3), param(4), param(5), param(6)
        qo, so = Mux(is_pool, param(2), param(7)), Mux(is_pool, param(3), param(8))
        plo, phi = Mux(is_pool, param(4), param(9)), Mux(is_pool, param(5), param(10))
        zi = param(0)
        row_tail = Signal(8)
        tail_pending = Signal()
        m.d.sync += tail_pending.eq(0)
        with m.If(tail_pending):
            m.d.sync += row_tail.eq(self.b.data[0])

        # ---- run-phase state ---------------------------------------------------------------------
        left = Signal(24)           # LUT / ADD: elements not yet issued
        row_left = Signal(24)       # ADD: elements left in this bcast row (else = left)
        a_bit = Signal(29)          # bit position of the next a code from its row start
        b_bit = Signal(29)
        first_group = Signal()
        # POOL
        oy_top, ox_left = Signal(12), Signal(12)
        wi, wj = Signal(8), Signal(8)
        ch_left = Signal(13)
        g_bit = Signal(16)
        dst_pix = Signal(24)

        issue, fin = Signal(), Signal()
        st0 = Signal(self._ctrl_layout())
        a_addr, a_off = Signal(24), Signal(3)
        b_addr, b_off = Signal(24), Signal(3)

        seg = Mux(is_add & (add.bcast != 0), add.bcast, count)
        cnt = Signal(range(lanes + 1))
        with m.If(is_pool):
            m.d.comb += cnt.eq(Mux(ch_left < lanes, ch_left, lanes))
        with m.Else():
            m.d.comb += cnt.eq(Mux(row_left < lanes, row_left, lanes))

        # POOL addresses: source pixel (oy_top + wi) * w + ox_left + wj
        pix = Signal(24)
        m.d.comb += pix.eq((oy_top + wi) * pool.w + ox_left + wj)
        pool_addr = Signal(24)
        m.d.comb += pool_addr.eq(pool.src_addr + pix * pool.src_pix_stride + (g_bit >> 3))
        pool_tail = dst_pix + ((pool.c * a_bits) >> 3)
        last_pos = (wj + 1 == pool.kw) & (wi + 1 == pool.kh)
        last_chgroup = ch_left <= lanes
        next_ox = ox_left + pool.sw
        next_oy = oy_top + pool.sh
        more_x = next_ox + pool.kw <= pool.w
        more_y = next_oy + pool.kh <= pool.h

        with m.Switch(op):
            with m.Case(0):
                m.d.comb += [a_addr.eq(pool_addr), a_off.eq(g_bit[:3]),
                             b_addr.eq(pool_tail),
                             st0.first.eq(ch_left == pool.c), st0.last.eq(last_chgroup),
                             st0.emit.eq(last_pos), st0.pos_first.eq((wi == 0) & (wj == 0)),
                             st0.row_addr.eq(dst_pix)]
            with m.Default():
                m.d.comb += [a_addr.eq(Mux(is_add, add.a_addr, lut.src_addr) + (a_bit >> 3)),
                             a_off.eq(a_bit[:3]),
                             b_addr.eq(add.b_addr + (b_bit >> 3)), b_off.eq(b_bit[:3]),
                             st0.first.eq(first_group), st0.last.eq(left == cnt),
                             st0.emit.eq(1), st0.pos_first.eq(1), st0.row_addr.eq(dst)]
        m.d.comb += [st0.valid.eq(issue), st0.fin.eq(fin), st0.count.eq(cnt)]

        walk = SimpleNamespace(
            op=op, pool=pool, add=add, cnt=cnt, issue=issue, fin=fin, left=left,
            row_left=row_left, seg=seg, a_bit=a_bit, b_bit=b_bit, a_bits=a_bits, b_bits=b_bits,
            first_group=first_group, wi=wi, wj=wj, ch_left=ch_left, g_bit=g_bit,
            dst_pix=dst_pix, ox_left=ox_left, oy_top=oy_top, next_ox=next_ox, next_oy=next_oy,
            more_x=more_x, more_y=more_y, last_pos=last_pos, last_chgroup=last_chgroup)
        with m.FSM():
            with m.State("IDLE"), m.If(self.ctl.start):
                m.d.sync += [word.eq(self.ctl.instr), pro_count.eq(0)]
                with m.If(start_op == Op.POOL):
                    m.d.sync += op.eq(0)
                with m.Elif(start_op == Op.ADD):
                    m.d.sync += op.eq(1)
                with m.Else():
                    m.d.sync += op.eq(2)
                with m.If(known):
                    m.next = "INIT"
                with m.Else():
                    m.d.sync += [self.ctl.error.eq(1),
                                 self.ctl.error_code.eq(ERROR_UNSUPPORTED)]
                    m.next = "SKIP"
            with m.State("SKIP"):
                # an opcode this unit does not run: complete it as an empty LUT
                m.d.comb += [self.ctl.busy.eq(1), fin.eq(1)]
                m.next = "DRAIN"
            with m.State("INIT"):
                # fields are in ``word`` now: set up the walk; the first prologue read, if any
                m.d.comb += self.ctl.busy.eq(1)
                m.d.sync += [left.eq(count), row_left.eq(Mux(count < seg, count, seg)),
                             a_bit.eq(0), b_bit.eq(0), first_group.eq(1),
                             oy_top.eq(0), ox_left.eq(0), wi.eq(0), wj.eq(0),
                             ch_left.eq(pool.c), g_bit.eq(0), dst_pix.eq(pool.dst_addr)]
                self._prologue_read(m, pro_addr, pro_count, t_valid, t_index)
                # ADD, LUT: the byte their result row ends in, on port b
                m.d.comb += [self.b.en.eq(~is_pool),
                             self.b.addr.eq(dst + ((count * o_bits) >> 3))]
                m.d.sync += tail_pending.eq(~is_pool)
                with m.If(pro_count + 1 < pro_total):
                    m.next = "PRO"
                with m.Else():
                    m.next = "RUN"
            with m.State("PRO"):
                m.d.comb += self.ctl.busy.eq(1)
                self._prologue_read(m, pro_addr, pro_count, t_valid, t_index)
                with m.If(pro_count + 1 == pro_total):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.ctl.busy.eq(1)
                self._run_step(m, walk)
            with m.State("DRAIN"):
                m.d.comb += self.ctl.busy.eq(1)
                with m.If(self.ctl.done):
                    m.next = "IDLE"

        m.d.comb += [self.a.en.eq(issue), self.a.addr.eq(a_addr)]
        with m.If(issue & is_add):
            m.d.comb += [self.b.en.eq(1), self.b.addr.eq(b_addr)]
        with m.If(issue & is_pool & last_pos & last_chgroup):
            m.d.comb += [self.b.en.eq(1), self.b.addr.eq(pool_tail)]

        # ---- control pipeline --------------------------------------------------------------------
        depth = max(DELAY.values())
        stages = [st0] + [Signal(self._ctrl_layout(), name=f"st{i}") for i in range(1, depth + 1)]
        for i, (x, y) in enumerate(itertools.pairwise(stages)):
            m.d.sync += y.eq(x)
            if i == 1:  # the row-end byte read with stage 0 arrives in stage 1
                m.d.sync += y.tail.eq(self.b.data[0])
        with m.If(self.ctl.done):  # stages past this op's write tap hold stale groups
            m.d.sync += [st.valid.eq(0) for st in stages[1:]]
            m.d.sync += [st.fin.eq(0) for st in stages[1:]]
        offs = [Signal(3, name="a_off1"), Signal(3, name="b_off1")]
        m.d.sync += [offs[0].eq(a_off), offs[1].eq(b_off)]

        # ---- stage 1: unpack ---------------------------------------------------------------------
        m.submodules.unpack_a = ua = Unpack(self.window, lanes)
        m.submodules.unpack_b = ub = Unpack(self.window, lanes)
        m.d.comb += [ua.window.eq(self.a.data.as_value() >> offs[0]), ua.enc.eq(a_enc),
                     ub.window.eq(self.b.data.as_value() >> offs[1]), ub.enc.eq(b_enc)]
        m.submodules.plo_level = plo_level = Fp8Level()
        m.submodules.phi_level = phi_level = Fp8Level()
        m.d.comb += [plo_level.byte.eq(plo[:8]), plo_level.enc.eq(o_enc),
                     phi_level.byte.eq(phi[:8]), phi_level.enc.eq(o_enc)]
        lo_code = pool.lo.as_unsigned()
        lo_key = Mux(a_fp, Mux(lo_code[7], -lo_code[:7], lo_code[:7]), lo_code.as_signed())

        m.submodules.packer = packer = RowPacker(lanes, len(self.out.addr), widest=16)
        mask = Signal(8)
        m.d.comb += mask.eq((1 << a_bits) - 1)
        lane_env = SimpleNamespace(
            op=op, is_pool=is_pool, a_enc=a_enc, b_enc=b_enc, o_enc=o_enc, a_fp=a_fp, b_fp=b_fp,
            o_fp=o_fp, avg=avg, mul=mul, za=za,
            zb=zb, zi=zi, zo=zo, qa=qa, sa=sa, qb=qb, sb=sb, qo=qo, so=so, plo=plo, phi=phi,
            plo_level=plo_level, phi_level=phi_level, lo_key=lo_key, packer=packer)
        for i in range(lanes):
            self._lane(m, i, ua, ub, stages, table, mask, lane_env)

        # ---- the write stage of this op ---------------------------------------------------------
        for name, k in zip(OPS, range(3)):
            s = stages[DELAY[name]]
            with m.If(op == k):
                m.d.comb += [
                    packer.valid.eq(s.valid & s.emit), packer.first.eq(s.first),
                    packer.last.eq(s.last), packer.count.eq(s.count),
                    packer.row_addr.eq(s.row_addr),
                    packer.tail.eq(s.tail if name == "POOL" else row_tail),
                    self.ctl.done.eq(s.fin),
                ]
        m.d.comb += packer.enc.eq(o_enc)
        wiring.connect(m, packer.port, wiring.flipped(self.out))
        return m

    def _ctrl_layout(self):
        return data.StructLayout({
            "valid": 1, "first": 1, "last": 1, "fin": 1, "emit": 1, "pos_first": 1,
            "count": range(self.lanes + 1), "row_addr": 24, "tail": 8})

    def _prologue_read(self, m, pro_addr, pro_count, t_valid, t_index) -> None:
        m.d.comb += [self.param.en.eq(1),
                     self.param.addr.eq(pro_addr + pro_count * self.param_bytes)]
        m.d.sync += [pro_count.eq(pro_count + 1), t_valid.eq(1), t_index.eq(pro_count)]

    def _run_step(self, m, e: SimpleNamespace) -> None:
        """One run cycle: issue the current group (or only the end marker when there is none)
        and advance the walk (``e``: the walk's registers and the instruction's views)."""
        lanes = self.lanes
        pool, cnt = e.pool, e.cnt
        with m.Switch(e.op):
            with m.Case(0):
                empty = pool.c == 0
                done_pix = e.last_pos & e.last_chgroup
                m.d.comb += [e.issue.eq(~empty),
                             e.fin.eq(empty | (done_pix & ~e.more_x & ~e.more_y))]
                with m.If(~(e.wj + 1 == pool.kw)):
                    m.d.sync += e.wj.eq(e.wj + 1)
                with m.Else():
                    m.d.sync += e.wj.eq(0)
                    with m.If(~(e.wi + 1 == pool.kh)):
                        m.d.sync += e.wi.eq(e.wi + 1)
                    with m.Else():
                        m.d.sync += e.wi.eq(0)
                        with m.If(~e.last_chgroup):
                            m.d.sync += [e.ch_left.eq(e.ch_left - lanes),
                                         e.g_bit.eq(e.g_bit + lanes * e.a_bits)]
                        with m.Else():
                            m.d.sync += [e.ch_left.eq(pool.c), e.g_bit.eq(0),
                                         e.dst_pix.eq(e.dst_pix + pool.dst_pix_stride)]
                            with m.If(e.more_x):
                                m.d.sync += e.ox_left.eq(e.next_ox)
                            with m.Else():
                                m.d.sync += [e.ox_left.eq(0), e.oy_top.eq(e.next_oy)]
            with m.Default():
                empty = e.left == 0
                m.d.comb += [e.issue.eq(~empty), e.fin.eq(empty | (e.left == cnt))]
                rest = e.left - cnt
                m.d.sync += [e.left.eq(rest), e.first_group.eq(0),
                             e.a_bit.eq(e.a_bit + cnt * e.a_bits)]
                with m.If(e.row_left == cnt):  # a bcast row ends: b starts over
                    m.d.sync += [e.row_left.eq(Mux(rest < e.seg, rest, e.seg)),
                                 e.b_bit.eq(Mux(e.add.bcast != 0, 0, e.b_bit + cnt * e.b_bits))]
                with m.Else():
                    m.d.sync += [e.row_left.eq(e.row_left - cnt),
                                 e.b_bit.eq(e.b_bit + cnt * e.b_bits)]
        with m.If(e.fin):
            m.next = "DRAIN"

    def _lane(self, m, i, ua, ub, stages, table, mask, e: SimpleNamespace) -> None:
        """Lane i's datapath from the unpacked codes (stage 1) to its output code (``final``,
        registered in the cycle before its op's write stage; ``e``: the shared values)."""
        final = Signal(16, name=f"final{i}")
        # -- stage 1: values
        fa, fb = Fp8Level(), Fp8Level()
        m.submodules[f"fp8a_{i}"], m.submodules[f"fp8b_{i}"] = fa, fb
        m.d.comb += [fa.byte.eq(ua.raw[i][:8]), fa.enc.eq(e.a_enc),
                     fb.byte.eq(ub.raw[i][:8]), fb.enc.eq(e.b_enc)]
        code_a, code_b = ua.code[i], ub.code[i]
        va1 = Mux(e.a_fp, fa.level, code_a - Mux(e.is_pool, e.zi, e.za))
        vb1 = Mux(e.b_fp, fb.level, code_b - e.zb)
        va, vb = Signal(signed(34), name=f"va{i}"), Signal(signed(34), name=f"vb{i}")
        m.d.sync += [va.eq(va1), vb.eq(vb1)]
        # POOL accumulators (stage 1 -> register, final during stage 2)
        s1 = stages[1]
        key = Mux(e.a_fp, Mux(ua.raw[i][7], -ua.raw[i][:7], ua.raw[i][:7]), code_a)
        best, total = Signal(signed(10), name=f"best{i}"), Signal(signed(64), name=f"sum{i}")
        with m.If(s1.valid):
            base_best = Mux(s1.pos_first, e.lo_key, best)
            m.d.sync += [best.eq(Mux(key > base_best, key, base_best)),
                         total.eq(Mux(s1.pos_first, 0, total) + va1)]
        # LUT (stage 1 -> final)
        looked = table.word_select(ua.raw[i][:8] & mask, 8)
        # -- ADD: stage 2 lanes A, B and the product; stage 4 the sum; stage 5 lane O
        lane_a, lane_b, lane_o = RequantLane(), RequantLane(), RequantLane()
        m.submodules[f"rq_a{i}"], m.submodules[f"rq_b{i}"] = lane_a, lane_b
        m.submodules[f"rq_o{i}"] = lane_o
        m.d.comb += [lane_a.x.eq(va << ADD_LEFT_SHIFT), lane_a.q.eq(e.qa), lane_a.shift.eq(e.sa),
                     lane_b.x.eq(vb << ADD_LEFT_SHIFT), lane_b.q.eq(e.qb), lane_b.shift.eq(e.sb)]
        prod = [Signal(signed(64), name=f"prod{i}_{k}") for k in range(3)]
        m.d.sync += prod[0].eq(va * vb)
        m.d.sync += [prod[1].eq(prod[0]), prod[2].eq(prod[1])]
        total_ab = Signal(signed(64), name=f"ab{i}")
        m.d.sync += total_ab.eq(lane_a.y + lane_b.y)
        m.d.comb += [
            lane_o.x.eq(Mux(e.is_pool, total, Mux(e.mul, prod[2], total_ab))),
            lane_o.q.eq(e.qo), lane_o.shift.eq(e.so),
        ]
        # -- lane O's result: zero point and clamp, or FP8 clamp and encode
        y = lane_o.y
        with_zp = Signal(signed(66), name=f"zp{i}")
        m.d.comb += with_zp.eq(y + e.zo)
        lo_c = Signal(signed(66), name=f"lo{i}")
        m.d.comb += lo_c.eq(Mux(with_zp < e.plo, e.plo, with_zp))
        int_code = Mux(lo_c > e.phi, e.phi, lo_c)
        enc = Fp8Encode()
        m.submodules[f"fp8enc{i}"] = enc
        m.d.comb += [enc.z.eq(fine_clamp(m, lane_o.z, e.plo_level.level, e.phi_level.level)),
                     enc.enc.eq(e.o_enc)]
        requanted = Mux(e.o_fp, enc.code, int_code[:16])
        # POOL max: the best key two cycles on (stage 4), as a code
        best_code = Mux(e.a_fp & (best < 0), Cat((-best)[:7], Const(1, 1)), best[:8])
        delayed = [Signal(8, name=f"max{i}_{k}") for k in range(2)]
        m.d.sync += [delayed[0].eq(best_code), delayed[1].eq(delayed[0])]
        with m.Switch(e.op):
            with m.Case(0):
                m.d.sync += final.eq(Mux(e.avg, requanted, delayed[1]))
            with m.Case(1):
                m.d.sync += final.eq(requanted)
            with m.Case(2):
                m.d.sync += final.eq(looked)
        m.d.comb += e.packer.codes[i].eq(final)
