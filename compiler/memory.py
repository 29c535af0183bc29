"""DRAM layout: activation buffers (NHWC, zero-point padded borders), constants, the memory map.

Activations are stored packed at their bit width (isa.table.ACT_ENCODINGS) when every access
stays on byte boundaries: a pixel's channels fill whole bytes, and the array's folds (array.rows,
block sizes) and output tiles (array.cols) start on whole bytes. Otherwise a tensor keeps one code
per byte (its codes sign-extended), so 4-bit activations halve the traffic on the usual arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.isa.program import Region
from qasic.isa.table import encoding_bits, encoding_bytes
from qasic.quant.graph import QGraph

ALIGN = 64  # bytes; every region starts on a DRAM burst boundary


@dataclass(frozen=True)
class Buffer:
    """An activation tensor in DRAM: an h x w image of c channels, ``bits`` per stored code, with
    a ``pad`` border. Vectors are 1 x 1 images. A pixel is ``pix`` = c * bits / 8 bytes; pixel
    (y, x) starts at addr + ((y + pad) * (w + 2 pad) + x + pad) * pix."""

    name: str
    addr: int
    h: int
    w: int
    c: int
    pad: int
    fill: int
    encoding: str = "int8"   # isa.table.ACT_ENCODINGS

    @property
    def bits(self) -> int:
        return encoding_bits(self.encoding)

    @property
    def pix(self) -> int:
        return self.c * self.bits // 8

    def nbytes(self, codes: int) -> int:
        """Bytes of ``codes`` consecutive codes (whole bytes by construction)."""
        return encoding_bytes(codes, self.encoding)

    @property
    def size(self) -> int:
        return (self.h + 2 * self.pad) * (self.w + 2 * self.pad) * self.pix

    def pixel_addr(self, y: int, x: int) -> int:
        return self.addr + ((y + self.pad) * (self.w + 2 * self.pad) + x + self.pad) * self.pix

    def runs(self, first: int, count: int) -> list[tuple[int, int]]:
        """Contiguous DRAM runs covering raster pixels [first, first + count): (addr, pixels)."""
        if self.pad == 0:
            return [(self.pixel_addr(0, 0) + first * self.pix, count)]
        out, p = [], first
        while p < first + count:
            y, x = divmod(p, self.w)
            n = min(self.w - x, first + count - p)
            out.append((self.pixel_addr(y, x), n))
            p += n
        return out


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(shape) if len(shape) == 3 else (1, 1, int(np.prod(shape)))


def plan_buffers(graph: QGraph, kernels,
                 arch=None) -> tuple[dict[str, Buffer], dict[str, str], int]:
    """Give every tensor a DRAM buffer. Returns (buffers by tensor, alias -> source, end addr).
    Without ``arch`` every tensor keeps one code per byte."""
    aliases = {k.output: k.inputs[0] for k in kernels if k.kind == "alias"}
    pads = _required_padding(graph, kernels, aliases)
    buffers, addr = {}, 0
    names = [n for n in _tensor_order(graph, kernels) if n not in aliases]
    stored = {n: 8 if arch is None else storage_bits(graph, kernels, aliases, arch, n)
              for n in names}
    _same_storage_across_elementwise(kernels, aliases, stored)
    for name in names:
        h, w, c = image_shape(graph.shapes[name])
        tq = graph.tensors[name]
        bits = stored[name]
        enc = tq.fmt if tq.is_fp else f"int{bits}"
        buf = Buffer(name, addr, h, w, c, pads.get(name, 0), tq.zero_point, enc)
        buffers[name] = buf
        addr = _align(addr + buf.size)
    for alias in aliases:
        buffers[alias] = buffers[resolve(alias, aliases)]
    return buffers, aliases, addr


def storage_bits(graph: QGraph, kernels, aliases: dict[str, str], arch, name: str) -> int:
    """Stored bits per code of tensor ``name``: its bit width when packing keeps every access on
    whole bytes (module docstring), else 8."""
    tq = graph.tensors[name]
    bits = 8 if tq.is_fp else tq.bits
    c = image_shape(graph.shapes[name])[2]
    if bits == 8 or (c * bits) % 8 or (arch.array_rows * bits) % 8 \
            or (arch.array_cols * bits) % 8:
        return 8
    for k in kernels:
        if k.kind == "gemm" and any(resolve(t, aliases) == name for t in k.inputs):
            size = k.anchor.attrs.get("block_size", 0)
            if (size * bits) % 8:
                return 8
    return bits


def _same_storage_across_elementwise(kernels, aliases, stored: dict[str, int]) -> None:
    """POOL and ADD read and write one encoding: if their tensors disagree, all keep a byte."""
    changed = True
    while changed:
        changed = False
        for k in kernels:
            if k.kind in ("pool", "add"):
                group = [resolve(t, aliases) for t in (*k.inputs, k.output)]
                if len({stored[t] for t in group}) > 1:
                    stored.update(dict.fromkeys(group, 8))
                    changed = True


def resolve(name: str, aliases: dict[str, str]) -> str:
    while name in aliases:
        name = aliases[name]
    return name


def _required_padding(graph, kernels, aliases) -> dict[str, int]:
    need: dict[str, set[int]] = {}
    for k in kernels:
        pad = k.anchor.attrs.get("padding", 0) if k.anchor.op == "conv2d" else 0
        for t in k.inputs:
            need.setdefault(resolve(t, aliases), set()).add(pad)
    for t, pads in need.items():
        if len(pads) > 1:
            raise UnsupportedOpError(
                f"tensor {t} is read with different paddings {sorted(pads)}; qasic lays out one "
                "padded buffer per tensor: give its consumers equal padding")
    return {t: next(iter(p)) for t, p in need.items()}


def _tensor_order(graph, kernels) -> list[str]:
    return [graph.input] + [k.output for k in kernels]


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


def regions(graph: QGraph, buffers: dict[str, Buffer], const_addr: int, const_len: int,
            aliases: dict[str, str]) -> tuple[Region, ...]:
    out = []
    for name, buf in buffers.items():
        if name in aliases:
            continue
        kind = "input" if name == graph.input else "output" if name == graph.output else \
            "activation"
        tq = graph.tensors[name]
        out.append(Region(name, buf.addr, buf.size, kind, (buf.h, buf.w, buf.c, buf.pad),
                          fill=buf.fill if buf.pad else None, scale=tq.scale,
                          zero_point=tq.zero_point, bits=buf.bits))
    out.append(Region("constants", const_addr, const_len, "constants"))
    return tuple(out)
