"""Vector-unit kernels -> steps: pooling (POOL), two-tensor elementwise (ADD), tables (LUT) and
nearest-neighbour upsampling (a table copy stored once per phase).

All work in the output scratchpad: a step loads its operands into one half, computes the result
next to them and stores it, so the next step's loads overlap this step's compute and store.
Each operand and the result sit at fixed offsets of the half, those of the full tile: a short
tile (a row's last columns) placing its result right after its smaller operands would put it
where the full tile two steps later loads, while the store may still read it (Inception V3's
3x3 pools: the program verifier refused a missing token).
Tiles are (rows, columns, channels) for pooling and (pixels, channels) for the rest, as large
as half the output scratchpad allows; channels are cut only when a pixel does not fit.
"""

from __future__ import annotations

import numpy as np

from qasic.arch.config import ArchConfig
from qasic.compiler.dma import band_loads, dma, pixel_loads, pixel_stores, tile_stores
from qasic.compiler.fuse import Kernel, pad4, pair
from qasic.compiler.memory import Buffer
from qasic.compiler.schedule import Step
from qasic.compiler.steps import Constants, halves
from qasic.errors import ConfigError
from qasic.isa.encoding import Instr
from qasic.quant import reference
from qasic.quant.graph import QGraph, QNode


def tile_ranges(total: int, size: int) -> list[tuple[int, int]]:
    """(start, length) of each tile of ``size`` (the last one shorter) covering ``total``."""
    return [(a, min(size, total - a)) for a in range(0, total, size)]


def _granule(buf: Buffer) -> int:
    """Fewest channels that fill whole bytes."""
    return 8 // buf.bits if buf.bits < 8 else 1


def too_small(kernel: Kernel, what: str, need: int, cap: int) -> ConfigError:
    """The error of a kernel whose smallest tile does not fit half the output scratchpad."""
    return ConfigError(f"arch config: sram.output_bytes is too small for layer {kernel.name}: "
                       f"{what} needs {need} bytes per half (double-buffered), the half holds "
                       f"{cap}; raise sram.output_bytes")


def code_table(graph: QGraph, node: QNode, storage_bits: int) -> bytes:
    """The 2^B-byte table of a function of one code (B = the stored bits of its input): entry
    i is the golden reference's output for the code whose low B bits are i."""
    tq = graph.tensors[node.inputs[0]]
    i = np.arange(1 << storage_bits, dtype=np.int64)
    codes = np.where(i >= 1 << (storage_bits - 1), i - (1 << storage_bits), i)
    codes = np.clip(codes, -128, 127) if tq.is_fp else np.clip(codes, tq.qmin, tq.qmax)
    out = reference.run_node(graph, node, [codes.reshape(1, 1, 1, -1)])
    return (np.asarray(out).reshape(-1) & 0xFF).astype(np.uint8).tobytes()


# ---- pooling ---------------------------------------------------------------------------------
def pool_steps(kernel: Kernel, graph: QGraph, arch: ArchConfig, src: Buffer, dst: Buffer,
               consts: Constants, const_base: int) -> list[Step]:
    node = kernel.anchor
    (kh, kw), (sh, sw) = pair(node.attrs["kernel"]), pair(node.attrs["stride"])
    pt, pl, _, _ = pad4(node.attrs.get("padding", 0))
    avg = node.op == "avgpool2d"
    tin, tout = graph.tensors[node.inputs[0]], graph.tensors[node.output]
    pad_code = (0 if tin.is_fp else tin.zero_point) if avg else tin.qmin
    p_off = const_base + consts.add(_pool_params(node, tin, tout)) if avg else None
    half = halves(arch)["output"]
    th, tw, ct = _pool_tile(kernel, src, dst, (kh, kw, sh, sw), half)
    res_at = ((th - 1) * sh + kh) * ((tw - 1) * sw + kw) * src.nbytes(ct)  # the full band's end
    steps = []
    for c0, cn in tile_ranges(src.c, ct):
        for oy, rows in tile_ranges(dst.h, th):
            for ox, cols in tile_ranges(dst.w, tw):
                bh, bw = (rows - 1) * sh + kh, (cols - 1) * sw + kw
                base = (len(steps) % 2) * half
                res = base + res_at
                step = Step()
                if avg and not steps:
                    step.loads += dma("LOAD", "param", p_off, 0, 24)
                step.loads += band_loads(src, "output", base, c0, cn, oy * sh - pt,
                                         ox * sw - pl, bh, bw, pad_code)
                step.computes.append(Instr("POOL", {
                    "src_addr": base, "dst_addr": res, "h": bh, "w": bw, "c": cn,
                    "src_pix_stride": src.nbytes(cn), "dst_pix_stride": dst.nbytes(cn),
                    "kh": kh, "kw": kw, "sh": sh, "sw": sw, "mode": "avg" if avg else "max",
                    "lo": tin.qmin if not avg else 0, "fmt": src.encoding,
                    "param_addr": 0}))
                step.stores += tile_stores(dst, res, oy, ox, rows, cols, c0, cn)
                steps.append(step)
    return steps


