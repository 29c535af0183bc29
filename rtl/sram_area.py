"""SRAM macro area at 45 nm by bank size: OpenRAM's FreePDK45 macros (docs/area.md).

The area of a bank of ``bits`` bits interpolates linearly between the characterized macros
below (single-port 1RW, one bank, FreePDK45, the same technology as the NanGate 45 nm cells
the logic is priced with). A larger memory is built of banks of the largest macro; a bank
smaller than the smallest macro keeps that macro's per-bit slope down to its fixed periphery
(the first segment extended: 1,887 µm² at zero bits).

A memory of several ports (``memory_um2``) is the cheaper of two builds: an SRAM macro whose
cell grows with every port beyond the first by CACTI's rule (``port_factor``), or a register file
of flip-flops (a DFFE per bit, a MUX2 tree per read port and bit, a MUX2 per extra write port
and bit). Small, many-ported tables end up as register files, deep ones as SRAM.
"""

from __future__ import annotations

# (bits, µm²) of OpenRAM FreePDK45 macros, `area` of sram_1rw_<width>b_<words>w_1bank_freepdk45
# (TT, 1.0 V, 25 C): 8x256, 32x256, 32x512, 32x1024, 64x1024, 128x1024.
OPENRAM_FREEPDK45_UM2: tuple[tuple[int, float], ...] = (
    (2_048, 4_498.92),
    (8_192, 12_335.42),
    (16_384, 22_454.71),
    (32_768, 42_051.11),
    (65_536, 76_901.58),
    (131_072, 146_602.50),
)
MAX_BANK_BITS = OPENRAM_FREEPDK45_UM2[-1][0]
# CACTI's SRAM cell (technology.cc: 146 F², aspect ratio 1.46, so 10 F wide and 14.6 F tall) and
# its local wire pitch (2.5 F); every port beyond the first adds two wires to the cell's width
# (a bitline pair) and two to its height (mat.cc: cell.w, cell.h).
CACTI_CELL_F = (10.0, 14.6)
CACTI_WIRE_PITCH_F = 2.5
# Register-file cells (NanGate 45 nm, qasic.rtl.cells): a bit with a write enable, a 2:1 mux.
DFFE_UM2 = 4.522 + 1.862
MUX2_UM2 = 1.862


def macro_um2(bits: int) -> float:
    """Area in µm² of one memory of ``bits`` bits, as banks of at most MAX_BANK_BITS."""
    if bits < 0:
        raise ValueError(f"a memory of {bits} bits: the size must be >= 0")
    full, rest = divmod(bits, MAX_BANK_BITS)
    return full * OPENRAM_FREEPDK45_UM2[-1][1] + (_bank_um2(rest) if rest else 0.0)


def port_factor(ports: int) -> float:
    """How much larger an SRAM cell of ``ports`` ports is than a one-port (1RW) cell: CACTI's
    cell grows by two local wire pitches in width and height per port beyond the first. The
    whole macro is scaled by it: its decoders and sense amplifiers are per port too (they grow
    linearly, so this overstates the periphery of many-ported macros a little)."""
    if ports < 1:
        raise ValueError(f"a memory with {ports} ports: it needs at least one")
    w, h = CACTI_CELL_F
    extra = 2 * CACTI_WIRE_PITCH_F * (ports - 1)
    return (w + extra) * (h + extra) / (w * h)


def register_file_um2(width: int, depth: int, read_ports: int, write_ports: int) -> float:
    """A memory built of flip-flops: a DFFE per bit, per read port a MUX2 tree per bit (depth - 1
    muxes), per write port beyond the first a MUX2 per bit choosing its data."""
    bits = width * depth
    return (bits * DFFE_UM2 + read_ports * width * (depth - 1) * MUX2_UM2
            + max(0, write_ports - 1) * bits * MUX2_UM2)


def memory_um2(width: int, depth: int, read_ports: int = 1, write_ports: int = 0) -> float:
    """Area in µm² of a memory of ``depth`` words of ``width`` bits with these ports (a 1R1W
    memory has two): the cheaper of an SRAM macro scaled by ``port_factor`` and a register file
    (``register_file_um2``)."""
    sram = macro_um2(width * depth) * port_factor(max(1, read_ports + write_ports))
    return min(sram, register_file_um2(width, depth, read_ports, write_ports))


def _bank_um2(bits: int) -> float:
    table = OPENRAM_FREEPDK45_UM2
    i = next((k for k in range(1, len(table)) if bits <= table[k][0]), len(table) - 1)
    (b0, a0), (b1, a1) = table[i - 1], table[i]
    return a0 + (bits - b0) * (a1 - a0) / (b1 - b0)

