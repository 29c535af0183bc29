"""Packed sub-byte storage of weight codes, as GEMM reads it (see the GEMM row in isa.table),
and the shapes instructions derive from their fields (bytes a DMA moves, vectors a GEMM
streams, a POOL's result size, a code table's length).

A row of ``cols`` signed codes of ``bits`` bits occupies ceil(cols * bits / 8) bytes; code j sits
at bit j * bits, little-endian bit order, two's complement. Rows start on byte boundaries.
"""

from __future__ import annotations

import numpy as np

from qasic.isa.table import BSCALE_BYTES, LUT_TABLE_ENTRY_BYTES, encoding_bits

# code widths of whole bytes: a code is a little-endian two's-complement word (the same bytes the
# bit loop writes), packed and unpacked by one numpy cast
WHOLE_BYTES = {8: np.dtype("<i1"), 16: np.dtype("<i2"), 32: np.dtype("<i4"), 64: np.dtype("<i8")}


def pack_bits(codes: np.ndarray, bits: int) -> bytes:
    """Pack signed integer codes row by row, ``bits`` each, little-endian bit order; every row
    starts on a byte boundary (row bytes = ceil(cols * bits / 8))."""
    codes = np.atleast_2d(np.asarray(codes, dtype=np.int64))
    if bits in WHOLE_BYTES:  # whole little-endian words: the low bytes of each code
        return codes.astype(WHOLE_BYTES[bits]).tobytes()
    rows, cols = codes.shape
    u = (codes & ((1 << bits) - 1)).astype(np.uint64)
    row_bytes = (cols * bits + 7) // 8
    out = np.zeros((rows, row_bytes), dtype=np.uint8)
    for j in range(cols):
        bit = j * bits
        for b in range(bits):
            byte, off = divmod(bit + b, 8)
            out[:, byte] |= (((u[:, j] >> np.uint64(b)) & np.uint64(1)) << np.uint64(off)).astype(
                np.uint8)
    return out.tobytes()


def unpack_bits(blob: bytes, rows: int, cols: int, bits: int) -> np.ndarray:
    """Inverse of ``pack_bits``: signed int64 codes (rows, cols)."""
    if bits in WHOLE_BYTES:
        return np.frombuffer(blob, dtype=WHOLE_BYTES[bits], count=rows * cols).reshape(
            rows, cols).astype(np.int64)
    row_bytes = (cols * bits + 7) // 8
    raw = np.frombuffer(blob, dtype=np.uint8, count=rows * row_bytes).reshape(rows, row_bytes)
    bitsarr = np.unpackbits(raw, axis=1, bitorder="little")[:, :cols * bits]
    vals = bitsarr.reshape(rows, cols, bits).astype(np.int64) @ (1 << np.arange(bits))
    return np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)


def gemm_weight_span(args) -> tuple[int | None, int, int]:
    """Where a GEMM's weight operand sits in the weight scratchpad: (address of the block-scale
    row or None, address of the first packed weight row, bytes per stored weight row). With
    bscale mulzp the zero-point row follows the scale row (isa.table). A row holds n codes, or
    k codes with wtrans (the tile stored transposed: n rows of k codes)."""
    n = args["n"]
    row = ((args["k"] if args["wtrans"] else n) * args["wbits"] + 7) // 8
    if args["bscale"] == "none":
        return None, args["wgt_addr"], row
    rows = 2 if args["bscale"] == "mulzp" else 1
    return args["wgt_addr"], args["wgt_addr"] + rows * n * BSCALE_BYTES, row


def gemm_weight_end(args) -> int:
    """The first weight-scratchpad byte after a GEMM's weight operand: k stored rows, or n with
    wtrans."""
    _, w_addr, row = gemm_weight_span(args)
    return w_addr + (args["n"] if args["wtrans"] else args["k"]) * row


def unpack_gemm_weights(blob: bytes, args) -> np.ndarray:
    """The signed codes (k, n) of a GEMM's packed weight rows ``blob`` (from the first weight
    row; transposed back when wtrans)."""
    k, n, bits = args["k"], args["n"], args["wbits"]
    if args["wtrans"]:
        return unpack_bits(blob, n, k, bits).T
    return unpack_bits(blob, k, n, bits)


# Operand sizes of the ISA v5 row instructions (isa.table: GATHER, SOFTMAX, NORM).
GATHER_INDEX_BYTES = 4  # one int32 little-endian index per gathered row
EXP_ENTRY_BYTES = 4     # SOFTMAX: one int32 little-endian exp-table word per code difference
NORM_EPS_BYTES = 8      # NORM: one int64 little-endian epsilon


def gather_dram_bytes(args) -> int:
    """DRAM bytes a GATHER or SCATTER moves: count indices and count rows of row_bytes."""
    return args["count"] * (GATHER_INDEX_BYTES + args["row_bytes"])


def exp_table_bytes(encoding: str) -> int:
    """Bytes of SOFTMAX's exp table for source codes of ``encoding``: 2^B int32 words."""
    return EXP_ENTRY_BYTES << encoding_bits(encoding)


def dma_bytes(args) -> int:
    """Bytes a LOAD or STORE copies (or a fill writes): planes x rows x row_bytes."""
    return args["planes"] * args["rows"] * args["row_bytes"]


def gemm_vectors(args) -> int:
    """T: the vectors a GEMM streams, lines x rows."""
    return args["lines"] * args["rows"]


def pool_out(args) -> tuple[int, int]:
    """(oh, ow) of a POOL: (h - kh) // sh + 1 by (w - kw) // sw + 1 (strides of 0 count as 1
    here; the machine refuses them)."""
    return ((args["h"] - args["kh"]) // max(args["sh"], 1) + 1,
            (args["w"] - args["kw"]) // max(args["sw"], 1) + 1)


def code_table_bytes(encoding: str) -> int:
    """Bytes of a POST lut / LUT table indexed by codes of ``encoding``: one per code."""
    return LUT_TABLE_ENTRY_BYTES << encoding_bits(encoding)
