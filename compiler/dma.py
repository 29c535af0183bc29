"""DMA instructions: 3-D copies of bands and tiles between DRAM buffers and the scratchpads.

A band is the input window a tile of outputs reads: ``bh x bw`` pixels of ``ct`` channels,
stored densely in the scratchpad (pixel (y, x) at base + (y * bw + x) * pixel bytes). The part
inside the image is one 3-D LOAD; the border outside it (padding) is filled on chip with the
pad code (LOAD fill), never read from DRAM.
"""

from __future__ import annotations

from qasic.compiler.memory import Buffer, fill_byte
from qasic.errors import ConfigError
from qasic.isa.encoding import Instr
from qasic.isa.table import BY_NAME

_F = BY_NAME["LOAD"]
MAX_ROWS = (1 << _F.field("rows").width) - 1
MAX_PLANES = (1 << _F.field("planes").width) - 1
MAX_ROW_BYTES = (1 << _F.field("row_bytes").width) - 1


def dma(op: str, mem: str, dram: int, sram: int, row_bytes: int, rows: int = 1,
        dram_stride: int = 0, sram_stride: int = 0, planes: int = 1, dram_plane: int = 0,
        sram_plane: int = 0, fill: int | None = None) -> list[Instr]:
    """One 3-D copy (several when planes or a single long run exceed their fields)."""
    if rows == planes == 1 and row_bytes > MAX_ROW_BYTES:
        piece = MAX_ROW_BYTES // 64 * 64
        return [i for off in range(0, row_bytes, piece)
                for i in dma(op, mem, dram + off, sram + off, min(piece, row_bytes - off),
                             fill=fill)]
    if rows > MAX_ROWS or row_bytes > MAX_ROW_BYTES:
        raise ConfigError(f"a {rows} x {row_bytes}-byte DMA exceeds the ISA's {MAX_ROWS} rows "
                          f"of {MAX_ROW_BYTES} bytes; use a smaller scratchpad half")
    out = []
    for p0 in range(0, planes, MAX_PLANES):
        args = {"mem": mem, "dram_addr": 0 if fill is not None else dram + p0 * dram_plane,
                "dram_stride": dram_stride if fill is None else 0,
                "sram_addr": sram + p0 * sram_plane, "sram_stride": sram_stride,
                "rows": rows, "row_bytes": row_bytes, "planes": min(MAX_PLANES, planes - p0),
                "dram_plane_stride": dram_plane if fill is None else 0,
                "sram_plane_stride": sram_plane}
        if fill is not None:
            args.update(fill=1, fill_byte=fill)
        out.append(Instr(op, args))
    return out


def band_loads(src: Buffer, mem: str, base: int, c0: int, ct: int, iy0: int, ix0: int,
               bh: int, bw: int, pad_code: int, edge: bool = False) -> list[Instr]:
    """Load input rows [iy0, iy0 + bh) x columns [ix0, ix0 + bw) x channels [c0, c0 + ct) of
    ``src`` into a dense band at ``base``; positions outside the image get ``pad_code``, or with
    ``edge`` the nearest pixel inside it (replicated by zero DMA strides)."""
    bpix = src.nbytes(ct)
    vy0, vy1 = max(iy0, 0), min(iy0 + bh, src.h)
    vx0, vx1 = max(ix0, 0), min(ix0 + bw, src.w)
    line = bw * bpix
    if edge:
        return _edge_band(src, mem, base, c0, ct, (iy0, vy0, vy1, bh), (ix0, vx0, vx1, bw))
    out: list[Instr] = []
    fill = fill_byte(pad_code, src.bits)
    if vy1 <= vy0 or vx1 <= vx0:  # the whole band is padding
        return dma("LOAD", mem, 0, base, line, planes=bh, sram_plane=line, fill=fill)
    at = base + ((vy0 - iy0) * bw + (vx0 - ix0)) * bpix
    if bpix == src.pix:  # whole dense pixels: a band row is one run of bytes
        out += dma("LOAD", mem, src.pixel_addr(vy0, vx0, c0), at, (vx1 - vx0) * bpix,
                   planes=vy1 - vy0, dram_plane=src.stride, sram_plane=line)
    else:
        out += dma("LOAD", mem, src.pixel_addr(vy0, vx0, c0), at, bpix, rows=vx1 - vx0,
                   dram_stride=src.pix, sram_stride=bpix, planes=vy1 - vy0,
                   dram_plane=src.stride, sram_plane=line)
    top, bottom = vy0 - iy0, iy0 + bh - vy1
    left, right = vx0 - ix0, ix0 + bw - vx1
    if top:
        out += dma("LOAD", mem, 0, base, line, planes=top, sram_plane=line, fill=fill)
    if bottom:
        out += dma("LOAD", mem, 0, base + (bh - bottom) * line, line, planes=bottom,
                   sram_plane=line, fill=fill)
    rows_in = vy1 - vy0
    if left:
        out += dma("LOAD", mem, 0, base + top * line, left * bpix, planes=rows_in,
                   sram_plane=line, fill=fill)
    if right:
        out += dma("LOAD", mem, 0, base + top * line + (bw - right) * bpix, right * bpix,
                   planes=rows_in, sram_plane=line, fill=fill)
    return out


