"""DRAM layout: activation buffers (dense NHWC, no padding), constants, the memory map.

Every tensor is an image (``image_shape``): NHWC images as they are, a sequence (S, D) as a
1 x S image of D channels (a token is a pixel), heads (H, S, dh) as H rows of S pixels, vectors
as one pixel. Token ids are int32 words (4 bytes an id; only GATHER reads them). A constant's
codes sit in the constants region, packed like an activation; no kernel produces them.

Buffers hold no padding: a kernel that reads a tensor with padding fills the border of its
on-chip band instead (a LOAD with ``fill``), so one tensor can feed consumers that pad it
differently (a ResNet shortcut beside a padded 3x3 conv) or with different values (zero point
for a conv or an average, the lowest code for a max-pool).

A concatenation costs nothing: its inputs are *views* of the output buffer, each at a channel
offset inside the same pixels, so their producers store straight into place. Nor does a head
split or merge (compiler.views): heads (H, S, dh) are a view of the sequence (S, D) with a row
stride of dh codes and a pixel stride of D codes (``heads_view``), read or stored in place.

Activations are stored packed at their bit width (isa.table.ACT_ENCODINGS) when every access
stays on byte boundaries: a pixel's channels, every channel offset, the array's folds
(array.rows) and output tiles (array.cols) fill whole bytes, and a border fill repeats one
byte (2- and 4-bit codes; 3-, 5-, 6- and 7-bit codes pack only where no reader pads them).
Otherwise a tensor keeps one code per byte (sign-extended codes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qasic.errors import UnsupportedOpError
from qasic.isa.packing import pack_bits
from qasic.isa.program import Region
from qasic.isa.table import encoding_bits, encoding_bytes
from qasic.quant.graph import SCAN_STATE, QGraph

ALIGN = 64  # bytes; every region starts on a DRAM burst boundary


@dataclass(frozen=True)
class Buffer:
    """An activation tensor in DRAM: an h x w image of c channels stored at ``encoding``.

    Pixel (y, x) starts at ``addr + y * stride + x * pix + off``: ``pix`` is the bytes between
    pixels (the whole concatenation for a concat view), ``stride`` the bytes between image rows
    (``w * pix`` unless given: a strided view's rows may interleave, as a head view's do) and
    ``off`` the view's first byte in a pixel. Vectors are 1 x 1 images. Views are Buffers of
    another tensor's bytes: ``transposed``, ``split``, ``heads_view``, or any ``addr``,
    ``w`` (``dataclasses.replace``: the first columns of an image, a tensor placed inside a
    larger region)."""

    name: str
    addr: int
    h: int
    w: int
    c: int
    pix: int
    off: int = 0
    encoding: str = "int8"   # isa.table.ACT_ENCODINGS
    stride: int = -1         # bytes between rows; -1: w * pix

    def __post_init__(self) -> None:
        if self.stride < 0:
            object.__setattr__(self, "stride", self.w * self.pix)

    @property
    def bits(self) -> int:
        return encoding_bits(self.encoding)

    @property
    def row(self) -> int:
        """Bytes of one pixel's own channels."""
        return self.nbytes(self.c)

    def nbytes(self, codes: int) -> int:
        """Bytes of ``codes`` consecutive codes (whole bytes by construction)."""
        return encoding_bytes(codes, self.encoding)

    @property
    def size(self) -> int:
        """Bytes from ``addr`` to the end of the last pixel (h * w * pix for row-major pixels)."""
        if self.raster:
            return self.h * self.w * self.pix
        return (self.h - 1) * self.stride + (self.w - 1) * self.pix + self.off + self.row

    @property
    def payload(self) -> int:
        """Bytes of this tensor's own codes (a view's share of the pixels)."""
        return self.h * self.w * self.row

    def pixel_addr(self, y: int, x: int, ch: int = 0) -> int:
        return self.addr + y * self.stride + x * self.pix + self.off + self.nbytes(ch)

    @property
    def raster(self) -> bool:
        """True when raster pixel p starts at ``pixel_addr(0, 0) + p * pix`` (rows follow one
        another; a strided view's need not)."""
        return self.h == 1 or self.stride == self.w * self.pix

    @property
    def dense(self) -> bool:
        """True when consecutive pixels are consecutive bytes (no view gaps)."""
        return self.pix == self.row and self.raster

    def transposed(self, name: str) -> Buffer:
        """The same bytes with rows and columns swapped: a permute (1, 0, 2) of (h, w, c) as a
        view, e.g. heads (S, H, dh) <-> (H, S, dh)."""
        return Buffer(name, self.addr, self.w, self.h, self.c, self.stride, self.off,
                      self.encoding, self.pix)

    def split(self, name: str, parts: int) -> Buffer:
        """A one-row image (a sequence (1, S, D)) reshaped to (S, parts, D / parts): each pixel's
        channels cut into ``parts`` pixels, whatever its pixel stride."""
        if self.h != 1 or self.c % parts or (self.c // parts * self.bits) % 8:
            raise ValueError(f"buffer {self.name}: {self.h} x {self.w} x {self.c} at "
                             f"{self.bits} bits does not split into {parts} whole-byte pixels "
                             "per token")
        return Buffer(name, self.addr, self.w, parts, self.c // parts,
                      self.nbytes(self.c // parts), self.off, self.encoding, self.pix)


def heads_view(buf: Buffer, heads: int, name: str) -> Buffer:
    """The (H, S, dh) heads of a sequence buffer (1, S, D = H dh) as a view of its bytes: head h
    is row h, token s its pixel at ``addr + s * pix + h * dh bytes`` (pix D bytes, stride dh
    bytes). ``dataclasses.replace(buf, w=T)`` first keeps its first T tokens (a KV cache)."""
    return buf.split(name, heads).transposed(name)


def image_shape(shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Per-sample shape -> (h, w, c): images as they are, a sequence (S, D) as a 1 x S image
    (a token is a pixel), more axes (windows x heads x S x D) with the leading ones as h,
    a vector as a 1 x 1 image."""
    if len(shape) > 3:
        return (int(np.prod(shape[:-2])), *shape[-2:])
    if len(shape) == 3:
        return tuple(shape)
    if len(shape) == 2:
        return (1, *shape)
    return (1, 1, int(np.prod(shape)))


def fill_byte(code: int, bits: int) -> int:
    """The byte that holds ``code`` repeated at ``bits`` bits (8 // bits copies)."""
    pattern = code & ((1 << bits) - 1)
    out = 0
    for i in range(0, 8, bits):
        out |= pattern << i
    return out & 0xFF


def plan_buffers(graph: QGraph, kernels, arch=None, consts=None) -> tuple[dict[str, Buffer], int]:
    """Give every tensor a DRAM buffer (aliases and views share their source's bytes; a
    ``constant``'s codes are appended to ``consts``, placed after the activations as
    compiler.pipeline places the constants region). Returns (buffers by tensor name, end of the
    activations). Without ``arch`` every code is a byte."""
    derived = derivations(graph, kernels)
    constants = {k.output: k.anchor for k in kernels if k.kind == "const"}
    names = [n for n in _tensor_order(graph, kernels) if n not in derived]
    states = sorted(state_tensors(graph))  # first, in name order: same addresses in every
    names = states + [n for n in names if n not in states]  # program of the model
    stored = {n: 8 if arch is None else storage_bits(graph, kernels, derived, arch, n)
              for n in names}
    _same_storage(kernels, derived, stored)
    buffers, addr = {}, 0
    for name in names:
        h, w, c = image_shape(graph.shapes[name])
        tq = graph.tensors[name]
        enc = tq.fmt if tq.is_fp else f"int{stored[name]}"
        buffers[name] = Buffer(name, addr, h, w, c, encoding_bytes(c, enc), 0, enc)
        if name not in constants:
            addr = _align(addr + buffers[name].size)
    for name, node in constants.items():
        buffers[name] = _place_constant(buffers[name], node, consts, _align(addr))
    for name in derived:
        _derive(graph, name, derived, buffers)
    return buffers, addr


def state_tensors(graph: QGraph) -> set[str]:
    """The persistent tensors (KV caches): the states ``cache_write`` and ``cache_read`` nodes
    name (attrs state)."""
    return {n.attrs["state"] for n in graph.nodes if n.op in ("cache_write", "cache_read")}


def derivations(graph: QGraph, kernels) -> dict[str, tuple[str, str, int]]:
    """Every tensor stored in another's bytes -> (how, source, first channel): "alias" (a
    flatten or reshape), "concat" (a concat input: channels of the output's pixels; a channel
    slice: channels of its input's), "transpose"
    (a permute folded into a strided view by compiler.views: a "view" kernel's output, a
    "view_in" kernel's input; a ``cache_read`` named apart from its state: the state's)."""
    out = {k.output: ("alias", k.inputs[0], 0) for k in kernels if k.kind == "alias"}
    # a state read under a name of its own (a scan's h_(p-1), which the step then overwrites)
    out.update({k.output: ("alias", k.anchor.attrs["state"], 0) for k in kernels
                if k.kind == "state" and k.output != k.anchor.attrs["state"]})
    out.update({t: ("concat", p, ch0) for t, (p, ch0) in _views(graph, kernels).items()})
    # a channel slice: channels start.. of its input's pixels, as a concat input is of its output
    out.update({k.output: ("concat", k.inputs[0], int(k.anchor.attrs["start"]))
                for k in kernels if k.kind == "slice"})
    out.update({k.output: ("transpose", k.inputs[0], 0) for k in kernels if k.kind == "view"})
    out.update({k.inputs[0]: ("transpose", k.output, 0) for k in kernels if k.kind == "view_in"})
    return out


def root(name: str, derived: dict) -> str:
    """The stored tensor whose bytes ``name`` lives in."""
    while name in derived:
        name = derived[name][1]
    return name


def _derive(graph: QGraph, name: str, derived: dict, buffers: dict[str, Buffer]) -> Buffer:
    """``name``'s buffer from its source's (placing the source first)."""
    if name in buffers:
        return buffers[name]
    how, source, ch0 = derived[name]
    src = _derive(graph, source, derived, buffers)
    h, w, c = image_shape(graph.shapes[name])
    if how == "concat":
        buf = Buffer(name, src.addr, src.h, src.w, c, src.pix, src.off + src.nbytes(ch0),
                     src.encoding, src.stride)
    elif how == "transpose":
        buf = src.transposed(name)
    elif (h, w, c) == (src.h, src.w, src.c):
        buf = src
    elif not src.dense:  # flatten/reshape: same bytes, new shape
        raise UnsupportedOpError(f"tensor {name} reshapes a concatenation view; "
                                 "reshape the concatenated tensor instead")
    else:
        buf = Buffer(name, src.addr, h, w, c, src.nbytes(c), 0, src.encoding)
    buffers[name] = buf
    return buf


def _place_constant(buf: Buffer, node, consts, const_base: int) -> Buffer:
    """A constant's codes, packed like an activation, in the constants blob."""
    if consts is None:
        raise ValueError(f"constant {node.name}: plan_buffers needs the constants blob")
    codes = np.asarray(node.params["value"], dtype=np.int64).reshape(buf.h * buf.w, buf.c)
    off = consts.add(pack_bits(codes, buf.bits))
    return Buffer(buf.name, const_base + off, buf.h, buf.w, buf.c, buf.pix, 0, buf.encoding)


def _views(graph: QGraph, kernels) -> dict[str, tuple[str, int]]:
    """Concat inputs -> (the concat's output, first channel). Every input may be a view
    (compiler.rewrite inserts copies where a tensor cannot be one)."""
    out = {}
    for k in kernels:
        if k.kind == "concat":
            ch = 0
            for t in k.inputs:
                out[t] = (k.output, ch)
                ch += image_shape(graph.shapes[t])[2]
    # a view of a view: resolve to the outermost buffer
    changed = True
    while changed:
        changed = False
        for t, (parent, ch0) in list(out.items()):
            if parent in out:
                grand, ch1 = out[parent]
                out[t] = (grand, ch0 + ch1)
                changed = True
    return out


def storage_bits(graph: QGraph, kernels, derived, arch, name: str) -> int:
    """Stored bits per code of tensor ``name``: its bit width when packing keeps every access on
    whole bytes (module docstring) for it and every tensor stored in its bytes, else 8. Token
    ids keep their 32 bits; mask codes (a 1-D table's rows, a softmax's key mask) and
    byte-granular permutes keep a byte per code."""
    tq = graph.tensors[name]
    bits = 8 if tq.is_fp else tq.bits
    if bits > 8:  # 9..16-bit codes (a norm input: QuantConfig.norm_input_bits) take two bytes
        return max(16, bits)
    if bits == 8:  # before the group: a scan of every derived tensor, per tensor
        return 8
    group = {name, *(t for t in derived if root(t, derived) == name)}
    if (8 % bits and _padded_reader(kernels, group)) \
            or _byte_codes(kernels, derived, group) or group & scan_tensors(kernels):
        return 8  # a border fill repeats one byte: only 2- and 4-bit codes tile it
    sizes = [arch.array_rows, arch.array_cols]
    sizes += [image_shape(graph.shapes[t])[2] for t in group]
    sizes += [derived[t][2] for t in group if t in derived]  # channel offsets in a pixel
    for k in kernels:
        if k.kind == "gemm" and k.inputs[0] in group:
            sizes.append(k.anchor.attrs.get("block_size", 0))
            if k.anchor.op == "conv2d":
                g = k.anchor.attrs.get("groups", 1)
                sizes.append(image_shape(graph.shapes[k.inputs[0]])[2] // g)
    if any((s * bits) % 8 for s in sizes):
        return 8
    return bits


def scan_tensors(kernels) -> set[str]:
    """A recurrence's states (cache_write attrs SCAN_STATE: rewritten whole by the prefill and
    by every decode step) and the rows written into them. Below 8 bits they keep a byte per
    code in every program: whether the rows pack depends on the program (a prefill's state at
    its last position is a column of the positions' concat, a code per byte; a step's packs),
    and the state's bytes, carried from one program to the next, must be stored alike."""
    return {t for k in kernels if k.kind == "cache" and k.anchor.attrs.get(SCAN_STATE)
            for t in (k.output, k.inputs[0])}


def _byte_codes(kernels, derived, group: set[str]) -> bool:
    """True when some kernel addresses the tensors of ``group`` code by code: a 1-D table's
    gathered rows, a softmax's mask bytes, a permute that moves the last axis."""
    for k in kernels:
        if k.kind == "gather" and k.output in group and np.ndim(k.anchor.params["table"]) == 1:
            return True
        if k.kind == "softmax" and any(t in group for t in k.inputs[1:]):
            return True
        perm = k.anchor.attrs.get("perm") if k.kind == "permute" else None
        if perm is not None and int(perm[-1]) != len(perm) - 1 \
                and any(t in group for t in (*k.inputs, k.output)):
            return True
    return False


def _padded_reader(kernels, group: set[str]) -> bool:
    """True when some kernel reads a tensor of ``group`` with a padded border (filled on
    chip)."""
    from qasic.compiler.fuse import pad4

    return any(k.kind in ("gemm", "pool") and any(pad4(k.anchor.attrs.get("padding", 0)))
               and any(t in group for t in k.inputs) for k in kernels)


def _same_storage(kernels, derived, stored: dict[str, int]) -> None:
    """Elementwise units read and write one packed width: if a kernel's tensors of at most 8
    bits disagree, all of them keep a byte per code (an ADD's two-byte int16 codes stay). So do
    a cache kernel's rows and state, the rows a ``cache_write`` stores into it or a
    ``cache_window`` reads out of it (compiler.cache copies their bytes as they are): rows a
    byte per code (a concat of 3-bit codes at a channel offset off whole bytes, DeepSeek's
    k = [k_nope, k_pe]; a RoPE's interleaved stack, a permute of the last axis) make their
    cache so, in every program that writes them, the prefill's and the decode step's alike."""
    changed = True
    while changed:
        changed = False
        for k in kernels:
            tensors = (k.inputs[0], k.output) if k.kind in ("cache", "window") else \
                (*k.inputs, k.output) if k.kind in ("pool", "ew", "copy", "permute") else ()
            if tensors:  # (a LUT may change the encoding)
                group = [root(t, derived) for t in tensors]
                narrow = [t for t in group if stored[t] <= 8]
                if len({stored[t] for t in narrow}) > 1 or (len(narrow) < len(group) and any(
                        stored[t] < 8 for t in narrow)):
                    stored.update(dict.fromkeys(narrow, 8))
                    changed = True


def _tensor_order(graph, kernels) -> list[str]:
    return list(graph.inputs or (graph.input,)) + [k.output for k in kernels]


def _align(x: int) -> int:
    return (x + ALIGN - 1) // ALIGN * ALIGN


def regions(graph: QGraph, buffers: dict[str, Buffer], const_addr: int, const_len: int
            ) -> tuple[Region, ...]:
    out, seen = [], set()
    states = state_tensors(graph)
    inputs = tuple(graph.inputs or (graph.input,))
    for name in [*inputs, graph.output, *buffers]:
        buf = buffers[name]
        if (buf.addr, buf.off) in seen or (name not in (*inputs, graph.output)
                                           and (buf.name != name or buf.addr >= const_addr)):
            continue
        seen.add((buf.addr, buf.off))
        kind = "input" if name in inputs else "output" if name == graph.output else \
            "state" if name in states else "activation"
        tq = graph.tensors[name]
        if not buf.dense and kind != "activation":
            raise UnsupportedOpError(f"tensor {name} is the graph's {kind} and a concatenation "
                                     "view at once; qasic needs a dense buffer there")
        out.append(Region(name, buf.addr, buf.size, kind, (buf.h, buf.w, buf.c, 0),
                          scale=tq.scale, zero_point=tq.zero_point, bits=buf.bits))
    out.append(Region("constants", const_addr, const_len, "constants"))
    return tuple(out)
