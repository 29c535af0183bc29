"""Fusion: group QGraph nodes into kernels by a pattern table.

A kernel is a chain of nodes executed on-chip with no DRAM round trip between them. Patterns are
data, tried longest first; a chain may only continue through a tensor with a single consumer.
Kernel kinds (how compiler.pipeline lowers each):
    gemm    conv2d / linear on the array, + POST (requantize, clamp), an optional table lookup
            in the post-processing unit and an optional non-overlapping max-pool
    pool    max- or average-pooling on the vector unit (POOL)
    ew      elementwise add / multiply of two tensors (ADD), + clamp
    lut     any function of one activation code: a 2^B-byte table (LUT)
    copy    nearest-neighbour upsampling (and plain copies): DMA and a table copy
    bilinear  2x bilinear upsampling: four depthwise 2x2 convs on the array (one per output
            phase, weights (1, 3) x (3, 1)), edge pixels repeated, stores interleaved
    matmul  the product of two activations on the array (compiler.matmul): the second operand
            loaded from its DRAM buffer as dynamic weights per head (wtrans for B^T), + POST
    softmax row softmax on the vector unit (SOFTMAX), causal and key masks (compiler.rows)
    norm    LayerNorm / RMSNorm: NORM into accumulator chunks, then POST with the per-channel
            affine part (compiler.rows)
    gather  an embedding: GATHER of table rows (constants) by the int32 ids (compiler.moves)
    permute axes reordered by strided DMA copies (compiler.moves); a head split or merge
            becomes a "view" or "view_in" kernel instead (compiler.views: nothing to run, one
            side is a strided view of the other's bytes) wherever its neighbours allow
    const   nothing to run: a constant's codes live in the constants region (compiler.memory)
    cache   a KV-cache write: rows into a persistent state region, by STORE (prefill) or
            SCATTER at the step's runtime position (decode) (compiler.cache)
    window  a state's rows from the step's runtime position: one GATHER, then STORE
            (compiler.cache: a token convolution's window in a decode step)
    state   nothing to run: a state region as a prefill left it (``cache_read``: an
            encoder-decoder's cross-attention keys and values in a decode step; a selective
            scan's state h as the prefill or the last step left it)
    concat  nothing to run: the inputs are views of the output buffer (compiler.memory)
    slice   nothing to run: the output (channels start..stop) is a view of the input's pixels
            (compiler.memory); where it cannot be one (compiler.pipeline.slice_copies) a copy
            kernel reads the view
    alias   nothing to run: a view of the same bytes with another shape (flatten, reshape)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from qasic.errors import UnsupportedOpError
from qasic.quant.graph import QGraph, QNode

_CLAMPS = ("relu", "clamp")


def _gemm_patterns() -> list[tuple[tuple[str, ...], str]]:
    out = []
    for anchor in ("conv2d", "linear"):
        for act in [(c,) for c in _CLAMPS] + [()]:
            tails = [("lut",), ()] + ([("maxpool2d",)] if anchor == "conv2d" else [])
            out += [((anchor, *act, *tail), "gemm") for tail in tails]
    return out


# (pattern of ops, kernel kind). The first op is the anchor; the rest are absorbed into it.
PATTERNS: tuple[tuple[tuple[str, ...], str], ...] = tuple(sorted(
    _gemm_patterns()
    + [((op, *act), "ew") for op in ("add", "mul") for act in [(c,) for c in _CLAMPS] + [()]]
    + [(("maxpool2d",), "pool"), (("avgpool2d",), "pool")]
    + [(("lut",), "lut"), (("relu",), "lut"), (("clamp",), "lut")]
    + [(("upsample_nearest",), "copy"), (("upsample_bilinear",), "bilinear")]
    + [(("matmul",), "matmul"), (("softmax",), "softmax"), (("norm",), "norm")]
    + [(("embedding",), "gather"), (("permute",), "permute"), (("constant",), "const")]
    + [(("concat",), "concat"), (("channels",), "slice")]
    + [(("cache_write",), "cache"), (("cache_read",), "state"), (("cache_window",), "window")]
    + [(("flatten",), "alias"), (("reshape",), "alias")],
    key=lambda p: -len(p[0])))
SUPPORTED_OPS = sorted({op for pattern, _ in PATTERNS for op in pattern})


@dataclass(frozen=True, eq=False)
class Kernel:
    """Fused nodes that become one on-chip kernel. ``name`` is the anchor node's name."""

    kind: str
    nodes: tuple[QNode, ...]

    @property
    def name(self) -> str:
        return self.nodes[0].name

    @property
    def anchor(self) -> QNode:
        return self.nodes[0]

    @property
    def inputs(self) -> tuple[str, ...]:
        return self.nodes[0].inputs

    @property
    def output(self) -> str:
        return self.nodes[-1].output

    def has(self, op: str) -> QNode | None:
        return next((n for n in self.nodes[1:] if n.op == op), None)


