"""Head split and merge without a copy: permutes folded into strided views.

A permute (1, 0, 2) of a 3-D tensor swaps the image's rows and columns, so either side can be a
view of the other's bytes (memory.Buffer.transposed: (h, w) and (stride, pix) exchanged); this
pass decides which, as compiler.memory makes concat inputs views of the concat's buffer:

view     the output is a view of the input: a head split (S, H, dh) -> (H, S, dh) reads q, k
         or v where its linear stored them, head h at a row stride of dh codes, token s at a
         pixel stride of D codes. Chosen when every reader of the output addresses its
         operands through Buffer strides (READS_VIEWS).
view_in  the input is a view of the output: a head merge (H, S, dh) -> (S, H, dh) is stored
         in place by the input's producer (a matmul's POST/STORE writes head h's tiles into
         columns [h dh, (h + 1) dh) of the (S, D) buffer). Chosen when the producer stores
         through Buffer strides (WRITES_VIEWS) and the input's other readers read views.
Otherwise the permute stays a copy kernel (compiler.moves). Both kinds emit no instructions.
The graph's input and output stay dense buffers of their own; a tensor is a view of at most
one other (an alias's or a concat input's bytes are already someone else's).

Packed codes need no rule of their own: the view's pixels of dh codes count among its root's
accesses (compiler.memory.storage_bits), so a dh whose codes do not fill whole bytes stores
them a byte a code, as the reshape to (S, H, dh) already did with a copy.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from qasic.compiler.fuse import Kernel
from qasic.quant.graph import QGraph

# kernel kinds whose loads address an operand only through Buffer.pixel_addr, pix and stride
READS_VIEWS = frozenset({"gemm", "matmul", "softmax", "norm", "ew", "lut", "copy", "pool",
                         "bilinear", "view", "slice"})
# kernel kinds whose stores do
WRITES_VIEWS = frozenset({"gemm", "matmul", "softmax", "norm", "ew", "lut", "copy", "pool",
                          "bilinear", "gather"})
SWAP = (1, 0, 2)  # the permute a view can express


def fold_permutes(graph: QGraph, kernels) -> tuple[Kernel, ...]:
    """``kernels`` with each foldable permute's kind set to "view" or "view_in"."""
    readers: dict[str, list[Kernel]] = defaultdict(list)
    for k in kernels:
        for t in k.inputs:
            readers[t].append(k)
    producer = {k.output: k for k in kernels}
    shared = _shared(kernels)  # tensors already stored in another's bytes
    out = []
    for k in kernels:
        kind = _fold(graph, k, readers, producer, shared) if _swaps(graph, k) else k.kind
        if kind == "view":
            shared.add(k.output)
        elif kind == "view_in":
            shared.add(k.inputs[0])
        out.append(k if kind == k.kind else replace(k, kind=kind))
    return tuple(out)


def _swaps(graph: QGraph, k: Kernel) -> bool:
    perm = k.anchor.attrs.get("perm") if k.kind == "permute" else None
    return perm is not None and len(graph.shapes[k.inputs[0]]) == 3 \
        and tuple(int(p) for p in perm) == SWAP


def _fold(graph: QGraph, k: Kernel, readers, producer, shared: set[str]) -> str:
    src, dst = k.inputs[0], k.output
    ends = (*(graph.inputs or (graph.input,)), graph.output)
    if dst not in ends and dst not in shared and _read_as_views(readers[dst], k):
        return "view"
    maker = producer.get(src)
    if src not in ends and src not in shared and maker is not None \
            and maker.kind in WRITES_VIEWS and _read_as_views(readers[src], k):
        return "view_in"
    return "permute"


def _read_as_views(kernels, but: Kernel) -> bool:
    return all(r.kind in READS_VIEWS for r in kernels if r is not but)


def _shared(kernels) -> set[str]:
    out = {k.output for k in kernels if k.kind in ("alias", "slice")}
    return out | {t for k in kernels if k.kind == "concat" for t in k.inputs}
