"""AXI4 master port of a DMA unit: AR, R, AW, W, B channels, INCR bursts, in-order responses.

One ID (none on the wires), so responses return in request order. Data width = 8 *
``dram.bytes_per_cycle`` bits (a power of two), addresses ``ADDR_BITS`` wide. Member names are the
AXI signal names, so a top-level member ``<prefix>`` becomes Verilog ports ``<prefix>__araddr``,
``<prefix>__arvalid``, ...: attach ``rtl.dram_model.DramModel(dut, "<prefix>", ...)``, or
cocotbext-axi's ``AxiRam(AxiBus.from_prefix(dut, "<prefix>_"), ...)`` (its bus separator adds the
second underscore).
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from qasic.arch.config import MAX_DRAM_BYTES_PER_CYCLE, ArchConfig

ADDR_BITS = 40       # DMA dram_addr fields are 36 bits; strides and indices reach beyond
LEN_BITS = 8         # AXI4 INCR: 1..256 beats per burst
MAX_BURST = 16       # beats per burst the DMA issues (bursts never cross a 16-beat boundary:
                     # 16 beats of at most 128 bytes, so never a 4 KiB boundary either)
MAX_BEAT_BYTES = MAX_DRAM_BYTES_PER_CYCLE  # AXI4's widest beat (arsize / awsize 7)
BURST_INCR = 0b01
RESP_OKAY = 0b00


def data_bytes(arch: ArchConfig) -> int:
    """Bytes per AXI beat: ``dram.bytes_per_cycle``, which must be a power of two."""
    b = arch.dram_bytes_per_cycle
    if b & (b - 1) or b > MAX_BEAT_BYTES:
        raise ValueError(f"dram.bytes_per_cycle = {b} is not a power of two up to "
                         f"{MAX_BEAT_BYTES}; the AXI4 data bus of the RTL needs 1, 2, 4, ... "
                         f"{MAX_BEAT_BYTES} bytes")
    return b


def axi_master(data_bytes: int, addr_bits: int = ADDR_BITS) -> wiring.Signature:
    """The master's side (``Out`` = driven by the master)."""
    exact_log2(data_bytes)  # a power of two
    assert data_bytes <= MAX_BEAT_BYTES, "AXI4 beats are at most 128 bytes"
    return wiring.Signature({
        "araddr": Out(addr_bits), "arlen": Out(LEN_BITS), "arsize": Out(3), "arburst": Out(2),
        "arvalid": Out(1), "arready": In(1),
        "rdata": In(8 * data_bytes), "rresp": In(2), "rlast": In(1), "rvalid": In(1),
        "rready": Out(1),
        "awaddr": Out(addr_bits), "awlen": Out(LEN_BITS), "awsize": Out(3), "awburst": Out(2),
        "awvalid": Out(1), "awready": In(1),
        "wdata": Out(8 * data_bytes), "wstrb": Out(data_bytes), "wlast": Out(1),
        "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
    })


CHANNELS = {
    "ar": ("araddr", "arlen", "arsize", "arburst", "arvalid", "arready"),
    "r": ("rdata", "rresp", "rlast", "rvalid", "rready"),
    "aw": ("awaddr", "awlen", "awsize", "awburst", "awvalid", "awready"),
    "w": ("wdata", "wstrb", "wlast", "wvalid", "wready"),
    "b": ("bresp", "bvalid", "bready"),
}