def fuse(graph: QGraph, patterns=PATTERNS) -> tuple[Kernel, ...]:
    """Partition ``graph.nodes`` (topological order) into kernels, greedily by the table."""
    consumers = _consumers(graph)
    kernels, i, nodes = [], 0, graph.nodes
    while i < len(nodes):
        kernel = _match(nodes, i, consumers, patterns, graph)
        kernels.append(kernel)
        i += len(kernel.nodes)
    return tuple(kernels)


def _match(nodes, i, consumers, patterns, graph) -> Kernel:
    for pattern, kind in patterns:
        chain = nodes[i:i + len(pattern)]
        if tuple(n.op for n in chain) == pattern and _chained(chain, consumers, graph):
            return Kernel(kind, tuple(chain))
    n = nodes[i]
    supported = sorted({op for pattern, _ in patterns for op in pattern})
    raise UnsupportedOpError(f"node {n.name}: op {n.op} cannot be compiled; supported ops: "
                             f"{', '.join(supported)}")


def _chained(chain, consumers, graph) -> bool:
    for prev, nxt in itertools.pairwise(chain):
        if nxt.inputs != (prev.output,) or consumers.get(prev.output, 0) != 1:
            return False
        if prev.output == graph.output:
            return False
    return _fusable_pool(chain, graph) and _fusable_table(chain, graph)


def _fusable_pool(chain, graph) -> bool:
    """A fused max-pool works on whole, non-overlapping, unpadded square windows of a tile
    (the GEMM kernel's geometry has one pool size: a (1, L) window, PointNet's max over its
    points right after a conv, runs as its own pool kernel)."""
    pool = next((n for n in chain[1:] if n.op == "maxpool2d"), None)
    if pool is None:
        return True
    h, w, _ = graph.shapes[pool.inputs[0]]
    (kh, kw), (sh, sw) = pair(pool.attrs["kernel"]), pair(pool.attrs["stride"])
    return (kh, kw) == (sh, sw) and kh == kw and not any(pad4(pool.attrs.get("padding", 0))) \
        and h % kh == 0 and w % kw == 0


def _fusable_table(chain, graph) -> bool:
    """The post-processing unit's table maps codes to codes of the same storage width."""
    lut = next((n for n in chain[1:] if n.op == "lut"), None)
    if lut is None:
        return True
    a, b = graph.tensors[lut.inputs[0]], graph.tensors[lut.output]
    return (a.fmt, a.bits) == (b.fmt, b.bits)


def _consumers(graph: QGraph) -> dict[str, int]:
    count: dict[str, int] = {}
    for n in graph.nodes:
        for t in n.inputs:
            count[t] = count.get(t, 0) + 1
    return count


def pair(v) -> tuple[int, int]:
    """An int or (h, w) attribute as (h, w)."""
    if isinstance(v, (tuple, list)):
        return (int(v[0]), int(v[-1])) if len(v) in (1, 2) else tuple(int(x) for x in v)
    return int(v), int(v)


def pad4(v) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right) from an int, (h, w) or a 4-tuple."""
    if isinstance(v, (tuple, list)):
        if len(v) == 4:
            return tuple(int(x) for x in v)
        h, w = pair(v)
        return h, w, h, w
    return (int(v),) * 4
