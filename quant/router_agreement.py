"""How often a quantized mixture of experts routes as its float graph does: the share of the
float graph's (token, expert) picks that the golden reference also makes.

A routed block run densely (qasic.quant.moe) picks each token's experts with a ``topk_mask`` of
its router's scores; the last topk_mask named inside the block is its expert pick (DeepSeek-V3's
grouped rule makes three, the last choosing the experts; PhiMoE's sparsemixer two, the last
holding both picks). Where the float graph's k-th and (k+1)-th scores lie closer than the
integer scores' rounding, the golden reference may pick another expert, and the token's output
moves by a whole expert's share: a low output cosine with an agreement below 1 is (partly) such
near ties, not rounding spread over the layers (docs/families.md, "Reading the cosines")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qasic.quant import reference
from qasic.quant.calibrate import check_calibration, prepare
from qasic.quant.fgraph import FGraph, run_float
from qasic.quant.graph import QGraph


def expert_picks(graph: QGraph, blocks: Sequence[str]) -> list[str]:
    """Per block (module names, dotted), the output of the last ``topk_mask`` node named inside
    it (the node's name holds the block's path as whole components); blocks without one are
    left out."""
    found = []
    for block in blocks:
        inside = [n.output for n in graph.nodes
                  if n.op == "topk_mask" and f".{block}." in f".{n.name}"]
        found += inside[-1:]
    return found


def agreement(want: np.ndarray, got: np.ndarray) -> float:
    """The share of ``want``'s picks (its nonzero entries) that ``got`` (the same shape) also
    picks; ValueError when ``want`` picks nothing."""
    want, got = np.asarray(want) != 0, np.asarray(got) != 0
    if want.shape != got.shape:
        raise ValueError(f"picks of shape {got.shape} against {want.shape}")
    if not want.any():
        raise ValueError("the float picks are empty: no share to take")
    return float(np.count_nonzero(want & got) / np.count_nonzero(want))


def router_agreement(fgraph: FGraph, graph: QGraph, x: Any, blocks: Sequence[str]
                     ) -> float | None:
    """The agreement over every block's expert picks (``expert_picks``) of ``fgraph`` (the
    captured float graph ``graph`` was quantized from) and of ``graph``'s golden reference on
    the batch ``x`` (torch layout); None when no block has picks."""
    picks = expert_picks(graph, blocks)
    if not picks:
        return None
    x = check_calibration(fgraph, x)
    floats = run_float(prepare(fgraph), fgraph.to_internal(x), keep=True)
    codes = reference.run(graph, graph.quantize_input(x), keep=True)
    got = np.concatenate([codes[t].ravel() for t in picks])
    want = np.concatenate([floats[t].reshape(codes[t].shape).ravel() for t in picks])
    return agreement(want, got)
