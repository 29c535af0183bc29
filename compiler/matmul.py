"""The matmul of two activations (attention's Q K^T and P V) on the array.

The first operand a (H, S, K) streams into the array like a linear layer's input over H x S
pixels; the second, b, is the weight operand, loaded per head from its DRAM buffer into the
weight scratchpad (dynamic weights): b (H, K, N) as k rows of n codes, or with transpose_b b
(H, N, K), whose rows are exactly a transposed tile's n rows of k codes (GEMM wtrans, Gemmini's
b_transpose), so neither layout is rearranged. The geometry is a 1x1 conv over an H x S image
whose weights change with every image row (one head each), so the mapper's tiles are one row
tall (compiler.mapper Layer.heads) and everything else (c- and n-tiles, loop order, double
buffering, POST) is a GEMM kernel's (compiler.steps). POST requantizes with the node's
multiplier, repeated per output channel, bias 0 (but below).

Operands are symmetric (zero point 0: an input zero point would need a bias that depends on b)
INT codes at their stored width, b's stored bits being the GEMM's wbits (packed INT4 codes
multiply as 4-bit weights), or FP8 codes: a streams them as its afmt, b's decode through the
GEMM's table of the format's fixed-point levels (as FP8 weights do), on an array whose PEs take
those levels (array.*_shift_bits). One exception: b may have a zero point z when a is a
constant whose rows all sum to one S (a resize's interpolation rows, qasic.compiler.resize):
a @ (b - z) = a @ b - z S, one bias for every output.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.arch.pe import significand_bits
from qasic.compiler import mapper
from qasic.compiler.accumulator import overflow
from qasic.compiler.dma import dma
from qasic.compiler.fuse import Kernel
from qasic.compiler.gemm import ConvGeom, GemmBlock, GemmKernel
from qasic.compiler.memory import Buffer, image_shape
from qasic.compiler.steps import Constants, WeightTile, gemm_steps
from qasic.errors import ConfigError, UnsupportedOpError
from qasic.isa.table import LUT_ENTRY_BYTES, POST_PARAM_BYTES_PER_CHANNEL
from qasic.quant import actformat
from qasic.quant.graph import QGraph


def lower_matmul(graph: QGraph, k: Kernel, arch: ArchConfig, a: Buffer, b: Buffer, dst: Buffer,
                 consts: Constants, const_base: int, info: dict):
    g = matmul_kernel(graph, k, arch, a, b)
    layer = mapper.Layer(name=k.name, geom=g.geom, blocks=1, ic=g.geom.in_c, n=g.geom.out_c,
                         in_bits=a.bits, out_bits=dst.bits, wbits=g.wbits, scale_rows=0,
                         decode_bytes=0 if g.lut is None else LUT_ENTRY_BYTES << g.wbits,
                         table_bytes=0, heads=g.geom.in_h)
    m = mapper.choose(layer, arch)
    steps = gemm_steps(g, m, arch, a, dst, consts, const_base,
                       weights=lambda *args: dynamic_weights(g, b, arch, *args))
    geom = g.geom
    info.update(weight_bits=g.wbits, macs=geom.macs, m=geom.m, k=geom.in_c, n=geom.out_c,
                groups=1, heads=geom.in_h, transpose_b=g.wtrans,
                mapping=asdict(m),
                mapped_dram_bytes=sum(mapper.traffic(layer, m, arch).values()),
                compulsory_dram_bytes=a.payload + b.payload + dst.payload + layer.decode_bytes
                + geom.out_c * POST_PARAM_BYTES_PER_CHANNEL)
    return steps, info


def matmul_kernel(graph: QGraph, k: Kernel, arch: ArchConfig, a: Buffer, b: Buffer
                  ) -> GemmKernel:
    """The GEMM kernel of a matmul: its geometry, one block of POST parameters (no constant
    weights: they are b's codes), after checking the operands."""
    node = k.anchor
    _check_operands(graph, node, arch, b)
    trans = bool(node.attrs.get("transpose_b", False))
    heads, s, kk = image_shape(graph.shapes[node.inputs[0]])
    hb, rows, cols = image_shape(graph.shapes[node.inputs[1]])
    n, kb = (rows, cols) if trans else (cols, rows)
    if kb != kk or hb not in (1, heads) or image_shape(graph.shapes[node.output]) != (heads, s, n):
        raise UnsupportedOpError(
            f"matmul {node.name}: operands {tuple(graph.shapes[node.inputs[0]])} and "
            f"{tuple(graph.shapes[node.inputs[1]])} (transpose_b {trans}) are not (H, S, K) x "
            f"(H or 1, {'N, K' if trans else 'K, N'}); the array runs equal heads or a shared b")
    geom = ConvGeom(heads, s, kk, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, heads, s, n, 1, 1)
    out = graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    p = node.params
    block = GemmBlock(0, kk, 0, np.zeros((0, n), np.int64), None,
                      np.full(n, _zero_point_bias(graph, node, kk), np.int64),
                      _per_channel(p["multiplier"], n), _per_channel(p["shift"], n))
    _check_accumulator(graph, node, arch, kk)
    tb = graph.tensors[node.inputs[1]]
    lut = np.asarray(actformat.levels(tb.fmt), np.int64) if tb.is_fp else None
    return GemmKernel(k, geom, (block,), b.bits, out.zero_point, lo, hi, lut, wtrans=trans)


def _per_channel(v, n: int) -> np.ndarray:
    return np.broadcast_to(np.asarray(v, np.int64).reshape(-1), (n,)).copy()


def _zero_point_bias(graph: QGraph, node, k: int) -> int:
    """-z S for b's zero point z and a constant a whose rows all sum to S (else 0: checked)."""
    zb = graph.tensors[node.inputs[1]].zero_point
    sums = _constant_row_sums(graph, node.inputs[0], k)
    return -zb * int(sums[0]) if zb and sums is not None else 0


def _constant_row_sums(graph: QGraph, name: str, k: int) -> np.ndarray | None:
    """The row sums of a constant INT operand of zero point 0 when they are all equal."""
    src = next((n for n in graph.nodes if n.output == name and n.op == "constant"), None)
    tq = graph.tensors[name]
    if src is None or tq.zero_point or tq.is_fp:
        return None
    sums = np.asarray(src.params["value"], np.int64).reshape(-1, k).sum(axis=1)
    return sums if (sums == sums[0]).all() else None


def _check_operands(graph: QGraph, node, arch: ArchConfig, b: Buffer) -> None:
    k = image_shape(graph.shapes[node.inputs[0]])[2]
    for i, t in enumerate(node.inputs):
        tq = graph.tensors[t]
        if tq.zero_point and not (i == 1 and _constant_row_sums(graph, node.inputs[0], k)
                                  is not None):
            raise UnsupportedOpError(
                f"matmul {node.name}: operand {t} has zero point {tq.zero_point}; the array "
                "multiplies two activations as symmetric codes (zero point 0): quantize both "
                "operands symmetrically")
    ta, tb = (graph.tensors[t] for t in node.inputs)
    need = significand_bits(ta.pe_levels(), arch.input_shift_bits)
    if need > arch.input_bits:
        raise ConfigError(f"layer {node.name} reads {node.inputs[0]} needing {need}-bit PE "
                          f"inputs but the array's PEs take array.input_bits = "
                          f"{arch.input_bits}; raise array.input_bits (or "
                          "array.input_shift_bits) or quantize it to fewer bits")
    need = significand_bits(tb.pe_levels(), arch.weight_shift_bits) if tb.is_fp else b.bits
    if need > arch.weight_bits:
        raise ConfigError(f"layer {node.name} multiplies {node.inputs[1]} as {need}-bit "
                          f"weights but the array's PEs take array.weight_bits = "
                          f"{arch.weight_bits}; raise array.weight_bits (or "
                          "array.weight_shift_bits) or quantize it to fewer bits")


def _check_accumulator(graph: QGraph, node, arch: ArchConfig, k: int) -> None:
    """|sum a b| <= K * 2^(Ba-1) * 2^(Bb-1) must stay below 2^(acc_bits-1)."""
    ta, tb = (graph.tensors[t] for t in node.inputs)
    worst = k * ta.max_magnitude * tb.max_magnitude
    if worst >= 1 << (arch.acc_bits - 1):
        raise overflow(arch, node.name, worst)


def dynamic_weights(g: GemmKernel, b: Buffer, arch: ArchConfig, bi, block, ntiles, ctiles, fl):
    """b's weight tiles, per head: an n-tile's every c-tile in one span when they fit half the
    weight scratchpad, else one span per c-tile (compiler.steps const_weights alike). Within a
    c-tile the column groups follow one another, each holding its folds in order."""
    half = arch.weight_sram_bytes // 2
    plans = {(j, t): _plan(g, b, arch, j, t, fl[t]) for j in ntiles for t in ctiles}
    spans = {}
    for j in ntiles:
        sizes = [plans[j, t][0] for t in ctiles]
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        spans[j] = (sum(sizes) <= half, dict(zip(ctiles, (int(x) for x in starts))))

    def tile(j, t, s) -> WeightTile:
        head = s[0] if b.h > 1 else 0
        resident, starts = spans[j]
        if resident:
            def loads(base):
                return [i for u in ctiles for i in plans[j, u][2](head, base + starts[u])]
            return WeightTile((bi, j, head), starts[t], plans[j, t][1], loads)
        return WeightTile((bi, j, t, head), 0, plans[j, t][1],
                          lambda base: plans[j, t][2](head, base))
    return tile


def _plan(g: GemmKernel, b: Buffer, arch: ArchConfig, j, t, folds):
    """(bytes, offs[fold][column group], loads(head, base)) of one (n-tile, c-tile)."""
    (n0, nt), c0, ct, cols = j, t.c0, t.ct, arch.array_cols
    groups = [(gc0, min(cols, nt - gc0)) for gc0 in range(0, nt, cols)]
    offs, at, starts = [[0] * len(groups) for _ in folds], 0, []
    for gi, (_, gn) in enumerate(groups):
        starts.append(at)
        for fi, f in enumerate(folds):
            offs[fi][gi] = at
            at += gn * b.nbytes(f.k) if g.wtrans else f.k * b.nbytes(gn)

    def loads(head: int, base: int) -> list:
        out = []
        for gi, ((gc0, gn), st) in enumerate(zip(groups, starts)):
            if not g.wtrans:  # k rows (b's tokens c0..) of gn codes: one strided copy
                out += dma("LOAD", "weight", b.pixel_addr(head, c0, n0 + gc0), base + st,
                           b.nbytes(gn), rows=ct, dram_stride=b.pix, sram_stride=b.nbytes(gn))
                continue
            for fi, run in _runs(folds):  # gn rows (b's tokens) of each fold's k codes
                f, k = folds[fi], folds[fi].k
                out += dma("LOAD", "weight", b.pixel_addr(head, n0 + gc0, f.k0),
                           base + offs[fi][gi], b.nbytes(k), rows=gn, dram_stride=b.pix,
                           sram_stride=b.nbytes(k), planes=run, dram_plane=b.nbytes(k),
                           sram_plane=gn * b.nbytes(k))
        return out
    return at, offs, loads


def _runs(folds) -> list[tuple[int, int]]:
    """(first fold, count) of each run of consecutive folds of equal k (one 3-D copy each)."""
    out: list[list[int]] = []
    for i, f in enumerate(folds):
        last = folds[i - 1] if i else None
        if out and last.k == f.k and last.k0 + last.k == f.k0:
            out[-1][1] += 1
        else:
            out.append([i, 1])
    return [(a, n) for a, n in out]
