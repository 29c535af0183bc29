"""The two DMA units: ``DmaLoad`` (LOAD, fill, GATHER) and ``DmaStore`` (STORE, SCATTER).

Both issue at the data rate: one *slot* per cycle, each slot one AXI data beat (B =
``dram.bytes_per_cycle`` bytes, an aligned DRAM word), a fill write of C = ``array.cols`` bytes, or
an idle slot. A row of n bytes at DRAM address a takes ceil((a mod B + n) / B) beats (the aligned
words it touches); beat k writes (or reads) the scratchpad with its lane 0 at
``sram_row - (a mod B) + k*B``, the lanes outside the row masked, so the scratchpad's rotation does
the realignment (no buffer in the DMA). The first slot is the cycle after ``start``; a burst's AR
(AW) goes out in the slot of its first beat and bursts never cross a ``axi.MAX_BURST``-beat
boundary (nor 4 KiB), so issue needs no extra cycles.

GATHER / SCATTER run in chunks of ``INDEX_CHUNK`` (K) indices: the chunk's int32 indices are read
(beats of a K*4-byte row at ``idx_addr + 4*K*c``) into an index buffer, the unit waits for them to
land, then issues the chunk's table rows. Each table row takes a fixed ``Rg`` slots, the most any
index can need, idle slots first, so the timing never depends on the index values:
``Rg = ceil((o_max + row_bytes) / B)``, ``o_max = (table_addr mod G) + B - G``, G = gcd(B,
table_stride) (the largest offset mod B that ``table_addr + idx*table_stride`` can have). An
index outside [0, vocab) is found in its row's first slot: the unit raises the sticky ``error``
(``error_code`` ``ERR_INDEX``) and stops (no beat of that row is issued; ``busy`` stays high).

Cycles (``unit_control`` definitions: busy b, done d counted from the start cycle; L =
``dram.latency_cycles`` as ``rtl.dram_model`` defines it, K = INDEX_CHUNK):

* LOAD:    T = sum over rows of ceil((a_r mod B + row_bytes) / B), a_r = dram_addr +
  p*dram_plane_stride + r*dram_stride;  (b, d) = (T, T + L)
* STORE:   same T;  (b, d) = (T, T + L + 1)  (the scratchpad read adds one cycle before W)
* fill:    T = planes * rows * ceil(row_bytes / C);  (b, d) = (T, T + 1)
* GATHER:  T = nc*(L - 1) + sum_c ceil((a_c mod B + 4*k_c) / B) + count*Rg with nc =
  ceil(count / K) chunks c of k_c = min(K, count - c*K) indices at a_c = idx_addr + 4*K*c;
  (b, d) = (T, T + L)
* SCATTER: same T;  (b, d) = (T, T + L + 1)
* a copy of zero planes, rows, bytes or indices: (b, d) = (1, 2), no DRAM traffic
* in order: ``done`` pulses once per instruction in issue order, at most one per cycle, so the
  instruction completes at end_i = max(start_i + d_i, end_(i-1) + 1) (a fill after a LOAD waits
  for the LOAD's data). ``cycles`` below computes (b, d).

These hold when the AXI slave accepts every request at once and answers with ``rtl.dram_model``'s
latency; a slower slave stalls the slots (correct, later).

Program rule: a fill writes its bytes in its own slots while the data of earlier LOADs of the
queue may still be landing, so a fill must not overwrite bytes an earlier, still-landing LOAD or
GATHER writes (the compiler's padding fills and band loads are disjoint); LOAD after LOAD and
fill after fill keep program order. Build parameters (``check_arch``): B a power of two in
4..128, L >= 2; the landing and response queues hold ``fifo_depth(arch)`` (~L + 36) entries, so
the Verilog depends on L. Refused at runtime with ``error``
(``refusal`` says the same before simulation): a mem the unit has no port into (the accumulator;
DmaStore: any but ``STORE_MEMS``), STORE with fill = 1, an ``idx_addr`` not a multiple of 4.
"""

from __future__ import annotations

from math import gcd

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.data import View
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import Out
from amaranth.utils import ceil_log2, exact_log2

from qasic.arch.config import ArchConfig
from qasic.isa.encoding import Instr
from qasic.isa.layouts import INSTR, LAYOUTS
from qasic.isa.packing import GATHER_INDEX_BYTES
from qasic.isa.table import BY_NAME, MEMS, WORD_BITS
from qasic.rtl.axi import ADDR_BITS, BURST_INCR, MAX_BURST, axi_master, data_bytes
from qasic.rtl.ports import read_port, sram_addr_bits, unit_control, write_port

