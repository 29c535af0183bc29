"""Kernel -> steps of instructions (no tokens yet; compiler.schedule adds them)."""

from __future__ import annotations

import numpy as np

from qasic.arch.config import PARAM_BYTES_PER_CHANNEL, ArchConfig
from qasic.compiler.gemm import GemmKernel, GemmPlan, stored
from qasic.compiler.memory import Buffer
from qasic.compiler.schedule import Step
from qasic.errors import ConfigError
from qasic.isa import lut
from qasic.isa.encoding import Instr
from qasic.isa.packing import pack_bits
from qasic.isa.table import ADD_PARAM_BYTES, BSCALE_BYTES, BY_NAME, POST_PARAM_DTYPE

MAX_DMA_ROWS = (1 << BY_NAME["LOAD"].field("rows").width) - 1


class Constants:
    """Append-only constants blob; returns each item's offset (64-byte aligned)."""

    def __init__(self) -> None:
        self.blob = bytearray()

    def add(self, data: bytes) -> int:
        self.blob += bytes(-len(self.blob) % 64)
        off = len(self.blob)
        self.blob += data
        return off


def dma(op: str, mem: str, dram: int, dram_stride: int, sram: int, sram_stride: int, rows: int,
        row_bytes: int) -> list[Instr]:
    out = []
    for r0 in range(0, rows, MAX_DMA_ROWS):
        n = min(MAX_DMA_ROWS, rows - r0)
        out.append(Instr(op, {"mem": mem, "dram_addr": dram + r0 * dram_stride,
                                  "dram_stride": dram_stride, "sram_addr": sram + r0 * sram_stride,
                                  "sram_stride": sram_stride, "rows": n, "row_bytes": row_bytes}))
    return out


def post_params(bias, mult, shift) -> bytes:
    """Per channel: isa.table.POST_PARAMS (int64 bias, int32 multiplier and shift)."""
    rec = np.zeros(len(bias), dtype=POST_PARAM_DTYPE)
    rec["bias"], rec["multiplier"], rec["shift"] = bias, mult, shift
    return rec.tobytes()


