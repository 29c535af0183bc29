"""The accelerator around the PE grid, for the area model: its units' logic and its memories.

``rtl.top.Accelerator(arch)`` is the PE grid inside the GEMM unit plus, from the ``UNITS``
table: two DMA units, the GEMM unit's own logic (operand unpacking, skew, block scaling, the
weight-decode table, its sequencing), POST, the vector, softmax and norm units, three
instruction queues with their program memories, the token FIFOs, and five banked scratchpads.

* **Logic** of each unit: NAND2 equivalents as a sum of structure counts (``unit_features``)
  times coefficients fitted to Yosys syntheses of that unit alone (``qasic.rtl.area --fit``).
  The counts are lanes: ``arch.array_cols`` for the DMA-load fill ports and POST,
  ``arch.lanes`` for the vector, softmax and norm units; the GEMM unit's logic beyond the PE
  grid grows per column (x acc_bits) and per row (x activation bits). The queues and token
  FIFOs do not depend on the arch (their program depth is ``rtl.limits.PROGRAM_DEPTH``).
  Each scratchpad's port crossbars (lanes rotated onto banks) are logic too
  (``scratchpad_features``).
* **Memories** (``memories``): every ``Memory`` the RTL holds, priced with
  ``qasic.rtl.sram_area.memory_um2`` (SRAM macro with CACTI's port overhead, or flip-flops if
  cheaper). A scratchpad is ``Scratchpad``'s banks (its widest port's lanes, rounded up to a
  power of two), each with the ports that can be busy in one cycle: the DMA units run beside
  the compute queue, whose units run one at a time (``rtl.queues``; each is busy through its
  last write), so a bank needs the DMA
  units' ports plus those of the compute unit with the most ports on it. The RTL as written
  gives every unit port its own memory port; the compute units' ports onto one bank could share
  physical ports through a multiplexer, which this model assumes (and does not price).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from amaranth.utils import ceil_log2

from qasic.arch.config import ArchConfig
from qasic.rtl.sram_area import memory_um2

COMPUTE_QUEUE = "compute"
# Units of the fit, each with its features (NAND2 equivalents per unit of each).
UNIT_NAMES = ("dma_load", "dma_store", "gemm", "post", "vector", "softmax", "norm", "queues")


@dataclass(frozen=True)
class Mem:
    """One memory of the accelerator: ``depth`` words of ``width`` bits, its ports, how many."""

    name: str
    width: int
    depth: int
    read_ports: int
    write_ports: int
    count: int = 1

    @property
    def bits(self) -> int:
        return self.width * self.depth * self.count

    @property
    def um2(self) -> float:
        return self.count * memory_um2(self.width, self.depth, self.read_ports, self.write_ports)


def unit_features(arch: ArchConfig) -> dict[str, dict[str, float]]:
    """Per unit of ``UNIT_NAMES``, its structure counts (the coefficients' units).

    GEMM's counts exclude its PE grid (``qasic.rtl.area.features``, the array part)."""
    r, c, v, acc = arch.array_rows, arch.array_cols, arch.lanes, arch.acc_bits
    a_bits = arch.input_bits + arch.input_shift_bits
    return {
        "dma_load": {"dma_load": 1, "dma_load_lane": c},
        "dma_store": {"dma_store": 1, "dma_store_lane": c},
        "gemm": {"gemm": 1, "gemm_column": c * acc, "gemm_row": r * a_bits},
        "post": {"post": 1, "post_lane": c},
        "vector": {"vector": 1, "vector_lane": v},
        "softmax": {"softmax": 1, "softmax_lane": v},
        "norm": {"norm": 1, "norm_lane": v},
        "queues": {"queues": 1},
    }


def unit_feature_names() -> tuple[str, ...]:
    from qasic.arch.config import default_arch

    return tuple(f for feats in unit_features(default_arch()).values() for f in feats)


@dataclass(frozen=True)
class PadPorts:
    """One scratchpad as ``rtl.top`` builds it: its size and, per unit, its read and write
    lanes there (``(unit, queue, lanes)`` per port)."""

    name: str
    elements: int
    lane_bits: int
    reads: tuple[tuple[str, str, int], ...]
    writes: tuple[tuple[str, str, int], ...]

    @property
    def banks(self) -> int:
        from qasic.rtl.scratchpad import bank_count

        return bank_count([n for *_, n in self.reads], [n for *_, n in self.writes])

    @property
    def depth(self) -> int:
        return -(-self.elements // self.banks)

    def concurrent_ports(self) -> tuple[int, int]:
        """(reads, writes) a bank serves in one cycle: every port of the units outside the
        compute queue, plus the compute unit with the most ports here."""
        def count(units=None, queue_is_compute=False):
            rd = [u for u, q, _ in self.reads if (q == COMPUTE_QUEUE) == queue_is_compute]
            wr = [u for u, q, _ in self.writes if (q == COMPUTE_QUEUE) == queue_is_compute]
            if units is not None:
                rd, wr = [u for u in rd if u == units], [u for u in wr if u == units]
            return len(rd), len(wr)
        dma_r, dma_w = count()
        compute = {u for u, q, _ in (*self.reads, *self.writes) if q == COMPUTE_QUEUE}
        busiest = max((count(u, True) for u in compute), key=sum, default=(0, 0))
        return dma_r + busiest[0], dma_w + busiest[1]


@lru_cache(maxsize=64)
def scratchpads(arch: ArchConfig) -> tuple[PadPorts, ...]:
    """The scratchpads ``rtl.top.Accelerator._scratchpads`` builds for ``arch`` (units are
    constructed to read their port widths; nothing is elaborated)."""
    from dataclasses import replace

    from qasic.rtl.dma import MIN_LATENCY
    from qasic.rtl.ports import sram_elements
    from qasic.rtl.top import UNITS

    # Port widths do not depend on the DRAM latency; an arch the simulator takes with a latency
    # the RTL DMA cannot build (0 or 1 cycles) is priced as the nearest buildable one.
    buildable = replace(arch, dram_latency_cycles=max(arch.dram_latency_cycles, MIN_LATENCY))
    units = {}
    for row in UNITS:
        units[row.name] = unit = row.build(buildable)
        unit._MustUse__silence = True  # read for its ports only
    pads = []
    for mem, (elements, bits) in sram_elements(arch).items():
        reads, writes = [], []
        for row in UNITS:
            for member, target in row.ports:
                if target != mem:
                    continue
                port = getattr(units[row.name], member)
                if hasattr(port, "mask"):
                    writes.append((row.name, row.queue, len(port.mask)))
                else:
                    reads.append((row.name, row.queue, port.data.shape().length))
        if reads or writes:
            pads.append(PadPorts(mem, elements, bits, tuple(reads), tuple(writes)))
    return tuple(pads)


def scratchpad_memories(arch: ArchConfig) -> list[Mem]:
    """Each scratchpad's banks, with the ports that can be busy together."""
    out = []
    for pad in scratchpads(arch):
        r, w = pad.concurrent_ports()
        out.append(Mem(f"sram_{pad.name}", pad.lane_bits, pad.depth, r, w, pad.banks))
    return out


def unit_memories(arch: ArchConfig) -> list[Mem]:
    """The memories inside the units and queues, as their RTL declares them (a SyncFIFO's
    storage is one 1R1W memory of its depth)."""
    from qasic.isa.table import WORD_BITS
    from qasic.rtl.dma import _SRAM_BITS, data_bytes, fifo_depth
    from qasic.rtl.gemm_unit import ENTRY, TABLE_ENTRIES
    from qasic.rtl.limits import PROGRAM_DEPTH

    depth, b, c = fifo_depth(arch), data_bytes(arch), arch.array_cols
    return [
        Mem("dma_load.land", 1 + 3 + _SRAM_BITS + b + 1, depth, 1, 1),
        Mem("dma_load.order", 1, depth, 1, 1),
        Mem("dma_store.land", _SRAM_BITS, depth, 1, 1),
        Mem("dma_store.order", 1, depth, 1, 1),
        Mem("dma_store.bexp", 1, depth, 1, 1),
        # the weight-decode table: a write port per lane, an asynchronous read per column
        Mem("gemm.table", ENTRY.size, TABLE_ENTRIES, c, c),
        Mem("queue.prog", WORD_BITS, max(2, PROGRAM_DEPTH), 1, 1, count=3),
    ]


def memories(arch: ArchConfig) -> list[Mem]:
    return scratchpad_memories(arch) + unit_memories(arch)


def scratchpad_features(arch: ArchConfig, only: str | None = None) -> dict[str, float]:
    """Structure counts of the scratchpads' logic (of scratchpad ``only``, or all): per read
    port, ``spad_read``, its lanes' bits times the rotation's mux stages (log2 banks); per write
    port, ``spad_write``, each bank's choice among its lanes (banks x bits x lanes); per port,
    ``spad_addr``, each bank's row address (banks x row bits); ``spad_arbitrate``, per pair of
    write ports, each bank's same-row compare (banks x row bits)."""
    out = dict.fromkeys(("spad_read", "spad_write", "spad_addr", "spad_arbitrate"), 0.0)
    for pad in scratchpads(arch):
        if only is not None and pad.name != only:
            continue
        stages = max(1, ceil_log2(pad.banks))
        row_bits = max(1, ceil_log2(pad.depth))
        nw = len(pad.writes)
        out["spad_read"] += sum(n * pad.lane_bits * stages for *_, n in pad.reads)
        out["spad_write"] += sum(pad.banks * pad.lane_bits * n for *_, n in pad.writes)
        out["spad_addr"] += (len(pad.reads) + nw) * pad.banks * row_bits
        out["spad_arbitrate"] += pad.banks * row_bits * nw * (nw - 1) / 2
    return out
