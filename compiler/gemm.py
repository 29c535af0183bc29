"""Lowering of conv2d / linear kernels (with fused requantize, clamp, table, max-pool) to GEMMs.

Convolution runs as on-chip im2col: a tile's input *band* (the input rows and columns its
outputs need, one channel tile, borders filled with the pad code) is loaded once; every GEMM
streams output pixels straight out of the band (isa.table GEMM: vector (l, r) at
inp_addr + l*inp_line_stride + r*inp_stride). A fold is a run of <= array.rows consecutive band
codes: with dilation 1 the kernel's columns of one kernel row are contiguous in the band (the
(kw, c) run), so a 7x7 conv of 3 channels folds 21 codes per kernel row, not 3.

Grouped and depthwise convolutions run as *group blocks*: P consecutive groups form one dense
conv whose weight is block-diagonal (zeros between groups), P chosen so a block fills the
array's columns. The array multiplies those zeros: a depthwise conv on a weight-stationary
array uses ~1/P of it, and its cycles and energy say so.

The input zero point is folded into the bias: sum((x - zp) w) + b = sum(x w) + (b - zp sum(w)).
Block-scaled weights (qasic.quant.blockscale) run in block fixed point: folds never cross a
block, and each fold's GEMM scales its partial sums by the block's byte per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.compiler.fuse import Kernel, pad4, pair
from qasic.compiler.memory import image_shape
from qasic.errors import UnsupportedOpError
from qasic.quant.blockscale import factors
from qasic.quant.graph import QGraph
from qasic.quant.reference import flatten_order


@dataclass(frozen=True)
class ConvGeom:
    """A GEMM kernel's geometry; a linear layer is a 1x1 conv of a 1x1 image (a vector) or of a
    1 x S image (a sequence of S tokens, m = S)."""

    in_h: int
    in_w: int
    in_c: int          # channels of the input tensor
    kh: int
    kw: int
    sh: int
    sw: int
    pt: int
    pl: int
    pb: int
    pr: int
    dh: int
    dw: int
    out_h: int
    out_w: int
    out_c: int
    groups: int
    pool: int          # fused max-pool window (= its stride); 1 when none

    @property
    def m(self) -> int:
        return self.out_h * self.out_w

    @property
    def k(self) -> int:
        """Reduction length of one output (per group)."""
        return self.kh * self.kw * (self.in_c // self.groups)

    @property
    def macs(self) -> int:
        return self.m * self.k * self.out_c

    def band(self, th: int, tw: int) -> tuple[int, int]:
        """Input rows and columns a th x tw output tile reads (padding included)."""
        return (th - 1) * self.sh + (self.kh - 1) * self.dh + 1, \
            (tw - 1) * self.sw + (self.kw - 1) * self.dw + 1


@dataclass(frozen=True, eq=False)
class GemmBlock:
    """One dense sub-GEMM: input channels [c0, c0 + ic) -> output channels [n0, n0 + n).
    ``weight``/``codes`` are (KH*KW*ic, n) in (kh, kw, c) order (block-diagonal for groups)."""

    c0: int
    ic: int
    n0: int
    weight: np.ndarray        # (K, n) int64 levels the array multiplies (before block scales)
    codes: np.ndarray | None  # (K, n) stored codes when they differ (table / zero-point formats)
    bias: np.ndarray          # (n,) int64, input zero point folded in
    multiplier: np.ndarray
    shift: np.ndarray
    block_scale: np.ndarray | None = None  # (NB, n)
    block_zero: np.ndarray | None = None   # (NB, n)

    @property
    def n(self) -> int:
        return self.weight.shape[1]


@dataclass(frozen=True, eq=False)
class GemmKernel:
    kernel: Kernel
    geom: ConvGeom
    blocks: tuple[GemmBlock, ...]
    wbits: int
    out_zp: int
    lo: int
    hi: int
    lut: np.ndarray | None = None          # weight decode table (2**wbits,) levels
    block_size: int = 0
    block_mode: str = "none"
    post_table: np.ndarray | None = None   # fused function of the output code, or None
    pad_code: int = 0                      # the input code a padded position holds
    edge: bool = False                     # padded positions repeat the edge pixel instead
    wtrans: bool = False                   # weight tiles stored n rows of k codes (B^T)

    @property
    def name(self) -> str:
        return self.kernel.name

    def effective(self, block: GemmBlock) -> np.ndarray:
        """(K, n) int64: the weights the GEMMs apply, block factors included."""
        if block.block_scale is None:
            return block.weight
        blk = np.arange(block.weight.shape[0]) // self.block_size
        return block.weight * factors(block.block_scale, self.block_mode)[blk]


def lower_gemm(graph: QGraph, kernel: Kernel, flatten_src: dict[str, tuple],
               arch: ArchConfig) -> GemmKernel:
    node = kernel.anchor
    _check_shared_encoding(graph, kernel)
    geom = conv_geom(graph, kernel) if node.op == "conv2d" else linear_geom(graph, kernel)
    tin, out = graph.tensors[node.inputs[0]], graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    if kernel.has("relu"):
        lo = max(lo, out.zero_point)
    clamp = kernel.has("clamp")
    if clamp is not None:
        lo, hi = max(lo, clamp.attrs["lo"]), min(hi, clamp.attrs["hi"])
    table = kernel.has("lut")
    lut = node.params.get("weight_lut")
    size, mode = int(node.attrs.get("block_size", 0)), node.attrs.get("block_mode", "none")
    g = GemmKernel(kernel, geom, (), node.weight_bits or 8, out.zero_point, lo, hi,
                   None if lut is None else np.asarray(lut, dtype=np.int64), size,
                   mode if "block_scale" in node.params else "none",
                   None if table is None else np.asarray(table.params["table"], np.int64),
                   0 if tin.is_fp else tin.zero_point)
    step = groups_per_block(geom, arch)
    if "block_scale" in node.params and geom.groups > 1:
        step = _blocked_groups(geom, size, mode, step)
        g = GemmKernel(**{**g.__dict__, "block_size": size * step})
    blocks = _blocks(g, node, flatten_src, tin.zero_point, step)
    return GemmKernel(**{**g.__dict__, "blocks": blocks})


def _blocked_groups(geom: ConvGeom, size: int, mode: str, step: int) -> int:
    """Groups packed into one dense block of a grouped conv with block-scaled weights. A group's
    blocks run along its own (kh, kw, ic) reduction; packed (kh, kw, c) rows interleave the
    groups, so p groups pack only when a block holds whole kernel taps (size % icg == 0): rows
    [v * p * size, (v + 1) * p * size) then hold block v of every packed group, one scale byte
    per column. Else (and for zero points, which would make the off-group zeros nonzero) one
    group per dense block. The count divides the groups, so every dense block packs as many."""
    if mode == "mulzp" or size % (geom.in_c // geom.groups):
        return 1
    return max(d for d in range(1, step + 1) if geom.groups % d == 0)


def conv_geom(graph: QGraph, kernel: Kernel) -> ConvGeom:
    node = kernel.anchor
    in_h, in_w, in_c = image_shape(graph.shapes[node.inputs[0]])
    oc, kh, kw, _ = node.params["weight"].shape
    out_h, out_w, _ = image_shape(graph.shapes[node.output])
    (sh, sw), (dh, dw) = pair(node.attrs["stride"]), pair(node.attrs.get("dilation", 1))
    pt, pl, pb, pr = pad4(node.attrs.get("padding", 0))
    pool = kernel.has("maxpool2d")
    k = pair(pool.attrs["kernel"])[0] if pool else 1
    geom = ConvGeom(in_h, in_w, in_c, kh, kw, sh, sw, pt, pl, pb, pr, dh, dw,
                    (in_h + pt + pb - (kh - 1) * dh - 1) // sh + 1,
                    (in_w + pl + pr - (kw - 1) * dw - 1) // sw + 1, oc,
                    int(node.attrs.get("groups", 1)), k)
    if (geom.out_h, geom.out_w) != (out_h, out_w):
        raise UnsupportedOpError(f"layer {node.name}: output {out_h}x{out_w} does not match "
                                 f"its geometry ({geom.out_h}x{geom.out_w}, pool {k})")
    return geom


def linear_geom(graph: QGraph, kernel: Kernel) -> ConvGeom:
    """A 1x1 conv over the input's pixels: one for a vector, S tokens for a sequence (S, D)."""
    node = kernel.anchor
    out_f, in_f = node.params["weight"].shape
    h, w, c = image_shape(graph.shapes[node.inputs[0]])
    if c != in_f:
        raise UnsupportedOpError(f"layer {node.name}: input of shape "
                                 f"{tuple(graph.shapes[node.inputs[0]])} does not end in its "
                                 f"{in_f} input features")
    return ConvGeom(h, w, in_f, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, h, w, out_f, 1, 1)


