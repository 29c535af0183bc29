"""Bit-width study on transformers: tiny_gpt and minilm, priced per token on the simulated hardware.

    python -m benchmarks.llm_study --out out/llm_study [--models tiny_gpt,minilm] [--samples N]
        [--weights W8,W4,...] [--activations A8,FP8] [--policies hawq,lim,zd,measured]
        [--budgets 3,4,5]

The sibling of benchmarks.quant_study (the CNNs) on the formats' home ground. Points, per model
and activation format (INT8, FP8 E4M3; softmax and norm inputs stay INT, docs/ops.md):

- weights W8 and W4 INT per channel, W4 INT in groups of 128, FP8 E4M3, FP6 E2M3 and E3M2
  (ZeroQuant(4+2)), FP4 E2M1 with max-abs scales and LLM-FP4's search (split and per-channel
  exponent bias, qasic.quant.fpsearch), MXFP4 and NF4 (``policy`` "uniform" or "format");
- the mixed-precision policies (hawq, lim, zd, measured: qasic.policies) at average weight-bit
  budgets BUDGETS over CANDIDATES, scored on SCORING_SAMPLES held-out sequences.

Accuracy comes from the golden reference (bit-exact with the simulator; ``bit_exact`` checks it
on BIT_EXACT_SAMPLES samples per point) on the first ``--samples`` test inputs: perplexity
against fp32's on the same windows (tiny_gpt) or the mean cosine of the sentence embeddings to
fp32's and nearest-neighbour agreement (minilm). Costs are static (timing and energy do not
depend on the data) on an array sized to the point's weights (qasic.flow.arch_for): tiny_gpt's
per generated token from the decode-step program of qasic.generate.Session (KV cache in DRAM),
minilm's per sentence of SEQ tokens and per token (/ SEQ).

Writes llm_study.json (schema SCHEMA: per model the fp32 metrics and each activation tensor's
range on the calibration set, ``activation_ranges``; every point a record with RECORD_KEYS) and
llm_study.png (accuracy vs energy per token: one marker per weight format, one front per
policy), and prints the range and point tables. An existing llm_study.json in ``--out`` keeps
the models this run does not study, and a studied model's points this run does not make (on
the same samples): the study can be run in parts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.quant_study import _avg_bits

SCHEMA = "llm_study/1"
MODELS = ("tiny_gpt", "minilm")
# (point label, QuantConfig weight settings, weight format label); "llm-fp4" is searched per
# layer (qasic.quant.fpsearch); "fp4_e2m1" alone keeps the format's own bias (max-abs scales)
WEIGHTS: tuple[tuple[str, dict, str], ...] = (
    ("W8", {"weight_bits": 8}, "int8"),
    ("W4", {"weight_bits": 4}, "int4"),
    ("W4-g128", {"weight_format": "int4_g128"}, "int4_g128"),
    ("FP8-E4M3", {"weight_format": "fp8_e4m3"}, "fp8_e4m3"),
    ("FP6-E2M3", {"weight_format": "fp6_e2m3"}, "fp6_e2m3"),
    ("FP6-E3M2", {"weight_format": "fp6_e3m2"}, "fp6_e3m2"),
    ("FP4-E2M1", {"weight_format": "fp4_e2m1", "weight_clipping": "minmax"}, "fp4_e2m1"),
    ("LLM-FP4", {"weight_clipping": "mse"}, "llm-fp4"),
    ("MXFP4", {"weight_format": "mxfp4"}, "mxfp4"),
    ("NF4", {"weight_format": "nf4"}, "nf4"),
)
UNIFORM = ("int8", "int4")  # weight formats whose points are policy "uniform"
# (label, QuantConfig activation settings, activation format label)
ACTIVATIONS: tuple[tuple[str, dict, str], ...] = (
    ("A8", {}, "int8"),
    ("FP8", {"activation_format": "fp8_e4m3"}, "fp8_e4m3"),
)
# per model: QuantConfig settings every point shares (none: the defaults). MiniLM's residual sums
# (the LayerNorm inputs) carry outlier channels up to 220 next to +-8 (the activation_ranges
# table): 16-bit INT norm inputs, as I-BERT keeps its residual stream wider than the GEMMs'.
# tiny_gpt's points were measured with 8-bit norm inputs (the default then; 16 since), which
# they keep so that results/llm_study.json stays reproducible; both models' with 8-bit embedding
# rows (QuantConfig.embedding_bits: the default then, 16 since), likewise
BASE_CONFIG: dict[str, dict] = {"tiny_gpt": {"norm_input_bits": 8, "embedding_bits": 8},
                                "minilm": {"norm_input_bits": 16, "embedding_bits": 8}}
# per model: extra W8 points with the other norm input width (what the base setting buys), run
# with the W8 point
VARIANTS: dict[str, tuple[tuple[str, dict, str], ...]] = {
    "tiny_gpt": (("W8-norm16", {"weight_bits": 8, "norm_input_bits": 16}, "int8"),),
    "minilm": (("W8-norm8", {"weight_bits": 8, "norm_input_bits": 8}, "int8"),),
}
POLICIES = ("hawq", "lim", "zd", "measured")
ACTIVATION_AWARE = ("measured",)  # policies whose plan depends on the activation format
BUDGETS = (3.0, 4.0, 5.0)         # average weight bits
CANDIDATES = (2, 3, 4, 6, 8)
SCORING_SAMPLES = 8               # held-out sequences the sensitivities are scored on
                                  # (HAWQ's 100 Hutchinson probes per layer: ~25 min on minilm)
BIT_EXACT_SAMPLES = 2             # simulated samples per point (the costs are static)
BATCH = 32                        # golden-reference samples per call (bounds memory)
PERCENTILES = (0.1, 1.0, 50.0, 99.0, 99.9)
OUTLIER_RATIO = 6.0               # max |x| / p99.9 |x| at or above this: the tensor has outliers
OUTLIER_CHANNEL = 6.0             # a channel whose max |x| is this many times the median's
RANGE_OPS = ("embedding", "add", "norm", "linear", "matmul", "lut", "mul")
RECORD_KEYS = ("model", "task", "point", "weight_format", "activation_format", "policy",
               "budget", "avg_weight_bits", "weight_bits", "norm_input_bits", "samples",
               "perplexity",
               "perplexity_fp32", "perplexity_change", "next_token_accuracy",
               "embedding_cosine", "retrieval_agreement", "energy_pj_per_token",
               "cycles_per_token", "energy_pj", "cycles", "energy_breakdown_pj",
               "dram_bytes", "kv_cache_bytes", "prefill_cycles", "arch", "bit_exact",
               "bit_exact_samples")

Log = Callable[[str], None]


@dataclasses.dataclass(frozen=True, eq=False)
class Setting:
    """What the points of one model share: its captured float graph, the test samples and their
    fp32 metrics, the base arch."""

    trained: Any
    graph: Any            # FGraph
    x: np.ndarray         # test inputs (N, T) int64
    labels: np.ndarray | None
    fp32: dict            # fp32 metrics on x
    base: dict            # QuantConfig settings of every point

    @property
    def task(self) -> str:
        return self.trained.task


def setting(trained: Any, samples: int | None = None) -> Setting:
    from qasic.quant import capture

    n = len(trained.test_inputs) if samples is None else min(samples, len(trained.test_inputs))
    x = trained.test_inputs[:n]
    labels = trained.test_labels[:n] if trained.task == "language_model" else None
    graph = capture(trained.module, trained.example_input, trained.name)
    return Setting(trained, graph, x, labels, fp32_metrics(trained, x, labels),
                   BASE_CONFIG.get(trained.name, {}))


# --- accuracy ---------------------------------------------------------------------------------

def fp32_metrics(trained: Any, x: np.ndarray, labels: np.ndarray | None) -> dict:
    """The fp32 model's metrics on ``x`` (and the sentence embeddings, for scoring)."""
    import torch

    if trained.task == "language_model":
        from qasic.models.textmodels import language_model_metrics

        with torch.no_grad():
            logits = np.concatenate([trained.module(torch.from_numpy(x[i:i + BATCH])).numpy()
                                     for i in range(0, len(x), BATCH)])
        return language_model_metrics(logits, labels)
    return {"embeddings": np.asarray(trained.fp32_embeddings[:len(x)], dtype=np.float32)}