def _edge_band(src: Buffer, mem: str, base: int, c0: int, ct: int, rows, cols) -> list[Instr]:
    """A band whose border repeats the image's edge pixels: each band row reads its clamped
    image row (a zero plane stride repeats the first or last row), and the columns left and
    right of the image repeat its first or last pixel (a zero row stride)."""
    iy0, vy0, vy1, bh = rows
    ix0, vx0, vx1, bw = cols
    bpix, line = src.nbytes(ct), bw * src.nbytes(ct)
    left, right = vx0 - ix0, ix0 + bw - vx1
    out: list[Instr] = []
    for r0, n, y, stride in ((0, vy0 - iy0, 0, 0), (vy0 - iy0, vy1 - vy0, vy0, src.stride),
                             (vy1 - iy0, iy0 + bh - vy1, src.h - 1, 0)):
        if n <= 0:
            continue
        at = base + r0 * line
        out += dma("LOAD", mem, src.pixel_addr(y, vx0, c0), at + left * bpix, bpix,
                   rows=vx1 - vx0, dram_stride=src.pix, sram_stride=bpix, planes=n,
                   dram_plane=stride, sram_plane=line)
        for count, x, where in ((left, 0, at), (right, src.w - 1, at + (bw - right) * bpix)):
            if count:
                out += dma("LOAD", mem, src.pixel_addr(y, x, c0), where, bpix, rows=count,
                           sram_stride=bpix, planes=n, dram_plane=stride, sram_plane=line)
    return out


def tile_stores(dst: Buffer, sram: int, y0: int, x0: int, rows: int, cols: int, c0: int,
                ct: int, sy: int = 1, sx: int = 1) -> list[Instr]:
    """Store a dense rows x cols tile of ct channels at ``sram`` to output pixel (y0, x0),
    channel c0; (sy, sx) spread the pixels (nearest-neighbour upsampling stores each phase)."""
    row = dst.nbytes(ct)
    if (sy, sx, row) == (1, 1, dst.pix) and cols == dst.w and dst.raster:  # whole rows: one run
        return dma("STORE", "output", dst.pixel_addr(y0, x0, c0), sram, rows * cols * row)
    return dma("STORE", "output", dst.pixel_addr(y0, x0, c0), sram, row, rows=cols,
               dram_stride=sx * dst.pix, sram_stride=row, planes=rows,
               dram_plane=sy * dst.stride, sram_plane=cols * row)


def pixel_loads(src: Buffer, mem: str, base: int, p0: int, count: int, c0: int, ct: int
                ) -> list[Instr]:
    """Load raster pixels [p0, p0 + count) x channels [c0, c0 + ct) densely at ``base``."""
    return _pixels("LOAD", mem, src, base, p0, count, c0, ct)


def pixel_stores(dst: Buffer, sram: int, p0: int, count: int, c0: int, ct: int) -> list[Instr]:
    """Store ``count`` dense pixels of ct channels at ``sram`` to raster pixels p0.. of ``dst``,
    channels [c0, c0 + ct)."""
    return _pixels("STORE", "output", dst, sram, p0, count, c0, ct)


def _pixels(op: str, mem: str, buf: Buffer, sram: int, p0: int, count: int, c0: int, ct: int
            ) -> list[Instr]:
    """Raster pixels as one copy when rows follow one another, else one per run of rows (a
    part of a row, whole rows as planes, a part of a row)."""
    row = buf.nbytes(ct)
    if buf.raster:
        addr = buf.pixel_addr(0, 0, c0) + p0 * buf.pix
        if row == buf.pix:
            return dma(op, mem, addr, sram, count * row)
        return dma(op, mem, addr, sram, row, rows=count, dram_stride=buf.pix, sram_stride=row)
    out: list[Instr] = []
    for y, x, n, rows in raster_runs(buf.w, p0, count):
        at = buf.pixel_addr(y, x, c0)
        if row == buf.pix and n * row <= MAX_ROW_BYTES:  # a row's pixels are one run
            out += dma(op, mem, at, sram, n * row, planes=rows, dram_plane=buf.stride,
                       sram_plane=n * row)
        else:
            out += dma(op, mem, at, sram, row, rows=n, dram_stride=buf.pix, sram_stride=row,
                       planes=rows, dram_plane=buf.stride, sram_plane=n * row)
        sram += rows * n * row
    return out


def raster_runs(w: int, p0: int, count: int) -> list[tuple[int, int, int, int]]:
    """(row y, column x, pixels, rows) covering raster pixels [p0, p0 + count) of a w-wide image:
    rows of the same columns, at most three runs (a partial first row, whole rows, the rest)."""
    out, p, end = [], p0, p0 + count
    while p < end:
        y, x = divmod(p, w)
        rows = (end - p) // w if x == 0 else 0
        n = w if rows else min(w - x, end - p)
        out.append((y, x, n, max(rows, 1)))
        p += n * max(rows, 1)
    return out
