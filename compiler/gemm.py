"""Lowering of conv2d / linear kernels (with fused bias, requantize, ReLU, max-pool) to a GEMM.

Conv uses im2col done by the DMA: for each output row and kernel row, one 2-D strided LOAD copies
out_w patches of kw*in_c contiguous bytes from the zero-point-padded NHWC input into the input
scratchpad, so an im2col row (order kh, kw, c) is K = kh*kw*in_c contiguous bytes.
The input zero point is folded into the bias: sum((x - zp) w) + b = sum(x w) + (b - zp sum(w)).
Block-scaled weights (qasic.quant.blockscale) run in block fixed point: K is cut into folds that
never cross a block, and each fold's GEMM scales its partial sums by the block's byte per column.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qasic.arch.config import PARAM_BYTES_PER_CHANNEL, ArchConfig
from qasic.compiler.fuse import Kernel
from qasic.compiler.memory import image_shape
from qasic.errors import ConfigError, UnsupportedOpError
from qasic.isa.table import BSCALE_BYTES, LUT_ENTRY_BYTES
from qasic.quant.blockscale import factors
from qasic.quant.graph import QGraph
from qasic.quant.reference import flatten_order


@dataclass(frozen=True)
class GemmShape:
    in_h: int
    in_w: int
    in_c: int
    kh: int
    kw: int
    stride: int
    pad: int
    out_h: int
    out_w: int
    n: int
    pool: int  # fused max-pool window (= stride); 1 when none

    @property
    def m(self) -> int:
        return self.out_h * self.out_w

    @property
    def k(self) -> int:
        return self.kh * self.kw * self.in_c


@dataclass(frozen=True, eq=False)
class GemmKernel:
    """Everything emission needs: geometry, the K x N weight codes, per-channel post params."""

    kernel: Kernel
    shape: GemmShape
    weight: np.ndarray       # (K, N) int codes in im2col/NHWC order
    wbits: int
    bias: np.ndarray         # (N,) int64, input zero point folded in
    multiplier: np.ndarray   # (N,)
    shift: np.ndarray        # (N,)
    out_zp: int
    lo: int
    hi: int
    codes: np.ndarray | None = None  # (K, N) stored codes (LUT-decoded or zero-point formats)
    lut: np.ndarray | None = None    # (2**wbits,) code -> integer weight
    block_scale: np.ndarray | None = None  # (NB, N) bytes of a block-scaled format
    block_zero: np.ndarray | None = None   # (NB, N) signed zero points (bscale mulzp)
    block_size: int = 0                    # K rows per block (last one may be shorter)
    block_mode: str = "none"               # isa.table.BSCALE_MODES

    @property
    def effective(self) -> np.ndarray:
        """(K, N) int64: the weights the GEMMs apply, block factors included."""
        if self.block_scale is None:
            return self.weight
        blk = np.arange(self.shape.k) // self.block_size
        return self.weight * factors(self.block_scale, self.block_mode)[blk]

    def folds(self, array_rows: int) -> list[tuple[int, int, int]]:
        """(k0, k, block) of every fold: chunks of at most array_rows within one block."""
        size = self.block_size or self.shape.k
        out = []
        for b0 in range(0, self.shape.k, size):
            end = min(b0 + size, self.shape.k)
            out += [(k0, min(array_rows, end - k0), b0 // size)
                    for k0 in range(b0, end, array_rows)]
        return out


def lower_gemm(graph: QGraph, kernel: Kernel, flatten_src: dict[str, tuple]) -> GemmKernel:
    node = kernel.anchor
    _check_shared_encoding(graph, kernel)
    shape = _conv_shape(graph, kernel) if node.op == "conv2d" else _linear_shape(graph, kernel)
    wkn = _to_kn(node, node.params["weight"], flatten_src)
    lut = node.params.get("weight_lut")
    codes = node.params.get("weight_codes")  # stored codes (table-decoded or zero-point)
    codes = None if codes is None else _to_kn(node, codes, flatten_src)
    blocks = _blocks(node, flatten_src)
    zero = node.params.get("block_zero")
    out = graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    if kernel.has("relu"):
        lo = max(lo, out.zero_point)
    g = GemmKernel(kernel, shape, wkn, node.weight_bits or 8, np.zeros(shape.n, np.int64),
                   node.params["multiplier"].astype(np.int64),
                   node.params["shift"].astype(np.int64), out.zero_point, lo, hi,
                   codes, None if lut is None else np.asarray(lut, dtype=np.int64),
                   block_scale=blocks[0], block_size=blocks[1], block_mode=blocks[2],
                   block_zero=None if zero is None else np.asarray(zero, dtype=np.int64).T.copy())
    # the input zero point folds into the bias, against the weights the GEMMs really apply
    zp_in = graph.tensors[node.inputs[0]].zero_point
    return replace(g, bias=node.params["bias"].astype(np.int64) - zp_in * g.effective.sum(axis=0))


def _blocks(node, flatten_src: dict[str, tuple]) -> tuple:
    """(block_scale (NB, N), block size, mode) in the array's K order, or () when unblocked."""
    p = node.params
    if "block_scale" not in p:
        return (None, 0, "none")
    block_of = _to_kn(node, np.asarray(p["block_of"])[None, :], flatten_src)[:, 0]
    k, size = len(block_of), int(node.attrs.get("block_size", 0))
    if size < 1 or not np.array_equal(block_of, np.arange(k) // size):
        raise UnsupportedOpError(
            f"layer {node.name}: its weight blocks are not runs of {size} consecutive inputs in "
            "the order the array reduces them ((kh, kw, ic) for a conv, memory order after a "
            "flatten); quantize with qasic.quant, which forms blocks in that order")
    return np.asarray(p["block_scale"], dtype=np.int64).T.copy(), size, node.attrs["block_mode"]


def _to_kn(node, w: np.ndarray, flatten_src: dict[str, tuple]) -> np.ndarray:
    """(OC, ...) weight-shaped array -> (K, N) in the order the input rows are laid out."""
    w = np.asarray(w, dtype=np.int64)
    if node.op == "conv2d":
        return w.reshape(w.shape[0], -1).T
    return _linear_weight(w, flatten_src.get(node.inputs[0]))


def pe_weight_bits(g: GemmKernel) -> int:
    """Signed width of the integers the PEs multiply: the code width for integer formats, the
    widest decoded value for formats that decode through a table."""
    return g.kernel.anchor.pe_weight_bits or g.wbits


def stored(g: GemmKernel) -> np.ndarray:
    """What DRAM holds, packed at wbits: the codes of a decoded format, else the weights."""
    return g.weight if g.codes is None else g.codes


def _conv_shape(graph: QGraph, kernel: Kernel) -> GemmShape:
    node = kernel.anchor
    in_h, in_w, in_c = image_shape(graph.shapes[node.inputs[0]])
    oc, kh, kw, _ic = node.params["weight"].shape
    s, p = node.attrs["stride"], node.attrs["padding"]
    pool = kernel.has("maxpool2d")
    return GemmShape(in_h, in_w, in_c, kh, kw, s, p, (in_h + 2 * p - kh) // s + 1,
                     (in_w + 2 * p - kw) // s + 1, oc, pool.attrs["kernel"] if pool else 1)


def _linear_shape(graph: QGraph, kernel: Kernel) -> GemmShape:
    out_f, in_f = kernel.anchor.params["weight"].shape
    return GemmShape(1, 1, in_f, 1, 1, 1, 0, 1, 1, out_f, 1)


def _linear_weight(w: np.ndarray, flat_from: tuple | None) -> np.ndarray:
    """(OUT, IN) torch weight -> (K, N) with rows in the DRAM order of the input vector.

    After a flatten of an NHWC (h, w, c) image, feature f = c*h*w + y*w + x (torch's CHW order)
    sits at memory index (y*w + x)*c + c_, so the rows are permuted to match.
    """
    if flat_from is None or len(flat_from) != 3:
        return w.T
    h, wd, c = flat_from
    return w.T[flatten_order(h, wd, c)]


def _check_shared_encoding(graph: QGraph, kernel: Kernel) -> None:
    """Fused ReLU/max-pool write the anchor's encoding; the graph must agree (quant/ ensures)."""
    want = graph.tensors[kernel.anchor.output]
    for n in kernel.nodes[1:]:
        if graph.tensors[n.output] != want:
            raise UnsupportedOpError(
                f"node {n.name} ({n.op}) re-encodes its input ({graph.tensors[n.output]} vs "
                f"{want}); fused ReLU/max-pool must share the producer's scale and zero point")


@dataclass(frozen=True)
class GemmPlan:
    tile_rows: int  # output pixels (before pooling) per m-tile: whole (pool-window) rows
    n_tile: int     # output channels per n-tile (<= array cols)


def plan_gemm(g: GemmKernel, arch: ArchConfig, in_bits: int = 8, out_bits: int = 8) -> GemmPlan:
    """Largest m-tile of whole output rows that fits every half scratchpad (activation codes
    stored at ``in_bits`` / ``out_bits``)."""
    s, name = g.shape, g.kernel.name
    nt = min(s.n, arch.array_cols)
    unit = s.out_w * s.pool
    weight_half = weight_tile_bytes(g, nt, arch)
    _need(weight_half, arch.weight_sram_bytes // 2, "sram.weight_bytes", name,
          f"the {s.k}x{nt} weight tile" + (" and its block scales" if g.block_mode != "none"
                                           else ""))
    lut_bytes = 0 if g.lut is None else LUT_ENTRY_BYTES << g.wbits
    _need(nt * PARAM_BYTES_PER_CHANNEL + lut_bytes, arch.param_sram_bytes // 2,
          "sram.param_bytes", name, "the per-channel parameters and decode table")
    out_row = nt * out_bits / 8
    limits = [
        (arch.input_sram_bytes // 2, s.k * in_bits / 8, "sram.input_bytes", "input rows"),
        (arch.acc_sram_bytes, arch.acc_word_bytes * nt, "sram.acc_bytes", "accumulator rows"),
        (arch.output_sram_bytes // 2, out_row + out_row / (s.pool * s.pool) if s.pool > 1
         else out_row, "sram.output_bytes", "output rows"),
    ]
    rows = s.m
    for cap, per_row, key, what in limits:
        fit = int(cap // per_row) // unit * unit
        _need(unit * per_row, cap if fit else 0, key, name, f"{unit} {what}")
        rows = min(rows, fit)
    return GemmPlan(rows, nt)


def weight_tile_bytes(g: GemmKernel, nt: int, arch: ArchConfig) -> int:
    """Weight scratchpad bytes of one n-tile: packed rows, plus a scale row before every fold
    of a block-scaled layer."""
    rows = g.shape.k * ((nt * g.wbits + 7) // 8)
    if g.block_mode == "none":
        return rows
    per_fold = 2 if g.block_mode == "mulzp" else 1  # scale row (+ zero-point row)
    return rows + len(g.folds(arch.array_rows)) * per_fold * nt * BSCALE_BYTES


def _need(size: float, cap: int, key: str, layer: str, what: str) -> None:
    if size > cap or cap == 0:
        raise ConfigError(f"arch config: {key} is too small for layer {layer}: {what} need "
                          f"{int(size)} bytes per half (double-buffered); raise {key}")
