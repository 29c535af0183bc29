"""The weight-stationary systolic GEMM core: tile buffers + fold sequencer + PE grid.

One *fold* computes ``OUT[T x C] = A[T x R] @ W[R x C]`` (``timing.py`` has the schedule), each
column optionally block-scaled on its way into the output buffer (``bscale.py``; no extra cycle).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from qasic.arch.config import ArchConfig
from qasic.rtl.bscale import SCALE_BITS, BlockScale, Bscale
from qasic.rtl.pe import PEArray, arch_operands
from qasic.rtl.sequencer import FoldSequencer, addr_width, buffer_depth
from qasic.rtl.skew import Skew


def host_write_signature(addr_bits: int, shape) -> wiring.Signature:
    """A row write port driven by the host: ``en``, ``addr``, ``data`` (all into the core)."""
    return wiring.Signature({"en": Out(1), "addr": Out(addr_bits), "data": Out(shape)})


def host_read_signature(addr_bits: int, shape) -> wiring.Signature:
    """A row read port: ``addr`` in cycle k, ``data`` (registered) valid in cycle k+1."""
    return wiring.Signature({"addr": Out(addr_bits), "data": In(shape)})


class SystolicCore(wiring.Component):
    """An ``R x C`` weight-stationary GEMM core with its own tile buffers.

    R = ``arch.array_rows``, C = ``arch.array_cols``, M = ``arch.gemm_max_rows``. Values are
    signed two's complement: activations ``input_bits``, weights ``weight_bits``, outputs
    ``acc_bits`` (the accumulator wraps; the compiler guarantees no overflow). With
    ``input_shift_bits`` or ``weight_shift_bits`` > 0 that operand is a shift-add pair
    (``pe.Operand``): a significand of the bits above and an unsigned shift, value ``sig << sh``.

    Ports (Verilog names in brackets; clock ``clk``, synchronous reset ``rst``):

    * ``weights`` in [``weights__en/addr/data``]: write weight row ``addr`` (0..R-1) of C values.
    * ``inputs`` in [``inputs__en/addr/data``]: write activation row ``addr`` (0..M-1) of R values.
    * ``outputs`` [``outputs__addr`` in, ``outputs__data`` out]: read output row ``addr``
      (0..M-1) of C values; ``data`` is valid the cycle after ``addr``.
    * ``start`` in, ``rows`` in: launch a fold over T = ``rows`` (1..M) activation rows.
    * ``scale`` in, ``scale_mode`` in: the GEMM block scale (``isa.table.BSCALE_MODES``; the
      ``Bscale`` enum, 0 = none) and C unsigned ``SCALE_BITS`` column scales s. Column c of
      every output row is ``sum << s[c]`` (shift) or ``sum * s[c]`` (mul), wrapped to acc_bits.
    * ``busy`` out: high from the cycle after launch until the cycle before ``done``.
    * ``done`` out: one-cycle pulse; all T output rows are readable from then on.

    Data buses are packed little-end first: element j occupies bits ``[j*w, (j+1)*w)``; a pair
    element has ``sig`` in its low bits and ``sh`` above them.
    The host writes buffers only while idle, not in the launch cycle, and reads outputs after
    ``done``; one row per cycle per port. ``rows``, ``scale`` and ``scale_mode`` are sampled in
    the launch cycle.

    Cycle contract: if ``start`` is high in cycle s (while idle), ``done`` is high in cycle
    ``s + fold_cycles(R, C, T)`` = s + 2R + C + T - 2 and in no cycle between.
    """

    def __init__(self, arch: ArchConfig) -> None:
        self.arch = arch
        r, c, m = arch.array_rows, arch.array_cols, arch.gemm_max_rows
        self.a_op, self.w_op = arch_operands(arch)
        self.w_row = data.ArrayLayout(self.w_op.shape, c)
        self.a_row = data.ArrayLayout(self.a_op.shape, r)
        self.o_row = data.ArrayLayout(signed(arch.acc_bits), c)
        super().__init__({
            "weights": In(host_write_signature(addr_width(r), self.w_row)),
            "inputs": In(host_write_signature(addr_width(m), self.a_row)),
            "outputs": In(host_read_signature(addr_width(m), self.o_row)),
            "start": In(1),
            "rows": In(m.bit_length()),
            "scale": In(data.ArrayLayout(unsigned(SCALE_BITS), c)),
            "scale_mode": In(Bscale),
            "busy": Out(1),
            "done": Out(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        a = self.arch
        r, c = a.array_rows, a.array_cols
        m.submodules.seq = seq = FoldSequencer(r, c, a.gemm_max_rows)
        m.submodules.array = array = PEArray(r, c, self.a_op, self.w_op, a.acc_bits)
        m.submodules.skew = skew = Skew(self.a_op.shape, list(range(r)))
        m.submodules.deskew = deskew = Skew(signed(a.acc_bits), [c - 1 - j for j in range(c)])
        m.d.comb += [
            seq.start.eq(self.start), seq.t.eq(self.rows),
            self.busy.eq(seq.busy), self.done.eq(seq.done),
        ]
        w_rd = self._host_buffer(m, "weight_buf", self.w_row, self.arch.array_rows,
                                 self.weights, seq.w_addr)
        a_rd = self._host_buffer(m, "input_buf", self.a_row, self.arch.gemm_max_rows,
                                 self.inputs, seq.a_addr)
        m.d.comb += [
            array.load.eq(seq.load),
            array.w_top.eq(w_rd.data),
            skew.i.eq(Mux(seq.a_valid, a_rd.data, 0)),
            array.a_left.eq(skew.o),
            deskew.i.eq(array.sums),
        ]
        m.submodules.bscale = bscale = BlockScale(c, a.acc_bits)
        m.d.comb += bscale.i.eq(deskew.o)
        self._hold_scale(m, seq, bscale)
        self._output_buffer(m, seq, bscale.o)
        return m

    def _hold_scale(self, m: Module, seq: FoldSequencer, bscale: BlockScale) -> None:
        """Scale and mode as sampled at launch; the launch cycle itself writes no output row."""
        scale, mode = Signal.like(self.scale), Signal.like(self.scale_mode)
        with m.If(seq.launch):
            m.d.sync += [scale.eq(self.scale), mode.eq(self.scale_mode)]
        m.d.comb += [bscale.scale.eq(scale), bscale.mode.eq(mode)]

    def _host_buffer(self, m: Module, name: str, shape, depth: int, port, addr):
        """A buffer the host fills through ``port`` and the fold reads at ``addr``.

        Transparent: a row written in the cycle before launch is already seen by the fold.
        """
        mem = Memory(shape=shape, depth=buffer_depth(depth), init=[])
        m.submodules[name] = mem
        host = mem.write_port()
        rd = mem.read_port(transparent_for=(host,))
        _drive_write(m, host, port)
        m.d.comb += rd.addr.eq(addr)
        return rd

    def _output_buffer(self, m: Module, seq: FoldSequencer, row) -> None:
        mem = Memory(shape=self.o_row, depth=buffer_depth(self.arch.gemm_max_rows), init=[])
        m.submodules.output_buf = mem
        wr, host = mem.write_port(), mem.read_port()
        m.d.comb += [
            wr.en.eq(seq.o_en), wr.addr.eq(seq.o_addr), wr.data.eq(row),
            host.addr.eq(self.outputs.addr), self.outputs.data.eq(host.data),
        ]


def _drive_write(m: Module, port, host) -> None:
    m.d.comb += [port.en.eq(host.en), port.addr.eq(host.addr), port.data.eq(host.data)]
