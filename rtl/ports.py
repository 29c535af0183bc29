"""The port contracts every block of the whole-accelerator RTL shares (docs/rtl.md).

Three kinds of connection, each one ``wiring.Signature`` built here and nowhere else:

* ``unit_control()``: how a queue drives an execution unit (DMA, GEMM, POST, vector).
  The queue raises ``start`` for one cycle with the 256-bit instruction word on ``instr``
  (``qasic.isa.layouts.INSTR`` views it); it does so only in a cycle where ``busy`` is low.
  ``busy`` is high from the cycle after ``start`` until the unit can accept the next
  instruction (the simulator's "busy" duration: a DMA may accept its next instruction while the
  data of the previous one is still in flight). ``done`` is high for exactly one cycle per
  instruction, in issue order, when that instruction's result is complete in its memory (the
  simulator's "done" duration: the queue pushes its tokens then). ``error`` is sticky: a runtime
  fault (a GATHER index outside the table) that stops the machine.
* ``read_port(addr_bits, lanes, lane_bits)``: a scratchpad read port, from the requester's side.
  ``en`` and ``addr`` in cycle k; ``data`` (``lanes`` elements; element i is the one at
  ``addr + i``) is valid in cycle k + 1 and holds until the next read.
* ``write_port(addr_bits, lanes, lane_bits)``: a scratchpad write port, from the requester's side.
  In a cycle with ``en`` high, element i of ``data`` goes to ``addr + i`` for every i with bit i
  of ``mask`` set. A read in the next cycle sees it.

Addresses are element addresses: bytes for the input, weight, output and param scratchpads,
``arch.acc_word_bytes`` words for the accumulator scratchpad. Ports need not be aligned: any
``addr`` works (``qasic.rtl.scratchpad`` banks the memory so one access is one cycle).
"""

from __future__ import annotations

from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from qasic.arch.config import ArchConfig
from qasic.isa.table import WORD_BITS

ERROR_CODE_BITS = 8


def unit_control() -> wiring.Signature:
    """A unit's control port, from the unit's side (``In`` = driven by the queue)."""
    return wiring.Signature({
        "start": In(1),
        "instr": In(WORD_BITS),
        "busy": Out(1),
        "done": Out(1),
        "error": Out(1),
        "error_code": Out(ERROR_CODE_BITS),
    })


def read_port(addr_bits: int, lanes: int, lane_bits: int = 8) -> wiring.Signature:
    """A scratchpad read port, from the requester's side (``Out`` = driven by the requester)."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(addr_bits),
        "data": In(data.ArrayLayout(lane_bits, lanes)),
    })


def write_port(addr_bits: int, lanes: int, lane_bits: int = 8) -> wiring.Signature:
    """A scratchpad write port, from the requester's side."""
    return wiring.Signature({
        "en": Out(1),
        "addr": Out(addr_bits),
        "data": Out(data.ArrayLayout(lane_bits, lanes)),
        "mask": Out(lanes),
    })


def sram_elements(arch: ArchConfig) -> dict[str, tuple[int, int]]:
    """Per scratchpad (``isa.table.MEMS`` names): (elements, bits per element)."""
    word = arch.acc_word_bytes
    return {
        "input": (arch.input_sram_bytes, 8),
        "weight": (arch.weight_sram_bytes, 8),
        "acc": (arch.acc_sram_bytes // word, 8 * word),
        "output": (arch.output_sram_bytes, 8),
        "param": (arch.param_sram_bytes, 8),
    }


def sram_addr_bits(arch: ArchConfig, mem: str) -> int:
    """Address width of scratchpad ``mem``: enough for every element (at least 1 bit)."""
    return max(1, ceil_log2(sram_elements(arch)[mem][0]))