def _halves(arch: ArchConfig) -> dict[str, int]:
    return {"input": arch.input_sram_bytes // 2, "weight": arch.weight_sram_bytes // 2,
            "output": arch.output_sram_bytes // 2, "param": arch.param_sram_bytes // 2}


def gemm_steps(g: GemmKernel, plan: GemmPlan, arch: ArchConfig, src: Buffer, dst: Buffer,
               consts: Constants, const_base: int) -> list[Step]:
    s, half = g.shape, _halves(arch)
    steps = []
    for j, n0 in enumerate(range(0, s.n, plan.n_tile)):
        nt = min(plan.n_tile, s.n - n0)
        w_off = const_base + consts.add(pack_bits(stored(g)[:, n0:n0 + nt], g.wbits))
        params = post_params(g.bias[n0:n0 + nt], g.multiplier[n0:n0 + nt], g.shift[n0:n0 + nt])
        if g.lut is not None:  # the decode table follows the per-channel parameters
            params += lut.encode(g.lut).astype("<u4").tobytes()
        p_off = const_base + consts.add(params)
        lut_addr = (j % 2) * half["param"] + nt * PARAM_BYTES_PER_CHANNEL
        wbuf, pbuf = (j % 2) * half["weight"], (j % 2) * half["param"]
        wloads, folds = _weight_folds(g, arch, consts, const_base, w_off, wbuf, n0, nt)
        for i, m0 in enumerate(range(0, s.m, plan.tile_rows)):
            rows = min(plan.tile_rows, s.m - m0)
            step = Step()
            if i == 0:
                step.loads += wloads
                step.loads += dma("LOAD", "param", p_off, 0, pbuf, 0, 1, len(params))
            ibuf = (len(steps) % 2) * half["input"]
            obuf = (len(steps) % 2) * half["output"]
            step.loads += _input_loads(g, src, m0, rows, ibuf)
            step.computes += _gemms(g, arch, ibuf, folds, rows, nt, lut_addr, src)
            # The POST reads the param half after the last GEMM, so it frees the load halves
            # (input, weight, param) for step + 2; it is also the first output writer.
            step.last_input_reader = len(step.computes)
            step.first_output_writer = len(step.computes)
            orow = dst.nbytes(nt)  # an output row of nt codes, packed at dst.bits
            step.computes.append(Instr("POST", {
                "acc_addr": 0, "param_addr": pbuf, "out_addr": obuf, "out_stride": orow,
                "rows": rows, "n": nt, "out_zp": g.out_zp, "lo": g.lo, "hi": g.hi,
                "ofmt": dst.encoding}))
            res, first, count = obuf, m0, rows
            if s.pool > 1:
                res = obuf + rows * orow
                step.computes.append(Instr("POOL", {
                    "src_addr": obuf, "dst_addr": res, "h": rows // s.out_w, "w": s.out_w,
                    "c": nt, "src_pix_stride": orow, "dst_pix_stride": orow, "kernel": s.pool,
                    "stride": s.pool, "lo": g.lo, "fmt": dst.encoding}))
                first, count = m0 // (s.pool * s.pool), rows // (s.pool * s.pool)
            step.stores += _stores(dst, first, count, res, nt, n0)
            steps.append(step)
    return steps


def _input_loads(g: GemmKernel, src: Buffer, m0: int, rows: int, ibuf: int) -> list[Instr]:
    s, row = g.shape, src.nbytes(g.shape.k)  # an im2col row: K codes packed at src.bits
    if s.kh == s.kw == 1 and s.out_h == 1 and s.out_w == 1:  # a vector (linear)
        return dma("LOAD", "input", src.addr, row, ibuf, row, 1, row)
    out = []
    for r, oy in enumerate(range(m0 // s.out_w, (m0 + rows) // s.out_w)):
        for ky in range(s.kh):
            dram = src.pixel_addr(oy * s.stride + ky - s.pad, -s.pad)
            sram = ibuf + r * s.out_w * row + ky * s.kw * src.pix
            out += dma("LOAD", "input", dram, s.stride * src.pix, sram, row, s.out_w,
                       s.kw * src.pix)
    return out


def _weight_folds(g: GemmKernel, arch: ArchConfig, consts: Constants, const_base: int,
                  w_off: int, wbuf: int, n0: int, nt: int):
    """LOADs of one n-tile's weights and the (k0, k, weight address) of each fold.

    Unblocked: the K packed rows in one copy. Block-scaled: DRAM holds the K rows and then one
    row of nt scale bytes per block; the scratchpad gets, for every fold, its block's scale row
    followed by the fold's weight rows (the GEMM bscale layout, isa.table)."""
    wrow = (nt * g.wbits + 7) // 8
    if g.block_scale is None:
        folds = [(k0, k, wbuf + k0 * wrow) for k0, k, _ in g.folds(arch.array_rows)]
        return dma("LOAD", "weight", w_off, wrow, wbuf, wrow, g.shape.k, wrow), folds
    srow = nt * BSCALE_BYTES
    s_off = const_base + consts.add(g.block_scale[:, n0:n0 + nt].astype(np.uint8).tobytes())
    z_off = None if g.block_zero is None else const_base + consts.add(
        g.block_zero[:, n0:n0 + nt].astype(np.int8).tobytes())
    loads, folds, addr = [], [], wbuf
    for k0, k, b in g.folds(arch.array_rows):
        loads += dma("LOAD", "weight", s_off + b * srow, srow, addr, srow, 1, srow)
        head = srow
        if z_off is not None:  # mulzp: the zero-point row follows the scale row
            loads += dma("LOAD", "weight", z_off + b * srow, srow, addr + srow, srow, 1, srow)
            head += srow
        loads += dma("LOAD", "weight", w_off + k0 * wrow, wrow, addr + head, wrow, k, wrow)
        folds.append((k0, k, addr))
        addr += head + k * wrow
    return loads, folds


def _gemms(g: GemmKernel, arch: ArchConfig, ibuf: int, folds: list, rows: int, nt: int,
           lut_addr: int, src: Buffer):
    out, row = [], src.nbytes(g.shape.k)
    for c0 in range(0, rows, arch.gemm_max_rows):
        t = min(arch.gemm_max_rows, rows - c0)
        for k0, k, waddr in folds:
            out.append(Instr("GEMM", {
                "inp_addr": ibuf + c0 * row + src.nbytes(k0), "inp_stride": row, "wgt_addr": waddr,
                "acc_addr": c0 * nt, "rows": t, "k": k, "n": nt,
                "accumulate": int(k0 > 0), "wbits": g.wbits, "lut": int(g.lut is not None),
                "lut_addr": lut_addr if g.lut is not None else 0, "bscale": g.block_mode,
                "afmt": src.encoding}))
    return out


def _stores(dst: Buffer, first: int, count: int, sram: int, nt: int, n0: int) -> list[Instr]:
    """Pixels of nt channels (from channel n0) from the output scratchpad to ``dst``."""
    out, done, row = [], 0, dst.nbytes(nt)
    for addr, pixels in dst.runs(first, count):
        out += dma("STORE", "output", addr + dst.nbytes(n0), dst.pix, sram + done * row, row,
                   pixels, row)
        done += pixels
    return out


def pool_steps(kernel, arch: ArchConfig, src: Buffer, dst: Buffer, lo: int) -> list[Step]:
    """Standalone max-pool (or ReLU as a 1x1 pool with floor ``lo``), tiled by output rows."""
    node = kernel.anchor
    k, st = (node.attrs["kernel"], node.attrs["stride"]) if node.op == "maxpool2d" else (1, 1)
    c, half = src.pix, _halves(arch)["output"]  # c: bytes per pixel
    per_out_row = (st * src.w + dst.w) * c  # input rows advance by stride per output row
    tile = max(1, min(dst.h, (half - (k - st) * src.w * c) // per_out_row))
    if (k - st + st * tile) * src.w * c + tile * dst.w * c > half:
        raise ConfigError(f"arch config: sram.output_bytes is too small for layer {node.name}: "
                          "one pooled row does not fit half of it; raise sram.output_bytes")
    steps = []
    for oy0 in range(0, dst.h, tile):
        t = min(tile, dst.h - oy0)
        in_rows = (t - 1) * st + k
        obuf = (len(steps) % 2) * half
        res = obuf + in_rows * src.w * c
        step = Step(last_input_reader=0, first_output_writer=0)
        done = 0
        for addr, pixels in src.runs(oy0 * st * src.w, in_rows * src.w):
            step.loads += dma("LOAD", "output", addr, c, obuf + done * c, c, pixels, c)
            done += pixels
        step.computes.append(Instr("POOL", {
            "src_addr": obuf, "dst_addr": res, "h": in_rows, "w": src.w, "c": src.c,
            "src_pix_stride": c, "dst_pix_stride": c, "kernel": k, "stride": st, "lo": lo,
            "fmt": src.encoding}))
        step.stores += _stores(dst, oy0 * dst.w, t * dst.w, res, dst.c, 0)
        steps.append(step)
    return steps




def add_steps(kernel, graph, arch: ArchConfig, a: Buffer, b: Buffer, dst: Buffer,
              consts: Constants, const_base: int) -> list[Step]:
    node = kernel.anchor
    out = graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    if kernel.has("relu"):
        lo = max(lo, out.zero_point)
    q, sh = node.params["multiplier"], node.params["shift"]
    params = [graph.tensors[node.inputs[0]].zero_point, graph.tensors[node.inputs[1]].zero_point,
              out.zero_point, q[0], sh[0], q[1], sh[1], q[2], sh[2], lo, hi]
    p_off = const_base + consts.add(np.asarray(params, dtype="<i4").tobytes())
    c, half = a.pix, _halves(arch)["output"]  # c: bytes per pixel
    tile = min(a.h * a.w, half // (3 * c), 65535 // a.c)
    steps = []
    for p0 in range(0, a.h * a.w, tile):
        t = min(tile, a.h * a.w - p0)
        obuf = (len(steps) % 2) * half
        step = Step(last_input_reader=0, first_output_writer=0)
        if not steps:
            step.loads += dma("LOAD", "param", p_off, 0, 0, 0, 1, ADD_PARAM_BYTES)
        for buf, base in ((a, obuf), (b, obuf + t * c)):
            done = 0
            for addr, pixels in buf.runs(p0, t):
                step.loads += dma("LOAD", "output", addr, c, base + done * c, c, pixels, c)
                done += pixels
        step.computes.append(Instr("ADD", {"a_addr": obuf, "b_addr": obuf + t * c,
                                           "dst_addr": obuf + 2 * t * c, "count": t * a.c,
                                           "param_addr": 0, "fmt": a.encoding}))
        step.stores += _stores(dst, p0, t, obuf + 2 * t * c, dst.c, 0)
        steps.append(step)
    return steps
