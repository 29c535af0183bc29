"""Where minilm's W8A8 error is left, and what gamma migration does to it.

    python -m benchmarks.minilm_error_study --out benchmarks/results [--reference]
    python -m benchmarks.minilm_error_study --out benchmarks/results --per-token
    python -m benchmarks.minilm_error_study --out benchmarks/results --mx
    python -m benchmarks.minilm_error_study --out benchmarks/results --float16

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

``--per-token`` runs only the per-token points (12 minutes; ``--reference`` is then ignored) and
merges their records into the JSON already in ``--out`` (replacing the records of the same point
and mode, keeping the others; a run without it rewrites the JSON without them). They give
the 8-bit tensors the GEMMs read dynamic scales (ZeroQuant / LLM.int8() style), computed at run
time from the values quantized, one per index of the operand that survives into the GEMM's
output, so that the requantization could apply it:
- a linear's input and a matmul's A operand (Q, P): one per row (token) over the last axis, a
  rescale of the output's row;
  Q's (and K's) rows are (token, head) over the head's 32 channels; P·V's output, read by the
  attention output dense, has one scale per token over all heads;
- Q·Kᵀ's K: one per key token (a row of K over the head's 32 channels), which is a *column* of
  the scores: a rescale of the output's columns by a vector computed at run time;
- P·V's V: one per channel over the keys (a column of V). V's rows lie on the contraction axis,
  so a per-token V scale cannot be applied after the GEMM (``V per token`` measures it anyway);
- ``row rescale only``: K and V keep the recipe's static per-tensor FP8 encodings.
``--mx`` runs only the block-scaled points (OCP Microscaling v1.0, MXINT8 and MXFP8 E4M3: 32
values along each GEMM operand's contraction axis share a power-of-two scale computed at run
time; 2 minutes) and merges them the same way (with ``--per-token``, both sets).
``--float16`` runs only the 16-bit float points (the metric's ceiling, 1 minute): every
activation (every op's output, the embeddings included) rounded to bfloat16 or IEEE float16,
with exact weights and with the weights in the same format, and merges them the same way.
The reshape/permute chain from a producer to the tensor a GEMM reads stays exact (the producer
would write the GEMM's codes). The other tensors keep the recipe's encodings.
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
# embedding_bits 8: the width the stored results were measured at (the default then, 16 since)
RECIPE = {"activation_format": "fp8_e4m3", "norm_input_bits": 16, "norm_residual_bits": 16,
          "embedding_bits": 8}


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


def per_row(kind: str, axis: int = -1, channel: np.ndarray | None = None):
    """Fake-quantizer with one scale per slice along ``axis`` (a row over the last axis by
    default) from the values it quantizes: ``int8`` symmetric (absmax -> 127), ``int8_asym``
    (min/max with 0 kept in the range; integer zero point), ``fp8`` (absmax -> E4M3's 448).
    ``channel``: static per-channel (last axis) factors the values are divided by before and
    multiplied by after, an equalization folded into the producer and the reader's weights."""
    from qasic.quant.actformat import decode_levels, encode_values, lsb

    if channel is not None:
        inner = per_row(kind, axis)
        return lambda y: inner(y / channel) * channel

    if kind in MX_ELEMENT:
        return mx_block(kind, axis)

    def q(y: np.ndarray) -> np.ndarray:
        if kind == "int8_asym":
            lo = np.minimum(y.min(axis=axis, keepdims=True), 0)
            hi = np.maximum(y.max(axis=axis, keepdims=True), 0)
            s = np.where(hi > lo, hi - lo, 1.0) / 255
            z = np.round(-lo / s)
            return (np.clip(np.floor(y / s + 0.5) + z, 0, 255) - z) * s
        a = np.abs(y).max(axis=axis, keepdims=True)
        if kind == "int8":
            s = np.where(a > 0, a, 1.0) / 127
            return np.clip(np.floor(y / s + 0.5), -127, 127) * s
        s = np.where(a > 0, a, 1.0) / 448
        return decode_levels(encode_values(y / s, "fp8_e4m3"), "fp8_e4m3") * lsb("fp8_e4m3") * s
    return q


# OCP Microscaling v1.0: 32 consecutive elements along the contraction axis share a power-of-two
# scale 2^(floor(log2(block absmax)) - emax_elem); MXINT8's element is a two's-complement 1.6
# fixed point (emax_elem 0, saturating at +-127/64), MXFP8's an E4M3 (emax_elem 8)
MX_ELEMENT = {"mxint8": 0, "mxfp8": 8}
MX_BLOCK = 32


def mx_block(kind: str, axis: int):
    """Fake-quantizer with one shared power-of-two scale per MX_BLOCK elements along ``axis``
    (the GEMM's contraction axis, so each block's scale multiplies one block of the dot
    product), computed at run time from the block's absmax; the last block of an axis that is
    not a multiple of MX_BLOCK is shorter (zero padding)."""
    from qasic.quant.actformat import decode_levels, encode_values, lsb

    def q(y: np.ndarray) -> np.ndarray:
        m = np.moveaxis(np.asarray(y, np.float64), axis, -1)
        n = m.shape[-1]
        m = np.pad(m, [(0, 0)] * (m.ndim - 1) + [(0, -n % MX_BLOCK)])
        b = m.reshape(*m.shape[:-1], -1, MX_BLOCK)
        a = np.abs(b).max(axis=-1, keepdims=True)
        s = 2.0 ** (np.floor(np.log2(np.where(a > 0, a, 1.0))) - MX_ELEMENT[kind])
        if kind == "mxint8":
            r = np.clip(np.floor(b / s * 64 + 0.5), -127, 127) / 64 * s
        else:
            r = decode_levels(encode_values(b / s, "fp8_e4m3"), "fp8_e4m3") * lsb("fp8_e4m3") * s
        return np.moveaxis(r.reshape(m.shape)[..., :n], -1, axis)
    return q


def round_bf16(y: np.ndarray) -> np.ndarray:
    """Reals -> the nearest bfloat16 (round to nearest, ties to even; float64 out)."""
    a = np.asarray(y, np.float32).view(np.uint32).astype(np.uint64)
    a = ((a + 0x7FFF + ((a >> 16) & 1)) >> 16) << 16
    return a.astype(np.uint32).view(np.float32).astype(np.float64)


def round_fp16(y: np.ndarray) -> np.ndarray:
    """Reals -> the nearest IEEE float16 (float64 out)."""
    return np.asarray(y, np.float16).astype(np.float64)


# (point, rounding of every activation, whether the weights take it too)
FLOAT16_POINTS = (
    ("every activation bfloat16, weights exact", round_bf16, False),
    ("every activation and weight bfloat16", round_bf16, True),
    ("every activation float16, weights exact", round_fp16, False),
    ("every activation and weight float16", round_fp16, True),
)


def gemm_operands(graph: Any) -> dict[str, tuple[str, int]]:
    """{tensor a GEMM reads: (role, the axis its dynamic scale reduces over)}. Roles: ``LN`` (a
    LayerNorm output), ``GELU`` (the FFN2 input), ``context`` (the attention output dense's
    input, P·V's output), ``Q``, ``K``, ``P`` (softmax output), ``V``. The axis is the
    contraction axis, so each scale belongs to one row (inputs, Q, P) or one column (K, and V
    per channel: axis -2) of the GEMM's output."""
    ops: dict[str, tuple[str, int]] = {}
    for n in graph.nodes:
        if n.op == "linear":
            ops[n.inputs[0]] = ({"norm": "LN", "lut": "GELU"}.get(graph.node(n.inputs[0]).op,
                                                                  "context"), -1)
        elif n.op == "matmul":
            a, b = ("Q", "K") if n.attrs.get("transpose_b") else ("P", "V")
            ops[n.inputs[0]] = (a, -1)
            ops[n.inputs[1]] = (b, -1 if b == "K" else -2)
    return ops


def upstream(graph: Any, tensor: str) -> list[str]:
    """The reshape/permute chain into ``tensor`` and its producer: they only move the values."""
    out, n = [], graph.node(tensor)
    while n.op in ("reshape", "permute") and len(graph.users(n.inputs[0])) == 1:
        out.append(n.inputs[0])
        n = graph.node(n.inputs[0])
    return out


# (point, {role: per_row kind}, {role: axis overriding gemm_operands'}, what else is exact:
# "" nothing, "non-GEMM" the 8-bit tensors no GEMM reads as in S, "weights", "both"); roles not
# named keep the recipe's per-tensor encodings. A kind ending in "+eq" first divides each
# channel by its calibration absmax (LN->GEMM only: the norm's gamma and beta and the reading
# linears' weight columns would take the factors; their extra weight rounding is not counted).
ALL = ("LN", "GELU", "context", "Q", "K", "P", "V")
ROWS = ("LN", "GELU", "context", "Q", "P")  # the operands whose scale is an output row's
SYM, ASYM = dict.fromkeys(ALL, "int8"), dict.fromkeys(ALL, "int8_asym")
# zero points only where the other operand is a weight (P >= 0 is unsigned with zero point 0)
MIXED = {**ASYM, "Q": "int8", "K": "int8", "V": "int8"}
PER_TOKEN_POINTS = (
    ("per-token INT8, all GEMM inputs", SYM, {}, ""),
    ("per-token INT8 asymmetric, all GEMM inputs", ASYM, {}, ""),
    ("per-token INT8, LN->GEMM only", {"LN": "int8"}, {}, ""),
    ("per-token INT8 asymmetric, LN->GEMM only", {"LN": "int8_asym"}, {}, ""),
    ("per-token INT8, GELU output only", {"GELU": "int8"}, {}, ""),
    ("per-token INT8 asymmetric, GELU output only", {"GELU": "int8_asym"}, {}, ""),
    ("per-token INT8 asymmetric, attention operands only (Q, K, P, V, P·V)",
     {r: ASYM[r] for r in ("context", "Q", "K", "P", "V")}, {}, ""),
    ("per-token FP8, all GEMM inputs", dict.fromkeys(ALL, "fp8"), {}, ""),
    ("per-token INT8, row rescale only (K, V per-tensor FP8)",
     {r: SYM[r] for r in ROWS}, {}, ""),
    ("per-token INT8 asymmetric, row rescale only (K, V per-tensor FP8)",
     {r: ASYM[r] for r in ROWS}, {}, ""),
    ("per-token INT8, all GEMM inputs, V per token", SYM, {"V": -1}, ""),
    ("per-token INT8 asymmetric, all GEMM inputs, V per token", ASYM, {"V": -1}, ""),
    ("per-token INT8, zero points on linear inputs and P only", MIXED, {}, ""),
    ("per-token INT8, zero points on linear inputs and P only, row rescale only",
     {r: MIXED[r] for r in ROWS}, {}, ""),
    ("per-token INT8 asymmetric, all GEMM inputs, non-GEMM inputs exact", ASYM, {}, "non-GEMM"),
    ("per-token INT8 asymmetric, all GEMM inputs, weights exact", ASYM, {}, "weights"),
    *((f"per-token INT8 asymmetric, all GEMM inputs, LN->GEMM channel-equalized{x}",
       {**ASYM, "LN": "int8_asym+eq"}, {}, exact)
      for x, exact in (("", ""), (", non-GEMM inputs exact", "non-GEMM"),
                       (", non-GEMM inputs and weights exact", "both"))),
)

# block-scaled 8-bit GEMM inputs (OCP MX), every operand blocked along its contraction axis
# (V along the keys); the other tensors keep the recipe's encodings
MX_POINTS = (
    ("MXINT8, all GEMM inputs", dict.fromkeys(ALL, "mxint8"), {}, ""),
    ("MXINT8, all GEMM inputs, non-GEMM inputs exact", dict.fromkeys(ALL, "mxint8"), {},
     "non-GEMM"),
    ("MXINT8, all GEMM inputs, non-GEMM inputs and weights exact", dict.fromkeys(ALL, "mxint8"),
     {}, "both"),
    ("MXFP8 E4M3, all GEMM inputs", dict.fromkeys(ALL, "mxfp8"), {}, ""),
    ("MXFP8 E4M3, all GEMM inputs, non-GEMM inputs exact", dict.fromkeys(ALL, "mxfp8"), {},
     "non-GEMM"),
)


def study(reference: bool, log=print, per_token: bool = False, mx: bool = False,
          float16: bool = False) -> dict:
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

    if float16:
        xi = base.to_internal(x)
        for name, rnd, weights in FLOAT16_POINTS:
            g = base
            if weights:
                for n in base.nodes:
                    if n.op in ("linear", "embedding"):
                        g = with_params(g, n.name, {k: rnd(v) if k in ("weight", "table") else v
                                                    for k, v in n.params.items()})
            env = {g.input: as_input(g, xi)}
            for n in g.nodes:
                env[n.output] = rnd(run_node(n, *[env[i] for i in n.inputs]))
            point(name, "fake-quant", score(env[g.output]))
        return {"schema": SCHEMA, "model": "minilm", "samples": len(x), "config": RECIPE,
                "records": records}

    dynamic = per_token or mx
    graphs = (("recipe", base),) if dynamic else (("recipe", base),
                                                    ("gamma migration", migrate_gamma(base)))
    for name, graph in graphs:
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
            if dynamic:  # its point is in the JSON already
                break
        point(name, "fake-quant", score(run_float(weighted, graph.to_internal(x),
                                                  activations=enc)))
        if reference:
            codes = q.quantize_input(x)
            out = np.concatenate([golden.run(q, codes[i:i + 64])
                                  for i in range(0, len(codes), 64)])
            point(name, "golden reference", score(q.dequantize_output(out)))

    graph, weighted, enc = recipe
    cats = categories(graph)
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
    if dynamic:
        points = (PER_TOKEN_POINTS if per_token else ()) + (MX_POINTS if mx else ())
        ops = gemm_operands(graph)
        log("GEMM operands: " + ", ".join(f"{r} {sum(v[0] == r for v in ops.values())}"
                                          for r in ALL))
        eq = {a for a, (r, _) in ops.items() if any(k.get(r, "").endswith("+eq")
                                                        for _, k, _, _ in points)}
        calib = run_float(graph, graph.to_internal(t.calibration), keep=True) if eq else {}
        eq = {a: np.abs(calib[a]).reshape(-1, calib[a].shape[-1]).max(axis=0) for a in eq}
        del calib
        for name, kinds, axes, exact in points:
            chosen = {a: (kinds[r], axes.get(r, ax)) for a, (r, ax) in ops.items() if r in kinds}
            keep = {u for a in chosen for u in upstream(graph, a)}
            custom = {a: per_row(k.removesuffix("+eq"), ax, eq[a] if k.endswith("+eq") else None)
                      for a, (k, ax) in chosen.items()}
            point(name, "fake-quant", run(keep | (non_gemm if exact in ("non-GEMM", "both")
                                                  else set()),
                                          custom, graph if exact in ("weights", "both")
                                          else weighted))
        return {"schema": SCHEMA, "model": "minilm", "samples": len(x), "config": RECIPE,
                "records": records}

    ln = cats["norm -> GEMM"]
    calib = run_float(graph, graph.to_internal(t.calibration), keep=True)
    channel = {a: per_channel_int8(calib[a]) for a in ln}
    del calib

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
    p.add_argument("--per-token", action="store_true",
                   help="run only the per-token points; merge them into the JSON in --out")
    p.add_argument("--mx", action="store_true",
                   help="run only the MX block-scaled points (with --per-token: both); merge "
                        "them into the JSON in --out")
    p.add_argument("--float16", action="store_true",
                   help="run only the bfloat16/float16 points; merge them into the JSON in --out")
    args = p.parse_args(argv)
    t0 = time.time()
    doc = study(args.reference, lambda m: print(m, flush=True), args.per_token, args.mx,
                args.float16)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    old = out / "minilm_error_study.json"
    if (args.per_token or args.mx or args.float16) and old.exists():
        new = {(r["point"], r["mode"]) for r in doc["records"]}
        doc["records"] = [r for r in json.loads(old.read_text())["records"]
                          if (r["point"], r["mode"]) not in new] + doc["records"]
    (out / "minilm_error_study.json").write_text(json.dumps(doc, indent=2))
    print(f"{len(doc['records'])} points in {time.time() - t0:.0f} s: "
          f"{out / 'minilm_error_study.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
