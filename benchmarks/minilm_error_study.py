"""Where minilm's W8A8 error is left, and what gamma migration does to it.

    python -m benchmarks.minilm_error_study --out benchmarks/results [--reference]

Fake-quant runs (``run_float`` with the activation encodings of ``quantize_graph`` and the
weights at their max-abs per-channel INT8 values) of all-MiniLM-L6-v2 on its 256 test sentences,
from the recipe FP8 E4M3 activations, 16-bit norm inputs and 16-bit residual copies of the
LayerNorm outputs (``--norm-residual-bits 16``). Each point is the embedding cosine to fp32's and
the nearest-neighbour agreement (models.minilm), as ``qasic evaluate`` scores them.

- ``gamma migration`` (Outlier Suppression, Wei et al., NeurIPS 2022): the LayerNorm copies that
  feed linears only write x̂ (gamma 1, beta 0), their linears read it with W diag(gamma) and
  b + W beta (``migrate_gamma``; exact in float).
- ``LN->GEMM per-channel INT8``: the 13 LayerNorm outputs the GEMMs read as INT8 with one
  range per channel (calibration min/max): what a per-channel equalization of those tensors
  through the norm's per-channel multiplier could give at best (the weight columns' extra
  rounding not counted).
- ``non-GEMM inputs exact``: the 8-bit tensors no GEMM reads (the embeddings, the position
  constant, the linear outputs the residual adds read, the attention scores) kept in float, as
  int16 codes would nearly keep them.
- ``S``: both of the above; then S with one more category exact.

``--reference`` also scores gamma migration and the recipe on the golden reference (integer
graph; slower). Writes minilm_error_study.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "minilm_error_study/1"
RECIPE = {"activation_format": "fp8_e4m3", "norm_input_bits": 16, "norm_residual_bits": 16}


def migrate_gamma(graph: Any) -> Any:
    """Each norm read by linears only (not the graph output): gamma 1, beta 0; its linears get
    W diag(gamma) and b + W beta."""
    moved = {n.output: n for n in graph.nodes if n.op == "norm" and n.output != graph.output
             and graph.users(n.output) and all(u.op == "linear" for u in graph.users(n.output))}
    nodes = []
    for n in graph.nodes:
        if n.output in moved:
            n = replace(n, params={**n.params, "gamma": np.ones_like(n.params["gamma"]),
                                   "beta": np.zeros_like(n.params["beta"])})
        elif n.op == "linear" and n.inputs[0] in moved:
            g, w = moved[n.inputs[0]].params, n.params["weight"]
            n = replace(n, params={**n.params, "weight": w * g["gamma"],
                                   "bias": n.params["bias"] + w @ g["beta"]})
        nodes.append(n)
    return replace(graph, nodes=tuple(nodes))


def categories(graph: Any) -> dict[str, list[str]]:
    """{category: tensors} of the split graph (by producer op and readers)."""
    cats: dict[str, list[str]] = {}
    for n in graph.nodes:
        readers = sorted({u.op for u in graph.users(n.output)})
        kind = n.op
        if n.op == "norm":
            kind = "norm residual copy" if n.attrs.get("residual_copy") else "norm -> GEMM"
        elif n.op in ("linear", "matmul"):
            kind = f"{n.op} -> {','.join(readers)}"
        cats.setdefault(kind, []).append(n.output)
    return cats


def per_channel_int8(v: np.ndarray):
    """Fake-quantizer: asymmetric INT8 with each channel's calibration min/max."""
    v = v.reshape(-1, v.shape[-1])
    lo, hi = v.min(axis=0), v.max(axis=0)
    s = np.maximum(hi - lo, 1e-12) / 255
    z = np.round(-lo / s)
    return lambda y: (np.clip(np.round(y / s) + z, 0, 255) - z) * s