def _pool_params(node: QNode, tin, tout) -> bytes:
    lo, hi = node.attrs.get("clamp", (tout.qmin, tout.qmax))
    words = [0 if tin.is_fp else tin.zero_point, tout.zero_point,
             int(np.asarray(node.params["multiplier"]).reshape(-1)[0]),
             int(np.asarray(node.params["shift"]).reshape(-1)[0]), lo, hi]
    return np.asarray(words, dtype="<i4").tobytes()


def _pool_tile(kernel, src: Buffer, dst: Buffer, win, half: int) -> tuple[int, int, int]:
    """(output rows, output columns, channels) of the largest pooling tile that fits."""
    kh, kw, sh, sw = win

    def need(th, tw, ct):
        return ((th - 1) * sh + kh) * ((tw - 1) * sw + kw) * src.nbytes(ct) \
            + th * tw * dst.nbytes(ct)
    g = _granule(src)
    ct = src.c
    while ct > g and need(1, 1, ct) > half:
        ct = max(g, ct // 2 // g * g)
    if need(1, 1, ct) > half:
        raise too_small(kernel, f"one {kh}x{kw} window of {ct} channels", need(1, 1, ct), half)
    tw = dst.w
    while tw > 1 and need(1, tw, ct) > half:
        tw = (tw + 1) // 2
    th = 1
    while th < dst.h and need(th + 1, tw, ct) <= half:
        th += 1
    return th, tw, ct


# ---- elementwise of two tensors --------------------------------------------------------------
def ew_steps(kernel: Kernel, graph: QGraph, arch: ArchConfig, a: Buffer, b: Buffer,
             dst: Buffer, consts: Constants, const_base: int) -> list[Step]:
    """a, b and the result may differ in width (a residual sum written as int16)."""
    node = kernel.anchor
    bcast = (b.h, b.w) != (a.h, a.w)
    p_off = const_base + consts.add(_ew_params(kernel, graph))
    half = halves(arch)["output"]
    pixels, ct = _flat_tile(kernel, a, dst, half, operands=(a,) if bcast else (a, b),
                            extra_per_channel=b.nbytes(1) if bcast else 0)
    steps = []
    for c0, cn in tile_ranges(a.c, ct):
        for p0, n in tile_ranges(a.h * a.w, pixels):
            base = (len(steps) % 2) * half
            b_at = base + pixels * a.nbytes(ct)
            res = b_at + (b.nbytes(ct) if bcast else pixels * b.nbytes(ct))
            step = Step()
            if not steps:
                step.loads += dma("LOAD", "param", p_off, 0, 44)
            step.loads += pixel_loads(a, "output", base, p0, n, c0, cn)
            step.loads += pixel_loads(b, "output", b_at, 0 if bcast else p0, 1 if bcast else n,
                                      c0, cn)
            step.computes.append(Instr("ADD", {
                "a_addr": base, "b_addr": b_at, "dst_addr": res, "count": n * cn,
                "bcast": cn if bcast else 0, "op": node.op, "param_addr": 0,
                "fmt": a.encoding, "bfmt": b.encoding, "ofmt": dst.encoding}))
            step.stores += pixel_stores(dst, res, p0, n, c0, cn)
            steps.append(step)
    return steps


def _ew_params(kernel: Kernel, graph: QGraph) -> bytes:
    node = kernel.anchor
    out = graph.tensors[node.output]
    lo, hi = node.attrs.get("clamp", (out.qmin, out.qmax))
    if kernel.has("relu"):
        lo = max(lo, 0 if out.is_fp else out.zero_point)
    clamp = kernel.has("clamp")
    if clamp is not None:
        lo, hi = max(lo, clamp.attrs["lo"]), min(hi, clamp.attrs["hi"])
    q = np.asarray(node.params["multiplier"]).reshape(-1)
    s = np.asarray(node.params["shift"]).reshape(-1)
    za, zb = (graph.tensors[t].zero_point for t in node.inputs)
    if node.op == "add":
        words = [za, zb, out.zero_point, q[0], s[0], q[1], s[1], q[2], s[2], lo, hi]
    else:
        words = [za, zb, out.zero_point, 0, 0, 0, 0, q[0], s[0], lo, hi]
    return np.asarray(words, dtype="<i4").tobytes()


def _flat_tile(kernel, src: Buffer, dst: Buffer, half: int, operands: tuple[Buffer, ...],
               extra_per_channel: int = 0) -> tuple[int, int]:
    """(pixels, channels) per step: a tile of each of ``operands`` (shaped like ``src``) and
    one result tile per half."""
    g = max(_granule(t) for t in (*operands, dst))
    ct = src.c

    def per_pixel(c):
        return sum(t.nbytes(c) for t in operands) + dst.nbytes(c)
    while ct > g and per_pixel(ct) + extra_per_channel * ct > half:
        ct = max(g, ct // 2 // g * g)
    pixels = (half - extra_per_channel * ct) // per_pixel(ct)
    if pixels < 1:
        raise too_small(kernel, f"one pixel of {ct} channels", per_pixel(ct), half)
    return min(pixels, src.h * src.w), ct


# ---- tables and copies -----------------------------------------------------------------------
def lut_steps(kernel: Kernel, graph: QGraph, arch: ArchConfig, src: Buffer, dst: Buffer,
              consts: Constants, const_base: int, scale: tuple[int, int] = (1, 1)
              ) -> list[Step]:
    """A function of one code through a table; with ``scale`` (nearest upsampling) the result
    tile is stored once per phase, so every output pixel is written exactly once."""
    node = kernel.anchor
    table = code_table(graph, node, src.bits) if node.op != "upsample_nearest" else \
        _identity(src.bits)
    if len(table) > arch.param_sram_bytes:  # loaded once, so it may span both halves
        raise ConfigError(f"arch config: sram.param_bytes is too small for layer {kernel.name}: "
                          f"its {len(table)}-byte table needs {len(table)} bytes, the param "
                          f"scratchpad holds {arch.param_sram_bytes}; raise sram.param_bytes")
    t_off = const_base + consts.add(table)
    half = halves(arch)["output"]
    fh, fw = scale
    if (fh, fw) == (1, 1):
        pixels, ct = _flat_tile(kernel, src, dst, half, operands=(src,))
        tiles = [(c0, cn, p0, n) for c0, cn in tile_ranges(src.c, ct)
                 for p0, n in tile_ranges(src.h * src.w, pixels)]
    else:  # whole input rows, so each phase stores a rectangle
        pixels, ct = _flat_tile(kernel, src, dst, half, operands=(src,))
        if pixels < src.w:  # a row of every channel does not fit: a row of fewer channels
            pixels, ct = _row_tile(kernel, src, dst, half)
        rows = pixels // src.w
        tiles = [(c0, cn, y0 * src.w, n * src.w) for c0, cn in tile_ranges(src.c, ct)
                 for y0, n in tile_ranges(src.h, rows)]
    steps = []
    for c0, cn, p0, n in tiles:
        base = (len(steps) % 2) * half
        res = base + pixels * src.nbytes(ct)
        step = Step()
        if not steps:
            step.loads += dma("LOAD", "param", t_off, 0, len(table))
        step.loads += pixel_loads(src, "output", base, p0, n, c0, cn)
        step.computes.append(Instr("LUT", {"src_addr": base, "dst_addr": res, "count": n * cn,
                                           "table_addr": 0, "fmt": src.encoding,
                                           "ofmt": dst.encoding}))
        if (fh, fw) == (1, 1):
            step.stores += pixel_stores(dst, res, p0, n, c0, cn)
        else:
            y0, rows = p0 // src.w, n // src.w
            for a in range(fh):
                for b in range(fw):
                    step.stores += tile_stores(dst, res, y0 * fh + a, b, rows, src.w, c0, cn,
                                               sy=fh, sx=fw)
        steps.append(step)
    return steps


def _row_tile(kernel: Kernel, src: Buffer, dst: Buffer, half: int) -> tuple[int, int]:
    """(pixels: whole input rows, channels) of the largest tile of whole rows that fits (a
    nearest upsampling of a narrow, deep map: MobileNetV2's 2x2x1280 under a U-Net)."""
    g = max(_granule(src), _granule(dst))

    def row(c):
        return src.w * (src.nbytes(c) + dst.nbytes(c))
    ct = src.c
    while ct > g and row(ct) > half:
        ct = max(g, ct // 2 // g * g)
    if row(ct) > half:
        raise too_small(kernel, f"one input row of {ct} channels", row(ct), half)
    return min(src.h, half // row(ct)) * src.w, ct


def _identity(bits: int) -> bytes:
    return (np.arange(1 << bits) & 0xFF).astype(np.uint8).tobytes()
