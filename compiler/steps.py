"""GEMM kernels -> steps of instructions (no tokens yet; compiler.schedule adds them).

The loop nest is the mapper's (compiler.mapper): for each group block, n-tiles, spatial tiles and
K tiles in the chosen order; a step is one (n-tile, spatial tile, K tile). A K tile is a c-tile
(input channels) of a range of kernel rows (every row unless the mapping's ``kt`` splits them),
the kernel rows inner. An operand is loaded only when the tile it needs changes: the input band
(every kernel row's) once per (spatial tile, c-tile) unless the whole-channel band is still on
chip, an n-tile's weights once when they all fit half the weight scratchpad, else per K tile. A
step accumulates every fold of its K tile into the accumulator tile, continuing the partial sums
of the K tiles before it (only the first fold of the first K tile overwrites); the last K tile's
step post-processes (POST, with the fused table; the fused max-pool) and stores.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache

import numpy as np

from qasic.arch.config import PARAM_BYTES_PER_CHANNEL, ArchConfig
from qasic.compiler import mapper
from qasic.compiler.dma import band_loads, dma, tile_stores
from qasic.compiler.gemm import GemmBlock, GemmKernel, stored
from qasic.compiler.memory import Buffer
from qasic.compiler.schedule import Step
from qasic.isa import lut
from qasic.isa.encoding import Instr
from qasic.isa.packing import pack_bits
from qasic.isa.table import BSCALE_BYTES, POST_PARAM_DTYPE


class Constants:
    """Append-only constants blob; returns each item's offset (64-byte aligned)."""

    def __init__(self) -> None:
        self.blob = bytearray()

    def add(self, data: bytes) -> int:
        self.blob += bytes(-len(self.blob) % 64)
        off = len(self.blob)
        self.blob += data
        return off


def post_params(bias, mult, shift) -> bytes:
    """Per channel: isa.table.POST_PARAMS (int64 bias, int32 multiplier and shift)."""
    rec = np.zeros(len(bias), dtype=POST_PARAM_DTYPE)
    rec["bias"], rec["multiplier"], rec["shift"] = bias, mult, shift
    return rec.tobytes()