def groups_per_block(geom: ConvGeom, arch: ArchConfig) -> int:
    """Groups packed into one dense block: as many as fill the array's columns and rows."""
    g = geom.groups
    if g == 1:
        return 1
    icg, ocg = geom.in_c // g, geom.out_c // g
    return max(1, min(g, arch.array_cols // max(ocg, 1), arch.array_rows // max(icg, 1)))


def _blocks(g: GemmKernel, node, flatten_src, zp_in: int, step: int
            ) -> tuple[GemmBlock, ...]:
    geom, p = g.geom, node.params
    if node.op == "linear":
        w = _linear_weight(np.asarray(p["weight"], np.int64), flatten_src.get(node.inputs[0]))
        codes = p.get("weight_codes")
        codes = None if codes is None else _linear_weight(np.asarray(codes, np.int64),
                                                          flatten_src.get(node.inputs[0]))
        return (_block(g, node, 0, geom.in_c, 0, w, codes, np.arange(geom.out_c), zp_in,
                       flatten_src),)
    return tuple(_conv_blocks(g, node, zp_in, flatten_src, step))


def _conv_blocks(g: GemmKernel, node, zp_in: int, flatten_src, step: int):
    geom, p = g.geom, node.params
    w = np.asarray(p["weight"], np.int64)          # (OC, KH, KW, ICg)
    codes = p.get("weight_codes")
    codes = None if codes is None else np.asarray(codes, np.int64)
    ng, icg, ocg = geom.groups, geom.in_c // geom.groups, geom.out_c // geom.groups
    zero_code = _zero_code(g, node)
    for b0 in range(0, ng, step):
        pg = min(step, ng - b0)
        ic, n = pg * icg, pg * ocg
        wb = np.zeros((geom.kh, geom.kw, ic, n), np.int64)
        cb = None if codes is None else np.full((geom.kh, geom.kw, ic, n), zero_code, np.int64)
        for j in range(pg):
            oc = slice((b0 + j) * ocg, (b0 + j + 1) * ocg)
            wb[:, :, j * icg:(j + 1) * icg, j * ocg:(j + 1) * ocg] = w[oc].transpose(1, 2, 3, 0)
            if cb is not None:
                cb[:, :, j * icg:(j + 1) * icg, j * ocg:(j + 1) * ocg] = \
                    codes[oc].transpose(1, 2, 3, 0)
        chans = np.arange(b0 * ocg, b0 * ocg + n)
        yield _block(g, node, b0 * icg, ic, b0 * ocg, wb.reshape(-1, n),
                     None if cb is None else cb.reshape(-1, n), chans, zp_in, flatten_src)


def _zero_code(g: GemmKernel, node) -> int:
    """The stored code whose weight is 0 (the zeros between groups of a block)."""
    if g.lut is None:
        return 0
    hits = np.flatnonzero(g.lut == 0)
    if not len(hits):
        raise UnsupportedOpError(f"layer {node.name}: its weight format has no code for 0, "
                                 "which a grouped conv's block-diagonal weights need")
    code = int(hits[0])
    return code - (1 << g.wbits) if code >= 1 << (g.wbits - 1) else code


def _block(g: GemmKernel, node, c0, ic, n0, w, codes, chans, zp_in, flatten_src) -> GemmBlock:
    p = node.params
    bs = bz = None
    if "block_scale" in p:
        bs, bz = _block_scales(g, node, flatten_src)
        bs, bz = bs[:, chans], None if bz is None else bz[:, chans]
    b = GemmBlock(c0, ic, n0, w, codes, np.zeros(len(chans), np.int64),
                  np.asarray(p["multiplier"], np.int64)[chans],
                  np.asarray(p["shift"], np.int64)[chans], bs, bz)
    bias = np.asarray(p["bias"], np.int64)[chans] - zp_in * g.effective(b).sum(axis=0)
    return GemmBlock(**{**b.__dict__, "bias": bias})


def _block_scales(g: GemmKernel, node, flatten_src):
    """(block_scale (NB, N), block_zero (NB, N) or None) in the array's K order."""
    p = node.params
    block_of = np.asarray(p["block_of"])
    if node.op == "linear":
        block_of = _linear_weight(block_of[None, :], flatten_src.get(node.inputs[0]))[:, 0]
    k, size = len(block_of), int(node.attrs.get("block_size", 0))
    if size < 1 or not np.array_equal(block_of, np.arange(k) // size):
        raise UnsupportedOpError(
            f"layer {node.name}: its weight blocks are not runs of {size} consecutive inputs in "
            "the order the array reduces them ((kh, kw, ic) for a conv, memory order after a "
            "flatten); quantize with qasic.quant, which forms blocks in that order")
    zero = p.get("block_zero")
    return (np.asarray(p["block_scale"], np.int64).T.copy(),
            None if zero is None else np.asarray(zero, np.int64).T.copy())


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
    """Fused clamps and max-pools write the anchor's encoding (a table may re-encode)."""
    want = graph.tensors[kernel.anchor.output]
    for n in kernel.nodes[1:]:
        if n.op != "lut" and graph.tensors[n.output] != want:
            raise UnsupportedOpError(
                f"node {n.name} ({n.op}) re-encodes its input ({graph.tensors[n.output]} vs "
                f"{want}); fused ReLU/clamp/max-pool must share the producer's scale and zero "
                "point")


def pe_weight_bits(g: GemmKernel) -> int:
    """Signed width of the integers the PEs multiply."""
    return g.kernel.anchor.pe_weight_bits or g.wbits


def stored(g: GemmKernel, block: GemmBlock) -> np.ndarray:
    """What DRAM holds, packed at wbits: the codes of a decoded format, else the weights."""
    return block.weight if block.codes is None else block.codes