LOAD_MEMS = ("input", "weight", "output", "param")   # the compiler never DMAs the accumulator
STORE_MEMS = ("output",)                              # every STORE / SCATTER the compiler emits
INDEX_CHUNK = 16                                      # K: indices per GATHER / SCATTER chunk
MIN_LATENCY = 2                                       # dram.latency_cycles the units support
ERR_INDEX = 1       # a GATHER / SCATTER index outside [0, vocab)
ERR_MEM = 2         # a scratchpad the unit has no port into
ERR_FILL = 3        # STORE with fill = 1
ERR_IDX_ALIGN = 4   # idx_addr not a multiple of 4
ERROR_TEXT = {ERR_INDEX: "index outside [0, vocab)", ERR_MEM: "mem not DMA-addressable here",
              ERR_FILL: "STORE with fill = 1", ERR_IDX_ALIGN: "idx_addr not a multiple of 4"}

# (member, scratchpad) of every scratchpad port, for the top's port table
LOAD_PORTS = tuple((f"{mem}_{kind}", mem) for mem in LOAD_MEMS for kind in ("write", "fill"))
STORE_PORTS = tuple((f"{mem}_read", mem) for mem in STORE_MEMS)

_OP = {name: BY_NAME[name].code for name in ("LOAD", "STORE", "GATHER", "SCATTER")}
_IDLE, _ZERO, _FILL, _COPY, _IDX, _GROW, _ERR = range(7)
_SRAM_BITS = 26     # scratchpad address arithmetic (24-bit fields, negative beat offsets)


# ---- the cycle formula and the pre-simulation check, for the simulator and the top ----------