def halves(arch: ArchConfig) -> dict[str, int]:
    return {"input": arch.input_sram_bytes // 2, "weight": arch.weight_sram_bytes // 2,
            "output": arch.output_sram_bytes // 2, "param": arch.param_sram_bytes // 2}


@dataclass(frozen=True)
class Fold:
    """One GEMM's reduction: k consecutive K rows k0.. of a block, read as k consecutive band
    codes starting ``off`` codes after the vector's band pixel of kernel row ``kh``."""

    kh: int
    off: int
    k: int
    k0: int
    blk: int


@dataclass(frozen=True)
class KTile:
    """A tile of K: input channels [c0, c0 + ct) of kernel rows [y0, y0 + yt)."""

    c0: int
    ct: int
    y0: int
    yt: int


def ktiles(ic: int, ct: int, kh: int, kt: int) -> list[KTile]:
    """The K tiles of a block of ``ic`` channels, kernel rows inner (``kt`` 0: every row)."""
    return [KTile(c0, n, y0, yt) for c0, n in _tiles(ic, ct) for y0, yt in _tiles(kh, kt or kh)]


def folds(g: GemmKernel, ic: int, t: KTile, rows: int) -> list[Fold]:
    """The folds of K tile ``t`` of a block of ``ic`` input channels."""
    geom, size = g.geom, g.block_size or (1 << 62)
    c0, ct = t.c0, t.ct
    out = []
    kw, c = np.meshgrid(np.arange(geom.kw), np.arange(ct), indexing="ij")
    krow0 = kw * ic + c0 + c                          # K row (kh = 0) of each band code
    off = kw * geom.dw * ct + c                       # band codes from the vector's pixel
    seg = np.zeros_like(kw) if geom.dw == 1 else kw   # dilated kernel columns are apart
    krow0, off, seg = krow0.ravel(), off.ravel(), seg.ravel()
    for kh in range(t.y0, t.y0 + t.yt):
        krow = krow0 + kh * geom.kw * ic
        cut = np.ones(len(krow), bool)
        cut[1:] = (np.diff(krow) != 1) | (np.diff(seg) != 0) | (np.diff(krow // size) != 0)
        starts = list(np.flatnonzero(cut)) + [len(krow)]
        for a, b in itertools.pairwise(starts):
            for s in range(a, b, rows):
                k = min(rows, b - s)
                out.append(Fold(kh, int(off[s]), k, int(krow[s]), int(krow[s] // size)
                                if g.block_size else 0))
    return out


class _Blobs:
    """Weight and parameter blobs of one GEMM kernel, in the order the folds read them."""

    def __init__(self, g: GemmKernel, arch: ArchConfig, consts: Constants, const_base: int,
                 post_table: bytes) -> None:
        self.g, self.arch, self.consts, self.base = g, arch, consts, const_base
        self.post_table = post_table
        self._packed: dict = {}
        self._params: dict = {}  # (block, n-tile) -> DRAM address of its parameter blob

    def packed(self, b: int, block: GemmBlock, n0: int, n: int) -> np.ndarray:
        """(K, row bytes) packed codes of output channels [n0, n0 + n) of block b."""
        key = (b, n0, n)
        if key not in self._packed:
            st = stored(self.g, block)[:, n0:n0 + n]
            row = (n * self.g.wbits + 7) // 8
            raw = np.frombuffer(pack_bits(st, self.g.wbits), np.uint8)
            self._packed[key] = raw.reshape(len(st), row)
        return self._packed[key]

    def weights(self, b: int, block: GemmBlock, n0: int, nt: int, fl: list[Fold]
                ) -> tuple[bytes, list[list[int]]]:
        """(blob, offsets[fold][column group]) of one n-tile and c-tile."""
        cols, parts, offs, at = self.arch.array_cols, [], [], 0
        for f in fl:
            row_offs = []
            for gc0 in range(0, nt, cols):
                gn = min(cols, nt - gc0)
                sl = slice(n0 + gc0, n0 + gc0 + gn)
                row_offs.append(at)
                if block.block_scale is not None:
                    head = block.block_scale[f.blk, sl].astype(np.uint8).tobytes()
                    if block.block_zero is not None:
                        head += block.block_zero[f.blk, sl].astype(np.int8).tobytes()
                    parts.append(head)
                    at += len(head)
                rows = self.packed(b, block, n0 + gc0, gn)[f.k0:f.k0 + f.k].tobytes()
                parts.append(rows)
                at += len(rows)
            offs.append(row_offs)
        return b"".join(parts), offs

    def params(self, block: GemmBlock, n0: int, nt: int) -> bytes:
        sl = slice(n0, n0 + nt)
        out = post_params(block.bias[sl], block.multiplier[sl], block.shift[sl])
        if self.g.lut is not None:
            out += lut.encode(self.g.lut).astype("<u4").tobytes()
        return out + self.post_table

    def place(self, data: bytes) -> int:
        return self.base + self.consts.add(data)


def _tiles(total: int, size: int) -> list[tuple[int, int]]:
    return [(a, min(size, total - a)) for a in range(0, total, size)]


def _loop(order: str, ntiles, spatial, ctiles):
    if order == "n_outer":
        return [(j, s, t) for j in ntiles for s in spatial for t in ctiles]
    return [(j, s, t) for s in spatial for j in ntiles for t in ctiles]


def gemm_steps(g: GemmKernel, m: mapper.Mapping, arch: ArchConfig, src: Buffer, dst: Buffer,
               consts: Constants, const_base: int, post_table: bytes = b"",
               state: dict | None = None, weights=None) -> list[Step]:
    """``state`` carries which half each operand used last, for several GEMMs in one kernel.
    ``weights(b, block, ntiles, ctiles, folds)`` gives a block's ``tile(j, t, s) ->
    WeightTile``: the constants' layout by default (``const_weights``), an activation's for a
    matmul (compiler.matmul)."""
    geom, half = g.geom, halves(arch)
    blobs = _Blobs(g, arch, consts, const_base, post_table)
    weights = weights or (lambda *a: const_weights(blobs, arch, *a))
    spatial = [(oy, th, ox, tw) for oy, th in _tiles(geom.out_h, m.th)
               for ox, tw in _tiles(geom.out_w, m.tw)]
    if state is None:
        state = {}
    for key, first in (("w", None), ("p", None), ("b", None), ("wn", 0), ("pn", 0), ("bn", 0),
                       ("out", 0)):
        state.setdefault(key, first)
    state["w"] = state["p"] = state["b"] = None  # a new kernel's operands are not on chip
    steps = []
    for b, block in enumerate(g.blocks):
        ntiles = _tiles(block.n, m.nt)
        kts = ktiles(block.ic, m.ct, geom.kh, m.kt)
        fl = {t: folds(g, block.ic, t, arch.array_rows) for t in kts}
        tile = weights(b, block, ntiles, kts, fl)
        one_ct = m.ct >= block.ic
        for j, s, t in _loop(m.order, ntiles, spatial, kts):
            step = Step()
            wbase, woffs = _load_weights(step, state, tile(j, t, s), half)
            pbase = _load_params(step, state, blobs, b, block, j, half)
            ibase = _load_band(step, state, g, src, block, b, s, t, one_ct, half)
            step.computes += _gemms(g, arch, src, s, t, fl[t], woffs, wbase, ibase, pbase, j,
                                    first=t == kts[0])
            if t == kts[-1]:
                _finish(step, state, g, arch, dst, block, s, j, pbase, half)
            steps.append(step)
    return steps


@dataclass(frozen=True, eq=False)
class WeightTile:
    """One (n-tile, c-tile)'s weights: ``key`` names the span a load brings (a tile whose key
    is on chip loads nothing), ``start`` is the tile's offset in that span, ``offs[fold][column
    group]`` each fold's offset from ``start``, ``loads(base)`` the DMAs that bring the span to
    a half at ``base``."""

    key: tuple
    start: int
    offs: list
    loads: Callable[[int], list[Instr]]


def compact(g: GemmKernel) -> bool:
    """Depthwise blocks of 8-bit integer weights travel compact: DRAM holds each tap's one
    nonzero per row, and a fill plus a diagonal LOAD (row stride + 1 byte) rebuild the
    block-diagonal tile on chip, so DRAM moves the layer's own weights, not its zeros."""
    geom = g.geom
    return (geom.groups > 1 and geom.in_c == geom.groups == geom.out_c and g.wbits == 8
            and g.lut is None and g.block_mode == "none")


def _diagonal(block: GemmBlock, fl: list[Fold], offs, n0: int, nt: int, cols: int):
    """(values, [(DRAM offset, scratchpad offset, rows, scratchpad stride)]) of the nonzero
    entries of one n-tile's blob: row r of fold f holds channel (k0 + r) mod ic, in column
    channel - (n0 + gc0) of its column group."""
    values, pieces = bytearray(), []
    codes = block.weight
    for fi, f in enumerate(fl):
        for gi, gc0 in enumerate(range(0, nt, cols)):
            gn = min(cols, nt - gc0)
            run = None
            for r in range(f.k):
                kk = f.k0 + r
                col = kk % block.ic - (n0 + gc0)
                if not 0 <= col < gn:
                    run = None
                    continue
                if run is None or run[2] + run[3] != r or run[4] + run[3] != col:
                    run = [len(values), offs[fi][gi] + r * gn + col, r, 0, col, gn + 1]
                    pieces.append(run)
                values.append(int(codes[kk, kk % block.ic]) & 0xFF)
                run[3] += 1
    return bytes(values), [(d, sram, n, stride) for d, sram, _, n, _, stride in pieces]


def const_weights(blobs: _Blobs, arch: ArchConfig, b, block, ntiles, ctiles, fl):
    """The constants' weight tiles: an n-tile's every K tile (``ctiles``) in one span when they
    fit half the weight scratchpad (kept across spatial tiles), else one span per K tile."""
    layout, cols = {}, arch.array_cols
    for j in ntiles:
        parts = {t: blobs.weights(b, block, j[0], j[1], fl[t]) for t in ctiles}
        sizes = [len(parts[t][0]) for t in ctiles]
        resident = sum(sizes) <= arch.weight_sram_bytes // 2
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(int)
        if compact(blobs.g):
            diag = {t: _diagonal(block, fl[t], parts[t][1], j[0], j[1], cols) for t in ctiles}
            parts = {t: (diag[t][0], parts[t][1], diag[t][1], len(parts[t][0]))
                     for t in ctiles}
        else:
            parts = {t: (parts[t][0], parts[t][1], None, len(parts[t][0])) for t in ctiles}
        if resident:
            addr = blobs.place(b"".join(parts[t][0] for t in ctiles))
            dstart = np.concatenate([[0], np.cumsum([len(parts[t][0]) for t in ctiles])[:-1]])
            pieces = None if parts[ctiles[0]][2] is None else [
                (int(d0) + d, int(st) + sram, n, stride)
                for t, st, d0 in zip(ctiles, starts, dstart) for d, sram, n, stride in parts[t][2]]
            load = _const_loads(addr, sum(sizes), pieces)
            layout[j] = {t: WeightTile((b, j), int(st), parts[t][1], load)
                         for t, st in zip(ctiles, starts)}
        else:
            layout[j] = {t: WeightTile((b, j, t), 0, parts[t][1], _const_loads(
                blobs.place(parts[t][0]), parts[t][3], parts[t][2])) for t in ctiles}
    return lambda j, t, s: layout[j][t]


def _const_loads(addr: int, size: int, pieces) -> Callable[[int], list[Instr]]:
    def loads(base: int) -> list[Instr]:
        if pieces is None:
            return dma("LOAD", "weight", addr, base, size)
        out = dma("LOAD", "weight", 0, base, size, fill=0)  # zeros on chip, then each diagonal
        for d, sram, n, stride in pieces:                   # run: a byte a row, a column on
            out += dma("LOAD", "weight", addr + d, base + sram, 1, rows=n, dram_stride=1,
                       sram_stride=stride)
        return out
    return loads


def _load_weights(step: Step, state, tile: WeightTile, half):
    if state["w"] != tile.key:
        state["w"], state["wbase"] = tile.key, (state["wn"] % 2) * half["weight"]
        state["wn"] += 1
        step.loads += tile.loads(state["wbase"])
    return state["wbase"] + tile.start, tile.offs


def _load_params(step: Step, state, blobs: _Blobs, b, block, j, half) -> int:
    key = (b, j)
    if state["p"] != key:
        data = blobs.params(block, j[0], j[1])
        state["p"], state["pbase"] = key, (state["pn"] % 2) * half["param"]
        state["pn"] += 1
        step.loads += dma("LOAD", "param", _param_addr(blobs, key, data), state["pbase"],
                          len(data))
    return state["pbase"]


def _param_addr(blobs: _Blobs, key, data: bytes) -> int:
    if key not in blobs._params:
        blobs._params[key] = blobs.place(data)
    return blobs._params[key]


def _load_band(step: Step, state, g: GemmKernel, src: Buffer, block, b, s, t: KTile, one_ct,
               half) -> int:
    """The band of every kernel row of t's channels (kept across the kernel-row tiles)."""
    key = (b, s) if one_ct else (b, s, t.c0)
    if state["b"] != key:
        geom = g.geom
        oy, th, ox, tw = s
        bh, bw = geom.band(th, tw)
        state["b"], state["bbase"] = key, (state["bn"] % 2) * half["input"]
        state["bn"] += 1
        step.loads += band_loads(src, "input", state["bbase"], block.c0 + t.c0, t.ct,
                                 oy * geom.sh - geom.pt, ox * geom.sw - geom.pl, bh, bw,
                                 g.pad_code, g.edge)
    return state["bbase"]


def _gemms(g: GemmKernel, arch: ArchConfig, src: Buffer, s, t, fl, woffs, wbase, ibase, pbase,
           j, first: bool) -> list[Instr]:
    geom, cols = g.geom, arch.array_cols
    _, th, _, tw = s
    _, bw = geom.band(th, tw)
    bpix, nt = src.nbytes(t.ct), j[1]
    fixed = {"inp_stride": geom.sw * bpix, "inp_line_stride": geom.sh * bw * bpix,
             "wbits": g.wbits, "lut": int(g.lut is not None),
             "lut_addr": pbase + nt * PARAM_BYTES_PER_CHANNEL if g.lut is not None else 0,
             "bscale": g.block_mode, "afmt": src.encoding, "wtrans": int(g.wtrans)}
    chunks = [(((l0 * geom.sh) * bw + r0 * geom.sw) * bpix, (l0 * tw + r0), lines, rows)
              for l0, lines, r0, rows in _chunks(th, tw, arch.gemm_max_rows)]
    groups = [(gi, gc0, min(cols, nt - gc0)) for gi, gc0 in enumerate(range(0, nt, cols))]
    out = []
    for fi, f in enumerate(fl):
        row0 = ibase + f.kh * geom.dh * bw * bpix + src.nbytes(f.off)
        acc = int(not (first and fi == 0))
        for gi, gc0, gn in groups:
            w_at, acc0 = wbase + woffs[fi][gi], th * tw * gc0
            for inp, vec, lines, rows in chunks:
                out.append(Instr("GEMM", {
                    **fixed, "inp_addr": row0 + inp, "lines": lines, "rows": rows,
                    "wgt_addr": w_at, "acc_addr": acc0 + vec * gn, "k": f.k, "n": gn,
                    "accumulate": acc}))
    return out


@cache
def _chunks(th: int, tw: int, max_rows: int) -> tuple[tuple[int, int, int, int], ...]:
    """(first line, lines, first column, columns) of each GEMM of a th x tw tile."""
    if tw <= max_rows:
        per = max(1, max_rows // tw)
        return tuple((l0, min(per, th - l0), 0, tw) for l0 in range(0, th, per))
    return tuple((y, 1, x, min(max_rows, tw - x)) for y in range(th)
                 for x in range(0, tw, max_rows))


def _finish(step: Step, state, g: GemmKernel, arch: ArchConfig, dst: Buffer, block, s, j,
            pbase: int, half) -> None:
    """POST every column group (+ the fused table and max-pool), then store the tile."""
    oy, th, ox, tw = s
    nt, cols = j[1], arch.array_cols
    obuf = (state["out"] % 2) * half["output"]
    state["out"] += 1
    orow = dst.nbytes(nt)
    step.first_output_writer = len(step.computes)
    table_addr = pbase + nt * PARAM_BYTES_PER_CHANNEL + \
        (0 if g.lut is None else 4 << g.wbits)
    for gc0 in range(0, nt, cols):
        gn = min(cols, nt - gc0)
        step.computes.append(Instr("POST", {
            "acc_addr": th * tw * gc0, "param_addr": pbase + gc0 * PARAM_BYTES_PER_CHANNEL,
            "out_addr": obuf + dst.nbytes(gc0), "out_stride": orow, "rows": th * tw, "n": gn,
            "out_zp": g.out_zp, "lo": g.lo, "hi": g.hi, "ofmt": dst.encoding,
            "lut": int(g.post_table is not None),
            "lut_addr": table_addr if g.post_table is not None else 0}))
    res, k = obuf, g.geom.pool
    if k > 1:
        res = obuf + th * tw * orow
        step.computes.append(Instr("POOL", {
            "src_addr": obuf, "dst_addr": res, "h": th, "w": tw, "c": nt,
            "src_pix_stride": orow, "dst_pix_stride": orow, "kh": k, "kw": k, "sh": k, "sw": k,
            "mode": "max", "lo": g.lo, "fmt": dst.encoding}))
    step.stores += tile_stores(dst, res, oy // k, ox // k, th // k, tw // k,
                               block.n0 + j[0], nt)


def weight_bytes_true(g: GemmKernel) -> int:
    """Bytes of the layer's own weights (no block-diagonal zeros) and block scales, packed."""
    node = g.kernel.anchor
    w = np.asarray(node.params["weight"])
    scales = 0
    if "block_scale" in node.params:
        rows = 2 if g.block_mode == "mulzp" else 1
        scales = rows * np.asarray(node.params["block_scale"]).size * BSCALE_BYTES
    return (w.size * g.wbits + 7) // 8 + scales
