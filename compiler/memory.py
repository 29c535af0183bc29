"""DRAM layout: activation buffers (NHWC, zero-point padded borders), constants, the memory map."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.isa.program import Region
from qasic.quant.graph import QGraph

ALIGN = 64  # bytes; every region starts on a DRAM burst boundary


@dataclass(frozen=True)
class Buffer:
    """An activation tensor in DRAM: an h x w image of c int8 channels with a ``pad`` border.

    Vectors are 1 x 1 images. Pixel (y, x) starts at addr + ((y + pad) * (w + 2 pad) + x + pad) * c.
    """

    name: str
    addr: int
    h: int
    w: int
    c: int
    pad: int
    fill: int

    @property
    def size(self) -> int:
        return (self.h + 2 * self.pad) * (self.w + 2 * self.pad) * self.c

    def pixel_addr(self, y: int, x: int) -> int:
        return self.addr + ((y + self.pad) * (self.w + 2 * self.pad) + x + self.pad) * self.c

    def runs(self, first: int, count: int) -> list[tuple[int, int]]:
        """Contiguous DRAM runs covering raster pixels [first, first + count): (addr, pixels)."""
        if self.pad == 0:
            return [(self.pixel_addr(0, 0) + first * self.c, count)]
        out, p = [], first
        while p < first + count:
            y, x = divmod(p, self.w)
            n = min(self.w - x, first + count - p)
            out.append((self.pixel_addr(y, x), n))
            p += n
        return out


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    return tuple(shape) if len(shape) == 3 else (1, 1, int(np.prod(shape)))


def plan_buffers(graph: QGraph, kernels) -> tuple[dict[str, Buffer], dict[str, str], int]:
    """Give every tensor a DRAM buffer. Returns (buffers by tensor, alias -> source, end addr)."""
    aliases = {k.output: k.inputs[0] for k in kernels if k.kind == "alias"}
    pads = _required_padding(graph, kernels, aliases)
    buffers, addr = {}, 0
    for name in _tensor_order(graph, kernels):
        if name in aliases:
            continue
        h, w, c = image_shape(graph.shapes[name])
        buf = Buffer(name, addr, h, w, c, pads.get(name, 0), graph.tensors[name].zero_point)
        buffers[name] = buf
        addr = _align(addr + buf.size)
    for alias in aliases:
        buffers[alias] = buffers[resolve(alias, aliases)]
    return buffers, aliases, addr


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
                          zero_point=tq.zero_point))
    out.append(Region("constants", const_addr, const_len, "constants"))
    return tuple(out)
