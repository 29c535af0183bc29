"""The whole accelerator: loader, three queues, token FIFOs, execution units, scratchpads, AXI.

``UNITS`` is the one table of what runs where: per unit its queue, the opcodes it executes, its
class, and which scratchpad each of its memory ports reaches. Everything else derives from it:
the queues' routing, the scratchpads' port lists, the opcodes ``rtl.limits`` lets through.

Ports of ``Accelerator(arch)`` (Verilog ``<member>`` or ``<member>__<field>``; clock ``clk``,
synchronous reset ``rst``):

* ``prog_en``, ``prog_data``: the loader. One instruction word per cycle, in program order;
  each goes to its opcode's queue (``isa.table`` queue column). ``clear`` empties the queues
  and the token FIFOs (the scratchpads keep their contents: programs never read what they did
  not write).
* ``run`` (level): the queues issue. The first instruction can issue in the second cycle of
  ``run`` (the program memories' read latency, ``rtl.run.FETCH_LATENCY``).
* ``finished``: every queue has issued all its instructions and none is in flight.
* ``cycles``: cycles since the first possible issue cycle, frozen when ``finished`` rises: the
  timing model's ``total`` when they agree. ``busy_load``, ``busy_compute``, ``busy_store``:
  cycles each queue was occupied (``InstrQueue.occupied``). ``issue_load``, ``issue_compute``,
  ``issue_store``: high in each cycle the queue issues (for traces).
* ``error``, ``error_code``, ``error_queue``: the first fault (a unit's, e.g. a GATHER index
  outside its table; or a token FIFO overflow); the queue that saw it stops issuing.
* ``m_axi_load``, ``m_axi_store``: the AXI4 master ports of the two DMA units (``rtl.axi``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from qasic.arch.config import ArchConfig
from qasic.isa.table import BY_CODE, HEADER, QUEUES, WORD_BITS
from qasic.rtl.limits import PROGRAM_DEPTH, check_arch_buildable
from qasic.rtl.ports import ERROR_CODE_BITS, sram_elements
from qasic.rtl.queues import QUEUE_OPS, InstrQueue, TokenFifos, connect_tokens
from qasic.rtl.scratchpad import Scratchpad

TOP = "qasic_accel"
COUNTER_BITS = 40
# error codes of the top itself (units report their own codes)
ERR_TOKENS = 0xF0
ERROR_TEXT = {0x01: "an opcode its queue has no unit for",
              ERR_TOKENS: "a token FIFO over- or underflowed"}


@dataclass(frozen=True)
class UnitRow:
    name: str
    queue: str
    ops: tuple[str, ...]
    module: str                          # the module holding the class
    cls: str
    ports: tuple[tuple[str, str], ...]   # (member, scratchpad) per memory port
    axi: str | None = None               # the member holding the unit's AXI4 master port

    def build(self, arch: ArchConfig):
        import importlib
        return getattr(importlib.import_module(self.module), self.cls)(arch)


_LOAD_MEMS = ("input", "weight", "output", "param")  # qasic.rtl.dma.LOAD_MEMS
_STORE_MEMS = ("output",)                            # qasic.rtl.dma.STORE_MEMS

UNITS: tuple[UnitRow, ...] = (
    UnitRow("dma_load", "load", ("LOAD", "GATHER"), "qasic.rtl.dma", "DmaLoad",
            tuple((f"{mem}_{kind}", mem) for mem in _LOAD_MEMS for kind in ("write", "fill")),
            axi="axi"),
    UnitRow("gemm", "compute", ("GEMM",), "qasic.rtl.gemm_unit", "GemmUnit",
            (("inp", "input"), ("wgt", "weight"), ("par", "param"), ("acc_rd", "acc"),
             ("acc_wr", "acc"))),
    UnitRow("post", "compute", ("POST",), "qasic.rtl.post", "PostUnit",
            (("acc", "acc"), ("param", "param"), ("out", "output"), ("tail", "output"))),
    UnitRow("vector", "compute", ("POOL", "ADD", "LUT"), "qasic.rtl.vector", "VectorUnit",
            (("a", "output"), ("b", "output"), ("param", "param"), ("out", "output"))),
    UnitRow("softmax", "compute", ("SOFTMAX",), "qasic.rtl.softmax", "SoftmaxUnit",
            (("src", "output"), ("mask", "output"), ("param", "param"), ("out", "output"),
             ("tail", "output"))),
    UnitRow("norm", "compute", ("NORM",), "qasic.rtl.norm", "NormUnit",
            (("src", "input"), ("eps", "param"), ("acc", "acc"))),
    UnitRow("dma_store", "store", ("STORE", "SCATTER"), "qasic.rtl.dma", "DmaStore",
            tuple((f"{mem}_read", mem) for mem in _STORE_MEMS), axi="axi"),
)


@cache
def rtl_opcodes() -> tuple[str, ...]:
    """Every opcode the accelerator executes: the units' and the queues' own."""
    return tuple(op for row in UNITS for op in row.ops) + QUEUE_OPS


def accelerator_key(arch: ArchConfig, depth: int = PROGRAM_DEPTH) -> str:
    """Build directory name: a digest of every arch field but its name and the mapper's
    objective (the scratchpads size the RTL too; two arches that differ only in name or in how
    the compiler maps layers share a build), and the program memory's ``depth`` when it is not
    the default (so the default builds keep their names)."""
    import hashlib
    fields = {k: v for k, v in arch.to_dict().items() if k not in ("name", "mapper_objective")}
    blob = json.dumps(fields, sort_keys=True, default=str).encode()
    deep = "" if depth == PROGRAM_DEPTH else f"_d{depth}"
    return (f"accel_{arch.array_rows}x{arch.array_cols}{deep}_"
            f"{hashlib.sha256(blob).hexdigest()[:12]}")


class Accelerator(wiring.Component):
    def __init__(self, arch: ArchConfig, depth: int = PROGRAM_DEPTH) -> None:
        check_arch_buildable(arch)
        self.arch, self.depth = arch, depth
        self.units = {row.name: row.build(arch) for row in UNITS}
        members = {
            "prog_en": In(1), "prog_data": In(WORD_BITS), "clear": In(1), "run": In(1),
            "finished": Out(1), "cycles": Out(COUNTER_BITS),
            **{f"busy_{q}": Out(COUNTER_BITS) for q in QUEUES},
            **{f"issue_{q}": Out(1) for q in QUEUES},
            "error": Out(1), "error_code": Out(ERROR_CODE_BITS), "error_queue": Out(2),
        }
        for row in UNITS:
            if row.axi:
                members[f"m_axi_{row.queue}"] = Out(
                    getattr(self.units[row.name], row.axi).signature)
        super().__init__(members)

    def elaborate(self, platform) -> Module:
        m = Module()
        for name, unit in self.units.items():
            m.submodules[name] = unit
        queues = {q: InstrQueue(q, self.depth, {row.name: row.ops for row in UNITS
                                                if row.queue == q}) for q in QUEUES}
        for q, queue in queues.items():
            m.submodules[f"queue_{q}"] = queue
        m.submodules.tokens = tokens = TokenFifos()
        connect_tokens(m, tokens, queues)
        self._loader(m, queues, tokens)
        for row in UNITS:
            wiring.connect(m, getattr(queues[row.queue], row.name),
                           self.units[row.name].ctl)
            if row.axi:
                wiring.connect(m, wiring.flipped(getattr(self, f"m_axi_{row.queue}")),
                               getattr(self.units[row.name], row.axi))
        self._scratchpads(m)
        self._status(m, queues, tokens)
        return m

    def _loader(self, m: Module, queues: dict, tokens: TokenFifos) -> None:
        """Each word to its opcode's queue; ``clear`` empties queues and token FIFOs."""
        opcode = self.prog_data[HEADER[0].lo:HEADER[0].lo + HEADER[0].width]
        for q, queue in queues.items():
            mine = 0
            for code, op in BY_CODE.items():
                if op.queue == q:
                    mine = mine | (opcode == code)
            m.d.comb += [queue.load_en.eq(self.prog_en & mine),
                         queue.load_data.eq(self.prog_data),
                         queue.clear.eq(self.clear), queue.run.eq(self.run & ~self.clear)]
        m.d.comb += tokens.clear.eq(self.clear)

    def _scratchpads(self, m: Module) -> None:
        """One Scratchpad per memory, with a port for every unit port that names it."""
        sizes = sram_elements(self.arch)
        for mem, (elements, bits) in sizes.items():
            reads, writes = [], []
            for row in UNITS:
                for member, target in row.ports:
                    if target != mem:
                        continue
                    port = getattr(self.units[row.name], member)
                    lanes = len(port.mask) if hasattr(port, "mask") else port.data.shape().length
                    (writes if hasattr(port, "mask") else reads).append((port, lanes))
            if not reads and not writes:
                continue
            pad = Scratchpad(elements, bits, [n for _, n in reads], [n for _, n in writes])
            m.submodules[f"sram_{mem}"] = pad
            for j, (port, _) in enumerate(reads):
                wiring.connect(m, port, getattr(pad, f"read{j}"))
            for j, (port, _) in enumerate(writes):
                wiring.connect(m, port, getattr(pad, f"write{j}"))

    def _status(self, m: Module, queues: dict, tokens: TokenFifos) -> None:
        started, done = Signal(), Signal()
        idle = 1
        for queue in queues.values():
            idle = idle & queue.idle
        m.d.sync += started.eq(self.run & ~self.clear)  # the first cycle an issue can happen
        m.d.comb += done.eq(idle)
        with m.If(self.clear | ~self.run):
            m.d.sync += [self.cycles.eq(0), self.finished.eq(0),
                         *[getattr(self, f"busy_{q}").eq(0) for q in QUEUES]]
        with m.Elif(started & ~self.finished):
            with m.If(done):
                m.d.sync += self.finished.eq(1)
            with m.Else():
                m.d.sync += self.cycles.eq(self.cycles + 1)
            for q, queue in queues.items():
                busy = getattr(self, f"busy_{q}")
                m.d.sync += busy.eq(busy + queue.occupied)
        for q, queue in queues.items():
            m.d.comb += getattr(self, f"issue_{q}").eq(queue.issue)
        with m.If(self.clear):
            m.d.sync += [self.error.eq(0), self.error_code.eq(0), self.error_queue.eq(0)]
        with m.Elif(~self.error):
            for k, (q, queue) in enumerate(queues.items()):
                with m.If(queue.error):
                    m.d.sync += [self.error.eq(1), self.error_code.eq(queue.error_code),
                                 self.error_queue.eq(k)]
            with m.If(tokens.overflow):
                m.d.sync += [self.error.eq(1), self.error_code.eq(ERR_TOKENS)]


def generate_accelerator(arch: ArchConfig, out_dir: str | Path,
                         depth: int = PROGRAM_DEPTH) -> list[Path]:
    """Write ``out_dir/qasic_accel.v`` and a JSON of its ports; return both paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    top = Accelerator(arch, depth)
    v_path, json_path = out_dir / f"{TOP}.v", out_dir / f"{TOP}.json"
    v_path.write_text(verilog.convert(top, name=TOP, emit_src=False))
    ports = [{"name": "__".join(map(str, path)),
              "dir": "in" if member.flow == wiring.In else "out",
              "width": len(value.as_value() if hasattr(value, "as_value") else value)}
             for path, member, value in top.signature.flatten(top)]
    json_path.write_text(json.dumps({"top": TOP, "arch": arch.name, "program_depth": depth,
                                     "units": [row.name for row in UNITS],
                                     "ports": ports}, indent=2) + "\n")
    return [v_path, json_path]
