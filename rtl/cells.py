"""Area of Yosys's generic gate cells, as NanGate 45 nm Open Cell Library cells (FreePDK45).

Yosys ``synth`` leaves a design as generic one-bit cells (``$_AND_``, ``$_MUX_``, ``$_SDFFE_PP0P_``,
...). Each is priced as the X1 (smallest) NanGate cell, or the cells, that implement it; areas in
µm² from ``NangateOpenCellLibrary_typical.lib`` (docs/area.md cites it). A NAND2 equivalent
(gate equivalent, GE) is NAND2_X1's 0.798 µm².

Flip-flops are composed from what each needs beyond a plain D flip-flop: an asynchronous reset
or set makes it DFFR_X1 / DFFS_X1 (both DFFRS_X1), a clock enable adds a MUX2_X1 on D, a
synchronous reset or set an AND2_X1 / OR2_X1 on D. Clock and reset polarities cost nothing (the
inverter is shared by a whole clock or reset net).
"""

from __future__ import annotations

import re

# NanGate 45 nm Open Cell Library, typical corner: cell areas in µm² (the cell's `area`).
NANGATE_UM2 = {
    "INV_X1": 0.532, "BUF_X1": 0.798, "NAND2_X1": 0.798, "NOR2_X1": 0.798,
    "AND2_X1": 1.064, "OR2_X1": 1.064, "XOR2_X1": 1.596, "XNOR2_X1": 1.596,
    "MUX2_X1": 1.862, "AOI21_X1": 1.064, "OAI21_X1": 1.064, "AOI22_X1": 1.330,
    "OAI22_X1": 1.330, "DFF_X1": 4.522, "DFFR_X1": 5.320, "DFFS_X1": 5.320,
    "DFFRS_X1": 6.384, "DLH_X1": 2.660,
}
NAND2_UM2 = NANGATE_UM2["NAND2_X1"]

# Yosys combinational gate cell -> the NanGate cells that implement it. ANDNOT (A & ~B) and
# ORNOT (A | ~B) are a 2-input gate with an inverted input: an inverter and a NOR2 / NAND2.
# NMUX is a MUX2 with its output inverted; AOI4 / OAI4 are AOI22 / OAI22.
_GATES: dict[str, tuple[str, ...]] = {
    "$_BUF_": ("BUF_X1",), "$_NOT_": ("INV_X1",),
    "$_AND_": ("AND2_X1",), "$_NAND_": ("NAND2_X1",),
    "$_OR_": ("OR2_X1",), "$_NOR_": ("NOR2_X1",),
    "$_XOR_": ("XOR2_X1",), "$_XNOR_": ("XNOR2_X1",),
    "$_ANDNOT_": ("INV_X1", "NOR2_X1"), "$_ORNOT_": ("INV_X1", "NAND2_X1"),
    "$_MUX_": ("MUX2_X1",), "$_NMUX_": ("MUX2_X1", "INV_X1"),
    "$_AOI3_": ("AOI21_X1",), "$_OAI3_": ("OAI21_X1",),
    "$_AOI4_": ("AOI22_X1",), "$_OAI4_": ("OAI22_X1",),
}
# Fine-grained flip-flops and latches (Yosys's simcells): the kind and its polarity letters.
_FF = re.compile(r"^\$_(DFF|DFFE|SDFF|SDFFE|SDFFCE|DFFSR|DFFSRE|ALDFF|ALDFFE|DLATCH|DLATCHSR)"
                 r"_([NP01]+)_$")


def cell_um2(cell_type: str) -> float:
    """Area in µm² of one Yosys generic cell; ValueError for a cell that is no generic gate
    (a coarse cell such as ``$add`` means synthesis stopped before techmap)."""
    if cell_type in _GATES:
        return sum(NANGATE_UM2[c] for c in _GATES[cell_type])
    match = _FF.match(cell_type)
    if match is None:
        raise ValueError(f"no gate area for Yosys cell {cell_type}: only generic one-bit cells "
                         "($_AND_, $_DFF_P_, ...) are priced; run synthesis through techmap")
    return _flip_flop_um2(*match.groups())


def is_flip_flop(cell_type: str) -> bool:
    match = _FF.match(cell_type)
    return match is not None and not match[1].startswith("DLATCH")


def _flip_flop_um2(kind: str, polarity: str) -> float:
    if kind.startswith("DLATCH"):
        base = "DLH_X1" if kind == "DLATCH" else "DFFRS_X1"  # a set/reset latch: the SR flop
        return NANGATE_UM2[base]
    # $_DFF_PN0_ (clock, reset polarity, reset value) and $_DFFE_PN0P_ (and enable) reset
    # asynchronously; $_DFF_P_ and $_DFFE_PP_ have no reset.
    async_reset = len(polarity) == {"DFF": 3, "DFFE": 4}.get(kind, 0)
    both = kind in ("DFFSR", "DFFSRE", "ALDFF", "ALDFFE")  # set and reset, or async load
    base = "DFFRS_X1" if both else ("DFFR_X1" if async_reset else "DFF_X1")
    area = NANGATE_UM2[base]
    if kind.endswith("E"):  # clock enable: a 2:1 mux holding Q
        area += NANGATE_UM2["MUX2_X1"]
    if kind.startswith("SDFF"):  # synchronous reset or set: a gate on D
        area += NANGATE_UM2["AND2_X1"]
    return area