def golden_outputs(graph: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(input codes, output codes) of the golden reference on ``x``, in batches."""
    from qasic.quant import reference

    codes = graph.quantize_input(x)
    out = [reference.run(graph, codes[i:i + BATCH]) for i in range(0, len(codes), BATCH)]
    return codes, np.concatenate(out)


def accuracy(s: Setting, outputs: np.ndarray) -> dict:
    """The task's metrics of dequantized ``outputs`` on ``s.x``, every metric key present."""
    out = dict.fromkeys(("perplexity", "perplexity_fp32", "perplexity_change",
                         "next_token_accuracy", "embedding_cosine", "retrieval_agreement"))
    y = np.asarray(outputs, dtype=np.float32).reshape(*s.x.shape, -1)
    if s.task == "language_model":
        from qasic.models.textmodels import language_model_metrics

        m = language_model_metrics(y, s.labels)
        out.update(m, perplexity_fp32=s.fp32["perplexity"],
                   perplexity_change=m["perplexity"] / s.fp32["perplexity"] - 1)
        return out
    from qasic.models.minilm import embed, retrieval_agreement

    emb, ref = embed(y, s.x, s.trained.pad_id), s.fp32["embeddings"]
    out["embedding_cosine"] = float(np.mean(np.sum(emb * ref, axis=1)))
    out["retrieval_agreement"] = retrieval_agreement(emb, ref) if len(emb) > 1 else None
    return out


# --- costs ------------------------------------------------------------------------------------

def static_stats(program: Any, arch: Any) -> Any:
    """Cycles, energy and DRAM bytes of one run of ``program`` (data-independent)."""
    from qasic.sim.run import _stats
    from qasic.sim.timing import schedule

    return _stats(program, arch, np.zeros(0), schedule(program, arch))


def costs(s: Setting, graph: Any, program: Any, arch: Any) -> dict:
    """Per token and per inference: tiny_gpt's decode step (one generated token), minilm's
    whole sentence (``energy_pj``, ``cycles``) and per position (/ sequence length)."""
    if s.task == "language_model":
        from qasic.generate import Session

        # the prefill's prompt: half the context (a decode step's cost does not depend on it)
        c = Session(graph, s.x.shape[1] // 2, arch).costs()
        e = c["energy_pj_per_token"]
        return {"energy_pj_per_token": e["total"], "cycles_per_token": c["decode_cycles_per_token"],
                "energy_pj": e["total"], "cycles": c["decode_cycles_per_token"],
                "energy_breakdown_pj": e, "dram_bytes": c["decode_dram_bytes_per_token"],
                "kv_cache_bytes": c["kv_cache_bytes"], "prefill_cycles": c["prefill_cycles"]}
    st = static_stats(program, arch)
    seq = s.x.shape[1]
    return {"energy_pj_per_token": st.energy_pj["total"] / seq, "cycles_per_token": st.cycles / seq,
            "energy_pj": st.energy_pj["total"], "cycles": st.cycles,
            "energy_breakdown_pj": st.energy_pj, "dram_bytes": st.dram_bytes,
            "kv_cache_bytes": None, "prefill_cycles": None}


# --- one point --------------------------------------------------------------------------------

def run_point(s: Setting, name: str, config: Any, policy: str, weight_format: str,
              activation_format: str, budget: float | None = None) -> dict:
    """Quantize with ``config``, score on the golden reference, compile for the array sized to
    it, price it and check the simulator against the reference on BIT_EXACT_SAMPLES samples."""
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.flow import arch_for
    from qasic.quant.quantize import quantize_graph
    from qasic.sim import simulate

    graph = quantize_graph(s.graph, s.trained.calibration, config)
    codes, golden = golden_outputs(graph, s.x)
    arch = arch_for(graph, default_arch())
    program = compile_graph(graph, arch)
    k = min(BIT_EXACT_SAMPLES, len(codes))
    sim = simulate(program, arch, codes=codes[:k])
    rec = {"model": s.trained.name, "task": s.task, "point": name,
           "weight_format": weight_format, "activation_format": activation_format,
           "policy": policy, "budget": budget, "avg_weight_bits": _avg_bits(graph),
           "weight_bits": {n.name: n.weight_bits for n in graph.weighted_nodes()},
           "norm_input_bits": config.norm_bits, "samples": len(s.x),
           **accuracy(s, graph.dequantize_output(golden)),
           **costs(s, graph, program, arch), "arch": arch.name,
           "bit_exact": bool(np.array_equal(sim.outputs.reshape(golden[:k].shape), golden[:k])),
           "bit_exact_samples": k}
    return {key: rec[key] for key in RECORD_KEYS}


def config_for(s: Setting, weights: Mapping[str, Any], activations: Mapping[str, Any]) -> Any:
    from qasic.quant import QuantConfig

    return QuantConfig(**{**s.base, **activations, **weights})


def searched_formats(s: Setting) -> dict[str, str]:
    """LLM-FP4's per-layer split and exponent-bias search at 4 bits (MSE scales)."""
    from qasic.quant.fpsearch import search_model_formats

    return search_model_formats(s.graph, 4, clip="mse")


def format_points(s: Setting, log: Log, weights=WEIGHTS, activations=ACTIVATIONS) -> list[dict]:
    records, searched = [], None
    for a_label, a_kw, a_fmt in activations:
        for w_label, w_kw, w_fmt in weights:
            if w_fmt == "llm-fp4":
                searched = searched or searched_formats(s)
                w_kw = {**w_kw, "weight_format": searched}
            policy = "uniform" if w_fmt in UNIFORM else "format"
            records.append(_logged(log, run_point(s, f"{w_label}/{a_label}",
                                                  config_for(s, w_kw, a_kw), policy, w_fmt, a_fmt)))
    return records


def policy_points(s: Setting, log: Log, policies=POLICIES, budgets=BUDGETS,
                  activations=ACTIVATIONS) -> list[dict]:
    records, fixed = [], {}
    for a_label, a_kw, a_fmt in activations:
        for policy in policies:
            if policy in ACTIVATION_AWARE or policy not in fixed:
                t0 = time.time()
                plans = plan(s, policy, budgets, config_for(s, {}, a_kw))
                log(f"{s.trained.name} {policy} ({a_fmt}) planned in {time.time() - t0:.0f} s")
                if policy not in ACTIVATION_AWARE:
                    fixed[policy] = plans
            for budget, bits in (plans if policy in ACTIVATION_AWARE else fixed[policy]):
                config = config_for(s, {"weight_bits": bits}, a_kw)
                records.append(_logged(log, run_point(s, f"{policy}@{budget:g}b/{a_label}",
                                                      config, policy, "int", a_fmt, budget)))
    return records


def plan(s: Setting, policy: str, budgets: Sequence[float],
         config: Any) -> list[tuple[float, dict[str, int]]]:
    """(budget, {layer: bits}) of ``policy`` at each average-bits budget, scored on the first
    SCORING_SAMPLES validation sequences (minilm, which has none: calibration sequences with
    the fp32 outputs as labels) with ``config``'s activation settings."""
    from qasic.policies import plan_budgets

    x, labels = s.trained.scoring_data()
    scoring = (x[:SCORING_SAMPLES], None if labels is None else labels[:SCORING_SAMPLES])
    plans = plan_budgets(s.graph, s.trained.calibration, policy,
                         [f"avg_bits={b:g}" for b in budgets], candidate_bits=CANDIDATES,
                         scoring=scoring, config=config)
    return [(b, p.bits) for b, p in zip(budgets, plans, strict=True)]


def _logged(log: Log, rec: dict) -> dict:
    if rec["task"] == "language_model":
        acc = f"perplexity {rec['perplexity']:.3f} ({100 * rec['perplexity_change']:+.2f}%)"
    else:
        acc = (f"cosine {rec['embedding_cosine']:.4f}, neighbours "
               f"{100 * rec['retrieval_agreement']:.1f}%")
    log(f"{rec['model']} {rec['point']}: {acc}, {rec['energy_pj_per_token'] / 1e3:.1f} nJ/token, "
        f"{rec['cycles_per_token']:.0f} cycles/token, bit-exact {rec['bit_exact']}")
    return rec


# --- activation ranges ------------------------------------------------------------------------

def activation_ranges(graph: Any, calibration: np.ndarray) -> list[dict]:
    """Each activation tensor (outputs of RANGE_OPS) on the calibration set, in float: min, max,
    PERCENTILES of the values, max |x| / p99.9 |x| (``ratio``: a few tokens' outliers) and the
    channels (last axis) whose max |x| is at least OUTLIER_CHANNEL times the median channel's
    (``outlier_channels``: LLM.int8()'s systematic outlier features, which take more than 0.1 %
    of the values and so hide from the ratio); ``outliers`` when either shows."""
    from qasic.quant.calibrate import prepare
    from qasic.quant.fgraph import run_float

    graph = prepare(graph)
    values = run_float(graph, graph.to_internal(calibration), keep=True)
    return [tensor_range(n.name, n.op, values[n.output]) for n in graph.nodes
            if n.op in RANGE_OPS and np.issubdtype(values[n.output].dtype, np.floating)
            and np.ndim(n.params.get("table", 0)) != 1]  # not a key mask (0/1 codes)


def tensor_range(name: str, op: str, v: np.ndarray) -> dict:
    a = np.abs(v)
    p999 = float(np.percentile(a, 99.9))
    channel = a.reshape(-1, v.shape[-1]).max(axis=0)
    ratio = float(a.max() / p999) if p999 > 0 else None
    heavy = np.flatnonzero(channel >= OUTLIER_CHANNEL * np.median(channel))
    outliers = bool(len(heavy)) or (ratio is not None and ratio >= OUTLIER_RATIO)
    return {"tensor": name, "op": op, "min": float(v.min()), "max": float(v.max()),
            "percentiles": dict(zip(map(str, PERCENTILES),
                                    map(float, np.percentile(v, PERCENTILES)))),
            "abs_p99_9": p999, "ratio": ratio,
            "outliers": outliers,
            "outlier_channels": heavy.tolist(), "channels": int(v.shape[-1])}


# --- the study --------------------------------------------------------------------------------

def study(model: str | Any, samples: int | None = None, log: Log = print, *,
          weights=WEIGHTS, activations=ACTIVATIONS, policies=POLICIES,
          budgets=BUDGETS) -> dict:
    """Every point of ``model`` (a built-in name or a TextModel): {"fp32", "activation_ranges",
    "records"}."""
    from qasic.models import get_model

    trained = get_model(model) if isinstance(model, str) else model
    s = setting(trained, samples)
    ranges = activation_ranges(s.graph, trained.calibration)
    variants = VARIANTS.get(trained.name, ()) if any(w[0] == "W8" for w in weights) else ()
    records = format_points(s, log, (*weights, *variants), activations)
    if policies:
        records += policy_points(s, log, policies, budgets, activations)
    fp32 = {k: v for k, v in s.fp32.items() if k != "embeddings"}
    return {"task": s.task, "samples": len(s.x), "base_config": s.base, "fp32": fp32,
            "activation_ranges": ranges, "records": records}


def range_table(model: str, ranges: Sequence[Mapping[str, Any]]) -> str:
    lines = [(f"{model}: activation ranges on the calibration set (* outliers: max|x| / "
              f"p99.9|x| >= {OUTLIER_RATIO:g} or outlier channels)"),
             (f"  {'tensor':52s} {'op':9s} {'min':>8s} {'max':>8s} {'p99.9|x|':>8s} "
             f"{'ratio':>6s} outlier channels")]
    for r in ranges:
        ch = r["outlier_channels"]
        lines.append(f"  {r['tensor'][-52:]:52s} {r['op']:9s} {r['min']:8.2f} {r['max']:8.2f} "
                     f"{r['abs_p99_9']:8.2f} {r['ratio'] or 0:6.1f}{'*' if r['outliers'] else ' '}"
                     f" {len(ch)}/{r['channels']}" + (f" {ch[:4]}" if ch else ""))
    return "\n".join(lines)


def point_table(records: Sequence[Mapping[str, Any]]) -> str:
    lines = [(f"{'model':9s} {'point':22s} {'avg bits':>8s} {'ppl':>7s} {'d ppl':>7s} "
             f"{'cosine':>7s} {'NN':>6s} {'nJ/tok':>8s} {'cyc/tok':>8s} exact")]
    for r in records:
        ppl = f"{r['perplexity']:7.3f} {100 * r['perplexity_change']:+6.2f}%" \
            if r["perplexity"] is not None else f"{'-':>7s} {'-':>7s}"
        cos = f"{r['embedding_cosine']:7.4f} {100 * r['retrieval_agreement']:5.1f}%" \
            if r["embedding_cosine"] is not None else f"{'-':>7s} {'-':>6s}"
        lines.append(f"{r['model']:9s} {r['point']:22s} {r['avg_weight_bits']:8.2f} {ppl} {cos} "
                     f"{r['energy_pj_per_token'] / 1e3:8.1f} {r['cycles_per_token']:8.0f} "
                     f"{r['bit_exact']}")
    return "\n".join(lines)


def markdown_table(records: Sequence[Mapping[str, Any]]) -> str:
    """The points as a Markdown table (docs/llm_study.md): accuracy against fp32, energy and
    cycles per token, bit-exactness."""
    lines = [("| model | point | avg weight bits | perplexity (change) | embedding cosine | "
              "nearest neighbour | µJ/token | cycles/token | bit-exact |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ppl = f"{r['perplexity']:.3f} ({100 * r['perplexity_change']:+.2f}%)" \
            if r["perplexity"] is not None else "—"
        cos = f"{r['embedding_cosine']:.4f}" if r["embedding_cosine"] is not None else "—"
        nn = f"{100 * r['retrieval_agreement']:.1f}%" \
            if r["retrieval_agreement"] is not None else "—"
        lines.append(f"| {r['model']} | {r['point']} | {r['avg_weight_bits']:.2f} | {ppl} | "
                     f"{cos} | {nn} | {r['energy_pj_per_token'] / 1e6:.1f} | "
                     f"{r['cycles_per_token']:,.0f} | {'yes' if r['bit_exact'] else 'NO'} |")
    return "\n".join(lines)


def read_json(path: Path) -> dict[str, dict]:
    """The models of an existing llm_study.json at ``path`` (each with its records), or {}."""
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    if doc.get("schema") != SCHEMA:
        raise SystemExit(f"{path} has schema {doc.get('schema')!r}, not {SCHEMA!r}; move it "
                         "away or give another --out")
    return {name: {**m, "records": [r for r in doc["records"] if r["model"] == name]}
            for name, m in doc["models"].items()}


def merge(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict:
    """``new`` (a model's study) with the records of ``old`` whose points it did not run, when
    both scored the same samples; else ``new`` alone."""
    if not old or old.get("samples") != new["samples"]:
        return dict(new)
    points = {r["point"] for r in new["records"]}
    kept = [r for r in old["records"] if r["point"] not in points]
    return {**new, "records": kept + list(new["records"])}


def pick(items: Sequence[tuple], labels: str, what: str) -> tuple:
    """The entries of ``items`` (label first) named in the comma-separated ``labels``."""
    names = [x for x in labels.split(",") if x]
    known = [item[0] for item in items]
    bad = [x for x in names if x not in known]
    if bad:
        raise SystemExit(f"--{what} {','.join(bad)}: unknown; choose from {','.join(known)}")
    return tuple(item for item in items if item[0] in names)


def write_json(models: Mapping[str, Mapping[str, Any]], path: Path) -> list[dict]:
    """llm_study.json: {"schema", "models": {name: everything but the records}, "records"}."""
    records = [r for m in models.values() for r in m["records"]]
    doc = {"schema": SCHEMA, "models": {k: {kk: vv for kk, vv in v.items() if kk != "records"}
                                        for k, v in models.items()}, "records": records}
    path.write_text(json.dumps(doc, indent=2))
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/llm_study")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--samples", type=int, default=None,
                   help="test samples scored per point (default: all 256)")
    p.add_argument("--policies", default=",".join(POLICIES),
                   help="mixed-precision policies, comma-separated ('' for none)")
    p.add_argument("--weights", default=",".join(w[0] for w in WEIGHTS),
                   help="weight points, comma-separated")
    p.add_argument("--activations", default=",".join(a[0] for a in ACTIVATIONS),
                   help="activation formats, comma-separated: A8 (INT8), FP8 (E4M3)")
    p.add_argument("--markdown", action="store_true",
                   help="print the records of --out's llm_study.json as a Markdown table, "
                        "run nothing")
    p.add_argument("--budgets", default=",".join(f"{b:g}" for b in BUDGETS),
                   help="average weight-bit budgets of the policies, comma-separated")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0, models = time.time(), read_json(out / "llm_study.json")
    if args.markdown:
        print(markdown_table([r for m in models.values() for r in m["records"]]))
        return 0
    log = lambda m: print(m, file=sys.stderr, flush=True)
    policies = tuple(x for x in args.policies.split(",") if x)
    weights = pick(WEIGHTS, args.weights, "weights")
    activations = pick(ACTIVATIONS, args.activations, "activations")
    budgets = tuple(float(b) for b in args.budgets.split(",") if b)
    for name in args.models.split(","):
        new = study(name, args.samples, log, weights=weights, activations=activations,
                    policies=policies, budgets=budgets)
        models[name] = merge(models.get(name), new)
        print(range_table(name, models[name]["activation_ranges"]), flush=True)
        records = write_json(models, out / "llm_study.json")  # after each model
    from qasic.reports.llm_study import llm_study_figure
    from qasic.reports.plots import save_png

    save_png(llm_study_figure(records), out / "llm_study.png")
    print(point_table(records))
    print(f"{len(records)} records in {time.time() - t0:.0f} s: {out / 'llm_study.json'}")
    return 0 if all(r["bit_exact"] for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