def study(reference: bool, log=print) -> dict:
    from qasic.models import get_model
    from qasic.models.minilm import embed, retrieval_agreement
    from qasic.quant import QuantConfig, capture
    from qasic.quant import reference as golden
    from qasic.quant.actformat import fake_quantize
    from qasic.quant.calibrate import prepare
    from qasic.quant.encodings import split_norm_residuals
    from qasic.quant.fgraph import as_input, run_float, run_node
    from qasic.quant.quantize import quantize_graph
    from qasic.quant.sensitivity import quantized_params, with_params

    t = get_model("minilm")
    x, fp32 = t.test_inputs, t.fp32_embeddings
    config = QuantConfig(**RECIPE)

    def score(y: np.ndarray) -> dict:
        e = embed(np.asarray(y, np.float32).reshape(*x.shape, -1), x, t.pad_id)
        return {"embedding_cosine": float(np.mean(np.sum(e * fp32, axis=1))),
                "retrieval_agreement": retrieval_agreement(e, fp32)}

    base = split_norm_residuals(prepare(capture(t.module, t.example_input, t.name)))
    records: list[dict] = []

    def point(name: str, kind: str, result: dict) -> None:
        records.append({"point": name, "mode": kind, **result})
        log(f"{name} ({kind}): cosine {result['embedding_cosine']:.5f}, "
            f"agreement {100 * result['retrieval_agreement']:.1f} %")

    for name, graph in (("recipe", base), ("gamma migration", migrate_gamma(base))):
        if name != "recipe":
            a, b = (run_float(g, g.to_internal(x[:16])) for g in (base, graph))
            log(f"gamma migration: float outputs differ by at most {np.abs(a - b).max():.1e}")
        q = quantize_graph(graph, t.calibration, config)
        enc = dict(q.tensors)
        weighted = graph
        for n in graph.nodes:
            if n.op == "linear":
                weighted = with_params(weighted, n.name, quantized_params(n, 8, "minmax", enc))
        if name == "recipe":
            recipe = (graph, weighted, enc)
        point(name, "fake-quant", score(run_float(weighted, graph.to_internal(x),
                                                  activations=enc)))
        if reference:
            codes = q.quantize_input(x)
            out = np.concatenate([golden.run(q, codes[i:i + 64])
                                  for i in range(0, len(codes), 64)])
            point(name, "golden reference", score(q.dequantize_output(out)))

    graph, weighted, enc = recipe
    cats = categories(graph)
    ln = cats["norm -> GEMM"]
    calib = run_float(graph, graph.to_internal(t.calibration), keep=True)
    channel = {a: per_channel_int8(calib[a]) for a in ln}
    del calib
    xi = graph.to_internal(x)

    def run(exact: set[str], custom: dict, g: Any = weighted) -> dict:
        env = {g.input: as_input(g, xi)}
        for n in g.nodes:
            y = run_node(n, *[env[i] for i in n.inputs])
            if n.output in custom:
                y = custom[n.output](y)
            elif n.output in enc and n.output not in exact:
                y = fake_quantize(y, enc[n.output])
            env[n.output] = y
        return score(env[g.output])

    non_gemm = {*cats["embedding"], *cats["constant"], *cats["linear -> add"],
                *cats["matmul -> softmax"]}
    chains = {*cats["linear -> reshape"], *cats["reshape"], *cats["permute"],
              *cats["matmul -> permute"]}
    point("LN->GEMM per-channel INT8", "fake-quant", run(set(), channel))
    point("non-GEMM inputs exact", "fake-quant", run(non_gemm, {}))
    point("S", "fake-quant", run(non_gemm, channel))
    point("S, weights exact", "fake-quant", run(non_gemm, channel, graph))
    for label, ts in (("GELU output", cats["lut"]), ("FFN1 output (GELU input)",
                                                     cats["linear -> lut"]),
                      ("softmax", cats["softmax"]), ("Q, K, V and P·V", chains)):
        point(f"S, {label} exact", "fake-quant", run(non_gemm | set(ts), channel))
    point("S, every other activation exact", "fake-quant", run(set(enc), channel))
    return {"schema": SCHEMA, "model": "minilm", "samples": len(x), "config": RECIPE,
            "records": records}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/minilm_error_study")
    p.add_argument("--reference", action="store_true",
                   help="also score the recipe and gamma migration on the golden reference")
    args = p.parse_args(argv)
    t0 = time.time()
    doc = study(args.reference, lambda m: print(m, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "minilm_error_study.json").write_text(json.dumps(doc, indent=2))
    print(f"{len(doc['records'])} points in {time.time() - t0:.0f} s: "
          f"{out / 'minilm_error_study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