def _ceil(a, b):
    return -(-a // b)


def row_beats(addr: int, plane_stride: int, stride: int, planes: int, rows: int, n: int,
              b: int) -> int:
    """Sum over the planes x rows rows of ceil((row_addr mod b + n) / b): row offsets mod b
    repeat with period b in p and in r, so this is a weighted b x b table (numpy)."""
    if planes == 0 or rows == 0 or n == 0:
        return 0
    ip, ir = np.arange(min(planes, b)), np.arange(min(rows, b))
    off = (addr + ip[:, None] * plane_stride + ir[None, :] * stride) % b
    weight = _ceil(planes - ip, b)[:, None] * _ceil(rows - ir, b)[None, :]
    return int((weight * _ceil(off + n, b)).sum())


def gather_row_slots(table_addr: int, table_stride: int, row_bytes: int, b: int) -> int:
    """Rg: slots per GATHER / SCATTER row, the beats of the worst-aligned index."""
    g = gcd(b, table_stride)
    return _ceil(table_addr % g + b - g + row_bytes, b)


def cycles(ins: Instr, arch: ArchConfig) -> tuple[int, int]:
    """(busy, done) of a LOAD, STORE, GATHER or SCATTER on these units (module docstring)."""
    b, lat = data_bytes(arch), arch.dram_latency_cycles
    extra = 1 if ins.op in ("STORE", "SCATTER") else 0
    if ins.op in ("LOAD", "STORE"):
        planes, rows, n = ins["planes"], ins["rows"], ins["row_bytes"]
        if planes * rows * n == 0:
            return 1, 2
        if ins["fill"]:
            t = planes * rows * _ceil(n, arch.array_cols)
            return t, t + 1
        t = row_beats(ins["dram_addr"], ins["dram_plane_stride"], ins["dram_stride"], planes,
                      rows, n, b)
        return t, t + lat + extra
    count, n = ins["count"], ins["row_bytes"]
    if count * n == 0:
        return 1, 2
    k, a = INDEX_CHUNK, ins["idx_addr"]
    first = range(0, count, k)
    t = len(first) * (lat - 1) + sum(_ceil((a + GATHER_INDEX_BYTES * c) % b
                                           + GATHER_INDEX_BYTES * min(k, count - c), b)
                                     for c in first)
    t += count * gather_row_slots(ins["table_addr"], ins["table_stride"], n, b)
    return t, t + lat + extra


def durations(op: str, f, arch: ArchConfig):
    """``cycles`` for ``sim.timing``'s rows: ``f`` maps field names to ints (one instruction)
    or to equal-length arrays (every instruction of opcode ``op``); returns (busy, done) as
    numpy arrays. Vectorized; only 3-D copies with a DRAM address or stride that is not a
    multiple of B go through ``row_beats`` one by one."""
    b, lat, k = data_bytes(arch), arch.dram_latency_cycles, INDEX_CHUNK
    extra = 1 if op in ("STORE", "SCATTER") else 0

    def col(name):
        return np.asarray(f[name], dtype=np.int64)
    if op in ("LOAD", "STORE"):
        planes, rows, n = col("planes"), col("rows"), col("row_bytes")
        fill = col("fill") != 0
        addr, ps, st = col("dram_addr"), col("dram_plane_stride"), col("dram_stride")
        t = planes * rows * _ceil(addr % b + n, b)  # exact when every row has addr's offset
        varies = ((ps % b != 0) & (planes > 1)) | ((st % b != 0) & (rows > 1))
        odd = np.broadcast_to(varies & ~fill, t.shape)
        if odd.any():
            t = np.array(t, copy=True).reshape(-1)
            cols = [np.broadcast_to(x, odd.shape).reshape(-1)
                    for x in (addr, ps, st, planes, rows, n)]
            for i in np.flatnonzero(odd.reshape(-1)):
                t[i] = row_beats(*(int(c[i]) for c in cols), b)
            t = t.reshape(odd.shape)
        t_fill = planes * rows * _ceil(n, arch.array_cols)
        zero = planes * rows * n == 0
        busy = np.where(zero, 1, np.where(fill, t_fill, t))
        done = np.where(zero, 2, np.where(fill, t_fill + 1, t + lat + extra))
        return busy, done
    count, n, a = col("count"), col("row_bytes"), col("idx_addr")
    full, last = count // k, count % k
    if (GATHER_INDEX_BYTES * k) % b == 0:  # every chunk starts at idx_addr's offset
        o = a % b
        idx_beats = full * _ceil(o + GATHER_INDEX_BYTES * k, b) \
            + np.where(last > 0, _ceil(o + GATHER_INDEX_BYTES * last, b), 0)
    else:  # B > 4K: chunk offsets cycle through (a + 4Kc) mod B; the index bytes are
        idx_beats = np.vectorize(lambda a, c: sum(  # read in chunk after chunk
            _ceil((a + GATHER_INDEX_BYTES * c0) % b + GATHER_INDEX_BYTES * min(k, c - c0), b)
            for c0 in range(0, c, k)))(a, count)
    g = np.gcd(b, col("table_stride"))
    rg = _ceil(col("table_addr") % g + b - g + n, b)
    t = _ceil(count, k) * (lat - 1) + idx_beats + count * rg
    zero = count * n == 0
    return np.where(zero, 1, t), np.where(zero, 2, t + lat + extra)


def refusal(ins: Instr, arch: ArchConfig) -> str | None:
    """Why these units would stop on ``ins`` with an error (one line), or None."""
    if ins.op not in _OP:
        return None
    mems = LOAD_MEMS if ins.op in ("LOAD", "GATHER") else STORE_MEMS
    if ins["mem"] not in mems:
        return (f"{ins.op} mem = {ins['mem']}: the RTL DMA moves {ins.op} data only to/from "
                f"{', '.join(mems)}")
    if ins.op == "STORE" and ins["fill"]:
        return "STORE fill = 1: fill is for LOAD only"
    if ins.op in ("GATHER", "SCATTER") and ins["idx_addr"] % GATHER_INDEX_BYTES:
        return (f"{ins.op} idx_addr = {ins['idx_addr']}: the RTL DMA reads int32 indices at "
                f"multiples of {GATHER_INDEX_BYTES}")
    return None


def check_arch(arch: ArchConfig) -> None:
    """The DMA's build parameters: B a power of two >= 4 (one int32 index per beat at least),
    latency >= MIN_LATENCY."""
    b = data_bytes(arch)
    if b < GATHER_INDEX_BYTES:
        raise ValueError(f"dram.bytes_per_cycle = {b}: the RTL DMA needs at least "
                         f"{GATHER_INDEX_BYTES} (an int32 GATHER index per beat)")
    if arch.dram_latency_cycles < MIN_LATENCY:
        raise ValueError(f"dram.latency_cycles = {arch.dram_latency_cycles}: the RTL DRAM model "
                         f"and DMA need at least {MIN_LATENCY}")


def fifo_depth(arch: ArchConfig) -> int:
    """Entries of the landing / response queues: every beat in flight at full rate fits."""
    return max(16, 1 << ceil_log2(arch.dram_latency_cycles + 2 * MAX_BURST + 4))


# ---- the shared issue engine -----------------------------------------------------------------

class _Dma(wiring.Component):
    """Instruction latch, slot walker (3-D rows, fills, index chunks, gathered rows), index
    buffer and in-order ``done``. Subclasses add the AXI channels and scratchpad ports."""

    def __init__(self, arch: ArchConfig, members: dict) -> None:
        check_arch(arch)
        self.arch = arch
        self.B = data_bytes(arch)
        self.lb = exact_log2(self.B)
        self.C = arch.array_cols
        self.depth = fifo_depth(arch)
        super().__init__({"ctl": Out(unit_control()), "axi": Out(axi_master(self.B)), **members})

    def _engine(self, m: Module, mems: tuple[str, ...]):
        """Build the issue engine; return a namespace of its per-cycle signals."""
        B, lb, C, K = self.B, self.lb, self.C, INDEX_CHUNK
        ctrl = self.ctl
        e = _Ns()
        ins = e.ins = Signal(WORD_BITS)
        d, g = View(LAYOUTS["LOAD"], ins), View(LAYOUTS["GATHER"], ins)
        e.d, e.g = d, g
        phase = e.phase = Signal(range(7))
        j = Signal(21)                       # slot within the current row
        fpos = Signal(21)                    # fill: byte offset within the row
        p_left, r_left = Signal(16), Signal(16)
        d_plane, d_row = Signal(ADDR_BITS), Signal(ADDR_BITS)
        s_plane, s_row = Signal(_SRAM_BITS), Signal(_SRAM_BITS)
        rows_left = Signal(16)               # indexed: rows still to issue
        chunk_rows, ci = Signal(range(K + 1)), Signal(range(K + 1))
        i_addr = Signal(ADDR_BITS)           # indexed: DRAM address of this chunk's indices
        il_pending = e.il_pending = Signal(range(4 * K + 2))  # index beats issued, not landed
        error, code = Signal(), Signal(8)
        m.d.comb += [ctrl.error.eq(error), ctrl.error_code.eq(code)]
        e.mem = Signal(3)
        m.d.comb += e.mem.eq(d.mem.as_value())

        # index buffer: beat p of a chunk fills words [p*B/4, (p+1)*B/4)
        wpb = B // GATHER_INDEX_BYTES
        ibuf = [Signal(32, name=f"ibuf{w}") for w in range(_ceil(B - 4 + 4 * K, B) * wpb)]
        e.ib_we, e.ib_pos, e.ib_data = Signal(), Signal(range(len(ibuf) // wpb + 1)), Signal(8 * B)
        for w, word in enumerate(ibuf):
            with m.If(e.ib_we & (e.ib_pos == w // wpb)):
                m.d.sync += word.eq(e.ib_data.word_select(w % wpb, 32))
        e.ib_land = Signal()                 # an index beat lands this cycle
        idx_word = Signal(range(len(ibuf)))
        m.d.comb += idx_word.eq(i_addr[2:lb] + ci if lb > 2 else ci)
        idx = Signal(32)
        with m.Switch(idx_word):
            for w, word in enumerate(ibuf):
                with m.Case(w):
                    m.d.comb += idx.eq(word)

        # the current row: (DRAM address, bytes, idle slots before its beats)
        row_dram, n, pad = Signal(ADDR_BITS), Signal(21), Signal(21)
        g_dram = Signal(ADDR_BITS)
        m.d.comb += g_dram.eq(g.table_addr + idx[:24] * g.table_stride)
        stride_low = Signal(lb)              # lowest set bit of table_stride below B, or 0
        m.d.comb += stride_low.eq(g.table_stride[:lb] & (~g.table_stride[:lb] + 1))
        gmask = Signal(lb)                   # G - 1
        m.d.comb += gmask.eq(Mux(stride_low == 0, B - 1, stride_low - 1))
        rg = Signal(22)
        m.d.comb += rg.eq((g.table_addr[:lb] & gmask) + (B - 1 - gmask) + g.row_bytes + B - 1
                          >> lb)
        g_beats = Signal(22)
        m.d.comb += g_beats.eq(g_dram[:lb] + g.row_bytes + B - 1 >> lb)
        with m.Switch(phase):
            with m.Case(_COPY):
                m.d.comb += [row_dram.eq(d_row), n.eq(d.row_bytes)]
            with m.Case(_IDX):
                m.d.comb += [row_dram.eq(i_addr), n.eq(chunk_rows * GATHER_INDEX_BYTES)]
            with m.Case(_GROW):
                m.d.comb += [row_dram.eq(g_dram), n.eq(g.row_bytes), pad.eq(rg - g_beats)]
        o = Signal(lb)
        m.d.comb += o.eq(row_dram[:lb])
        k = Signal(21)
        m.d.comb += k.eq(j - pad)
        e.is_beat = Signal()
        m.d.comb += e.is_beat.eq(((phase == _COPY) | (phase == _IDX) | (phase == _GROW))
                                 & (j >= pad))
        pos = Signal(22)
        m.d.comb += pos.eq(k << lb)
        rem = Signal(23)
        m.d.comb += rem.eq(o + n - pos)
        row_last = Signal()
        m.d.comb += row_last.eq(e.is_beat & (rem <= B))
        e.word = Signal(ADDR_BITS - lb)
        m.d.comb += e.word.eq(row_dram[lb:] + k)
        e.mask = Signal(B)
        m.d.comb += e.mask.eq(Cat(((pos != 0) | (i >= o)) & (i < rem) for i in range(B)))
        wb = e.word[:exact_log2(MAX_BURST)]
        e.bstart = Signal()
        m.d.comb += e.bstart.eq(e.is_beat & ((k == 0) | (wb == 0)))
        left_m1 = Signal(21)
        m.d.comb += left_m1.eq((rem - 1) >> lb)
        e.blen = Signal(8)
        m.d.comb += e.blen.eq(Mux(left_m1 < MAX_BURST - 1 - wb, left_m1, MAX_BURST - 1 - wb))
        e.sram = Signal(_SRAM_BITS)          # scratchpad address of this beat's lane 0
        m.d.comb += e.sram.eq(s_row - o + pos)
        e.k = k
        # fills: C lanes at s_row + fpos
        frem = Signal(22)
        m.d.comb += frem.eq(d.row_bytes - fpos)
        e.fill_addr, e.fill_mask = Signal(_SRAM_BITS), Signal(C)
        m.d.comb += [e.fill_addr.eq(s_row + fpos),
                     e.fill_mask.eq(Cat(i < frem for i in range(C)))]

        # bounds check of a gathered row in its first slot
        bad_idx = Signal()
        m.d.comb += bad_idx.eq((phase == _GROW) & (j == 0) & (il_pending == 0)
                               & (idx[31] | (idx[:31] >= g.vocab)))
        e.bad_idx = bad_idx

        # which row is the instruction's last, and the slot that ends it
        last_row = Signal()
        m.d.comb += last_row.eq(Mux(phase == _GROW, rows_left == 1,
                                    (phase == _COPY) & (r_left == 1) & (p_left == 1)))
        e.last_row = last_row
        e.left_m1 = left_m1
        fill_last = Signal()
        m.d.comb += fill_last.eq((frem <= C) & (r_left == 1) & (p_left == 1))
        last_slot = Signal()
        with m.Switch(phase):
            with m.Case(_ZERO):
                m.d.comb += last_slot.eq(1)
            with m.Case(_FILL):
                m.d.comb += last_slot.eq(fill_last)
            with m.Case(_COPY, _GROW):
                m.d.comb += last_slot.eq(row_last & last_row)
        e.last_slot = last_slot

        # a slot fires unless the subclass stalls it (e.stall, driven by the subclass)
        e.stall = Signal()
        e.fire = Signal()
        active = (phase != _IDLE) & (phase != _ERR) & ((phase != _GROW) | (il_pending == 0))
        m.d.comb += e.fire.eq(active & ~e.stall & ~bad_idx)
        e.beat = Signal()                    # a data beat (COPY / GROW) issues this cycle
        e.ibeat = Signal()                   # an index beat issues this cycle
        m.d.comb += [e.beat.eq(e.fire & e.is_beat & (phase != _IDX)),
                     e.ibeat.eq(e.fire & (phase == _IDX))]
        e.fill = Signal()
        m.d.comb += e.fill.eq(e.fire & (phase == _FILL))

        with m.If(e.ibeat & ~e.ib_land):
            m.d.sync += il_pending.eq(il_pending + 1)
        with m.Elif(~e.ibeat & e.ib_land):
            m.d.sync += il_pending.eq(il_pending - 1)

        def next_3d_row():
            with m.If(r_left == 1):
                m.d.sync += [p_left.eq(p_left - 1), r_left.eq(d.rows),
                             d_plane.eq(d_plane + d.dram_plane_stride),
                             d_row.eq(d_plane + d.dram_plane_stride),
                             s_plane.eq(s_plane + d.sram_plane_stride),
                             s_row.eq(s_plane + d.sram_plane_stride)]
            with m.Else():
                m.d.sync += [r_left.eq(r_left - 1), d_row.eq(d_row + d.dram_stride),
                             s_row.eq(s_row + d.sram_stride)]

        with m.If(e.fire), m.Switch(phase):
            with m.Case(_ZERO):
                m.d.sync += phase.eq(_IDLE)
            with m.Case(_FILL):
                with m.If(frem <= C):
                    m.d.sync += fpos.eq(0)
                    next_3d_row()
                    with m.If(fill_last):
                        m.d.sync += phase.eq(_IDLE)
                with m.Else():
                    m.d.sync += fpos.eq(fpos + C)
            with m.Case(_COPY):
                with m.If(row_last):
                    m.d.sync += j.eq(0)
                    next_3d_row()
                    with m.If(last_row):
                        m.d.sync += phase.eq(_IDLE)
                with m.Else():
                    m.d.sync += j.eq(j + 1)
            with m.Case(_IDX):
                with m.If(row_last):
                    m.d.sync += [j.eq(0), ci.eq(0), phase.eq(_GROW)]
                with m.Else():
                    m.d.sync += j.eq(j + 1)
            with m.Case(_GROW):
                with m.If(row_last):
                    m.d.sync += [j.eq(0), ci.eq(ci + 1), rows_left.eq(rows_left - 1),
                                 s_row.eq(s_row + g.sram_stride)]
                    with m.If(last_row):
                        m.d.sync += phase.eq(_IDLE)
                    with m.Elif(ci + 1 == chunk_rows):
                        m.d.sync += [phase.eq(_IDX), i_addr.eq(i_addr + 4 * K),
                                     chunk_rows.eq(Mux(rows_left - 1 < K, rows_left - 1,
                                                       K))]
                with m.Else():
                    m.d.sync += j.eq(j + 1)
        with m.If(bad_idx):
            m.d.sync += [phase.eq(_ERR), error.eq(1), code.eq(ERR_INDEX)]

        # in-order done: a queue of kinds (1 = fast: fill or empty copy; 0 = DRAM) in issue
        # order; DRAM instructions finish in order among themselves (AXI), fast ones among
        # themselves; done pulses for the head once its kind has a completion
        order = m.submodules.order = SyncFIFO(width=1, depth=self.depth)
        e.slow_evt, fast_evt = Signal(), Signal()
        m.d.comb += fast_evt.eq(e.fire & last_slot & ((phase == _ZERO) | (phase == _FILL)))
        # completions not yet reported, per kind (with a slow slave, a DRAM instruction may
        # complete while fast ones issued before it still wait behind an older one)
        fast_pend, slow_pend = Signal(range(self.depth + 1)), Signal(range(self.depth + 1))
        head_fast = order.r_data[0]
        fast_avail = (fast_pend != 0) | fast_evt
        slow_avail = (slow_pend != 0) | e.slow_evt
        m.d.comb += [order.r_en.eq(order.r_rdy & Mux(head_fast, fast_avail, slow_avail)),
                     ctrl.done.eq(order.r_en)]
        m.d.sync += [fast_pend.eq(fast_pend + fast_evt - (order.r_en & head_fast)),
                     slow_pend.eq(slow_pend + e.slow_evt - (order.r_en & ~head_fast))]

        # busy, and accepting an instruction
        m.d.comb += ctrl.busy.eq(error | ~order.w_rdy
                                 | ~((phase == _IDLE) | (e.fire & last_slot)))
        view = View(INSTR, ctrl.instr)
        nd, ng = view.LOAD, view.GATHER
        op = view.header.opcode.as_value()
        indexed = (op == _OP["GATHER"]) | (op == _OP["SCATTER"])
        zero = Mux(indexed, (ng.count == 0) | (ng.row_bytes == 0),
                   (nd.planes == 0) | (nd.rows == 0) | (nd.row_bytes == 0))
        mem_ok = Cat(nd.mem.as_value() == MEMS.index(x) for x in mems).any()
        is_store = op == _OP["STORE"]
        fill = nd.fill & ~indexed
        bad = Signal(8)
        m.d.comb += bad.eq(Mux(~mem_ok, ERR_MEM, Mux(is_store & nd.fill, ERR_FILL,
                               Mux(indexed & (ng.idx_addr[:2] != 0), ERR_IDX_ALIGN, 0))))
        with m.If(ctrl.start):
            m.d.sync += [ins.eq(ctrl.instr), j.eq(0), fpos.eq(0),
                         p_left.eq(nd.planes), r_left.eq(nd.rows),
                         d_plane.eq(nd.dram_addr), d_row.eq(nd.dram_addr),
                         s_plane.eq(Mux(indexed, ng.sram_addr, nd.sram_addr)),
                         s_row.eq(Mux(indexed, ng.sram_addr, nd.sram_addr)),
                         rows_left.eq(ng.count), ci.eq(0), i_addr.eq(ng.idx_addr),
                         chunk_rows.eq(Mux(ng.count < K, ng.count, K))]
            with m.If(bad != 0):
                m.d.sync += [phase.eq(_ERR), error.eq(1), code.eq(bad)]
            with m.Elif(zero):
                m.d.sync += phase.eq(_ZERO)
            with m.Elif(indexed):
                m.d.sync += phase.eq(_IDX)
            with m.Elif(fill):
                m.d.sync += phase.eq(_FILL)
            with m.Else():
                m.d.sync += phase.eq(_COPY)
        m.d.comb += [order.w_en.eq(ctrl.start & (bad == 0)), order.w_data.eq(zero | fill)]
        return e


class _Ns:
    """A plain namespace for the engine's signals."""


# ---- DmaLoad ---------------------------------------------------------------------------------

class DmaLoad(_Dma):
    """LOAD (DRAM -> scratchpad, 3-D strided; fill = 1 writes fill_byte), GATHER.

    Members: ``ctl`` (``ports.unit_control``), ``axi`` (``axi.axi_master``: AR and R used, AW,
    W idle), and per mem of ``LOAD_MEMS`` (input, weight, output, param) two scratchpad write
    ports: ``<mem>_write`` (B lanes: DRAM data, one beat per cycle) and ``<mem>_fill`` (C lanes:
    fills), each ``ports.write_port(sram_addr_bits(arch, mem), lanes)``.

    Read beats are written to the scratchpad in the cycle their R beat is valid (comb from R);
    a landing queue (``fifo_depth`` entries: mem, lane-0 address, lane mask, last) pairs R beats
    with the slots that requested them.
    """

    def __init__(self, arch: ArchConfig) -> None:
        b = data_bytes(arch)
        members = {}
        for mem in LOAD_MEMS:
            bits = sram_addr_bits(arch, mem)
            members[f"{mem}_write"] = Out(write_port(bits, b))
            members[f"{mem}_fill"] = Out(write_port(bits, arch.array_cols))
        super().__init__(arch, members)

    def elaborate(self, platform) -> Module:
        m = Module()
        e = self._engine(m, LOAD_MEMS)
        B, axi = self.B, self.axi
        land = m.submodules.land = SyncFIFO(width=1 + 3 + _SRAM_BITS + B + 1, depth=self.depth)
        # an AR goes out only with room for its whole burst in the landing queue
        room = Signal()
        m.d.comb += room.eq(land.level + e.blen + 1 <= self.depth)
        need_ar = e.is_beat & e.bstart & ~e.bad_idx & (e.phase != 0)
        m.d.comb += [
            axi.arvalid.eq(need_ar & room & ((e.phase != _GROW) | (e.il_pending == 0))),
            axi.araddr.eq(e.word << self.lb), axi.arlen.eq(e.blen), axi.arsize.eq(self.lb),
            axi.arburst.eq(BURST_INCR),
            e.stall.eq(need_ar & ~(axi.arvalid & axi.arready)),
            axi.rready.eq(1),
            axi.awvalid.eq(0), axi.wvalid.eq(0), axi.bready.eq(1),
        ]
        to_idx = e.phase == _IDX
        addr = Mux(to_idx, e.k, e.sram)
        m.d.comb += [land.w_en.eq(e.beat | e.ibeat),
                     land.w_data.eq(Cat(to_idx, e.mem, addr[:_SRAM_BITS], e.mask,
                                        e.last_slot))]
        # R: land the beat its queue entry names
        r_idx, r_mem = land.r_data[0], land.r_data[1:4]
        r_addr = land.r_data[4:4 + _SRAM_BITS]
        r_mask = land.r_data[4 + _SRAM_BITS:4 + _SRAM_BITS + B]
        r_last = land.r_data[4 + _SRAM_BITS + B]
        got = axi.rvalid & land.r_rdy
        m.d.comb += [land.r_en.eq(got), e.slow_evt.eq(got & ~r_idx & r_last),
                     e.ib_we.eq(got & r_idx), e.ib_land.eq(got & r_idx),
                     e.ib_pos.eq(r_addr), e.ib_data.eq(axi.rdata)]
        fill_byte = e.d.fill_byte
        for mem in LOAD_MEMS:
            w, f = getattr(self, f"{mem}_write"), getattr(self, f"{mem}_fill")
            sel = r_mem == MEMS.index(mem)
            m.d.comb += [w.en.eq(got & ~r_idx & sel), w.addr.eq(r_addr),
                         w.data.as_value().eq(axi.rdata), w.mask.eq(r_mask)]
            m.d.comb += [f.en.eq(e.fill & (e.mem == MEMS.index(mem))), f.addr.eq(e.fill_addr),
                         f.data.as_value().eq(Cat(fill_byte for _ in range(self.C))),
                         f.mask.eq(e.fill_mask)]
        return m


# ---- DmaStore --------------------------------------------------------------------------------

class DmaStore(_Dma):
    """STORE (scratchpad -> DRAM, 3-D strided), SCATTER (rows to table rows by DRAM indices).

    Members: ``ctl``, ``axi`` (AW, W, B for data; AR, R for SCATTER's indices), and per mem of
    ``STORE_MEMS`` (output) a scratchpad read port ``<mem>_read``
    (``ports.read_port(sram_addr_bits(arch, mem), B)``). A beat's scratchpad read is in its slot,
    its W beat in the next cycle (wstrb = the row's bytes in that word); ``done`` is the B
    response of the instruction's last burst.
    """

    def __init__(self, arch: ArchConfig, mems: tuple[str, ...] = STORE_MEMS) -> None:
        self.mems = tuple(mems)
        b = data_bytes(arch)
        members = {f"{mem}_read": Out(read_port(sram_addr_bits(arch, mem), b)) for mem in mems}
        super().__init__(arch, members)

    def elaborate(self, platform) -> Module:
        m = Module()
        e = self._engine(m, self.mems)
        B, lb, axi = self.B, self.lb, self.axi
        # index beats: AR, R straight into the index buffer (only indices are read)
        land = m.submodules.land = SyncFIFO(width=_SRAM_BITS, depth=self.depth)
        room = Signal()
        m.d.comb += room.eq(land.level + e.blen + 1 <= self.depth)
        need_ar = (e.phase == _IDX) & e.bstart
        need_aw = e.is_beat & e.bstart & (e.phase != _IDX) & ~e.bad_idx & \
            ((e.phase != _GROW) | (e.il_pending == 0))
        bexp = m.submodules.bexp = SyncFIFO(width=1, depth=self.depth)
        wvalid, wstrb, wlast = Signal(), Signal(B), Signal()
        wmem = Signal(range(len(self.mems)))
        burst_left = Signal(8)               # beats of the current burst after this one
        w_blocked = wvalid & ~axi.wready
        aw_sent = Signal()
        with m.If(e.fire):
            m.d.sync += aw_sent.eq(0)
        with m.Elif(axi.awvalid & axi.awready):
            m.d.sync += aw_sent.eq(1)
        m.d.comb += [
            axi.arvalid.eq(need_ar & room), axi.araddr.eq(e.word << lb), axi.arlen.eq(e.blen),
            axi.arsize.eq(lb), axi.arburst.eq(BURST_INCR), axi.rready.eq(1),
            # AW never waits for W (AXI: a valid does not depend on a ready); a burst whose AW
            # went out while W was blocked remembers it (aw_sent) until its first beat's slot
            axi.awvalid.eq(need_aw & bexp.w_rdy & ~aw_sent), axi.awaddr.eq(e.word << lb),
            axi.awlen.eq(e.blen), axi.awsize.eq(lb), axi.awburst.eq(BURST_INCR),
            e.stall.eq((need_ar & ~(axi.arvalid & axi.arready))
                       | (need_aw & ~aw_sent & ~(axi.awvalid & axi.awready))
                       | (e.is_beat & (e.phase != _IDX) & w_blocked)),
            land.w_en.eq(e.ibeat), land.w_data.eq(e.k),
            land.r_en.eq(axi.rvalid & land.r_rdy),
            e.ib_we.eq(land.r_en), e.ib_land.eq(land.r_en), e.ib_pos.eq(land.r_data),
            e.ib_data.eq(axi.rdata),
            # the burst holding the instruction's last beat answers its done
            bexp.w_en.eq(axi.awvalid & axi.awready),
            bexp.w_data.eq(e.last_row & (e.blen == e.left_m1)),
            axi.bready.eq(1), bexp.r_en.eq(axi.bvalid & bexp.r_rdy),
            e.slow_evt.eq(bexp.r_en & bexp.r_data[0]),
        ]
        blen_now = Mux(e.bstart, e.blen, burst_left)
        with m.If(e.beat):
            m.d.sync += [wvalid.eq(1), wstrb.eq(e.mask), wlast.eq(blen_now == 0),
                         burst_left.eq(blen_now - 1)]
        with m.Elif(axi.wready):
            m.d.sync += wvalid.eq(0)
        for i, mem in enumerate(self.mems):
            r = getattr(self, f"{mem}_read")
            sel = e.mem == MEMS.index(mem)
            m.d.comb += [r.en.eq(e.beat & sel), r.addr.eq(e.sram)]
            with m.If(e.beat & sel):
                m.d.sync += wmem.eq(i)
        data = Signal(8 * B)
        with m.Switch(wmem):
            for i, mem in enumerate(self.mems):
                with m.Case(i):
                    m.d.comb += data.eq(getattr(self, f"{mem}_read").data.as_value())
        m.d.comb += [axi.wvalid.eq(wvalid), axi.wdata.eq(data), axi.wstrb.eq(wstrb),
                     axi.wlast.eq(wlast)]
        return m


