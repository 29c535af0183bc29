"""SRAM macro area at 45 nm by bank size: OpenRAM's FreePDK45 macros (docs/area.md).

The area of a bank of ``bits`` bits interpolates linearly between the characterized macros
below (single-port 1RW, one bank, FreePDK45, the same technology as the NanGate 45 nm cells
the logic is priced with). A larger memory is built of banks of the largest macro; a bank
smaller than the smallest macro keeps that macro's per-bit slope down to its fixed periphery
(the first segment extended: 1,887 µm² at zero bits).

A scratchpad is two halves (double buffering, as the compiler plans it), each its own banks.
"""

from __future__ import annotations

from qasic.arch.config import ArchConfig

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
# The scratchpads of an arch: (name, ArchConfig field)
SCRATCHPADS = (("input", "input_sram_bytes"), ("weight", "weight_sram_bytes"),
               ("acc", "acc_sram_bytes"), ("output", "output_sram_bytes"),
               ("param", "param_sram_bytes"))


def macro_um2(bits: int) -> float:
    """Area in µm² of one memory of ``bits`` bits, as banks of at most MAX_BANK_BITS."""
    if bits < 0:
        raise ValueError(f"a memory of {bits} bits: the size must be >= 0")
    full, rest = divmod(bits, MAX_BANK_BITS)
    return full * OPENRAM_FREEPDK45_UM2[-1][1] + (_bank_um2(rest) if rest else 0.0)


def _bank_um2(bits: int) -> float:
    table = OPENRAM_FREEPDK45_UM2
    i = next((k for k in range(1, len(table)) if bits <= table[k][0]), len(table) - 1)
    (b0, a0), (b1, a1) = table[i - 1], table[i]
    return a0 + (bits - b0) * (a1 - a0) / (b1 - b0)


def scratchpad_um2(arch: ArchConfig) -> dict[str, float]:
    """Area in µm² of each scratchpad of ``arch``: two halves of bytes / 2 each."""
    return {name: 2 * macro_um2(8 * getattr(arch, f) // 2) for name, f in SCRATCHPADS}
