"""The JSON contract: what each document qasic emits holds, and what every key means.

Every JSON document (a command's ``--json`` output, ``sweep.json``) is one object whose ``schema``
names its kind and version, e.g. ``"qasic.simulate/1"``. The version rises when a key is removed
or changes meaning; a new key may appear without it. A key means the same in every document:
GLOSSARY defines it once, by its name inside its enclosing lists (``layers[].cycles`` is
``cycles``), so ``energy_pj`` is always the breakdown dict. A value that was not measured is
``null``, never left out: each document always carries all of its keys.

docs/json.md is generated from this module (``python -m qasic.schema --write``); tests run each
command and hold its output to DOCUMENTS, and the doc to this module.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any, NamedTuple

from qasic.isa.table import ACT_FORMATS

VERSION = 1
# Kinds whose version has risen past VERSION: sweep/2 (several models: `models` and a `model` per
# point replace the top-level `model`; points are named `W4/A8`).
VERSIONS = {"sweep": 2}


class Key(NamedTuple):
    type: str     # JSON type
    meaning: str  # units are in the names (pj, us, _s, bytes) and stated here


MAP = "object: layer name → "  # a GLOSSARY type prefix: keys are data (layer names), not schema
SETTINGS = "object: setting → "  # keys are QuantConfig's field names (qasic/quant/config.py)
MAPS = (MAP, SETTINGS)

GLOSSARY: dict[str, Key] = {
    "schema": Key("string", "the document's kind and version, `qasic.<kind>/<version>`"),
    "model": Key("string", "the model: a built-in name, or a user model's file stem"),
    "arch": Key("string", "the architecture's name (`name` in its TOML; a sweep or "
                "`--fit-arch` derives one per array)"),
    "program": Key("string", "the program file's path"),
    "program_bytes": Key("int", "the program file's size in bytes"),
    "instructions": Key("int", "instructions in the program"),
    "constant_bytes": Key("int", "bytes of constants in the program (weights, per-channel "
                          "parameters, tables)"),
    "compile_s": Key("number", "wall-clock seconds the compiler took"),
    "simulate_s": Key("number", "wall-clock seconds the simulator took"),
    "samples": Key("int", "inputs simulated (or evaluated)"),
    "policy": Key("string | null", "the mixed-precision policy that chose the weight bits "
                  "(`--policy`); null for fixed `--bits`"),
    "budget": Key("string | null", "the policy's budget as given, e.g. `avg_bits=3`; null "
                  "without a policy"),
    "weight_bits": Key(f"{MAP}int; int | null in a layer", "weight bit-width per weighted "
                       "layer; in a layer's object, that layer's (null: it has no weights)"),
    "weight_format": Key(f"{MAP}string; string | null in a layer", "number format of the "
                         "weights (`int4`, `fp8_e4m3`, `nf4_pc`, ...; see docs/formats.md)"),
    "avg_weight_bits": Key("number", "weight bits averaged over all weights "
                           "(parameter-weighted)"),
    "activation_bits": Key("int", "activation bit-width (`--act-bits`)"),
    "activation_format": Key("string", "activation format: `int` (of activation_bits) or "
                             + " or ".join(f"`{f}`" for f in ACT_FORMATS[1:])),
    "quant_config": Key(f"{SETTINGS}value", "every quantization setting the run used, by its "
                        "`QuantConfig` name (qasic/quant/config.py; docs/ptq.md): observers, "
                        "the wider tensors (`norm_input_bits`, `embedding_bits`, "
                        "`softmax_bits`, `output_bits`, `recurrence_bits`, ...), rounding, "
                        "equalization, bias correction; the weights' bits and formats are "
                        "`weight_bits` and `weight_format`"),
    "fp32_accuracy": Key("number | null", "top-1 accuracy of the float model on the labelled "
                         "test inputs, a fraction in [0, 1]; null without labels"),
    "accuracy": Key("number | null", "top-1 accuracy of the quantized model (golden reference "
                    "or simulator, which are bit-exact) on the same inputs, a fraction in "
                    "[0, 1]; null without labels or for a model that is no classifier"),
    "bit_exact": Key("bool", "the simulator's outputs equal the golden reference's on every "
                     "input"),
    "cosine": Key("number", "mean over inputs of the cosine similarity of the dequantized "
                  "outputs and the float model's"),
    "top1_agreement": Key("number | null", "fraction of inputs whose top-1 class is the float "
                          "model's; null for a model that is no classifier"),
    "cycles": Key("int", "cycles per inference: of the whole model, or of the layer or design "
                  "point the enclosing object describes (so are the other per-inference costs)"),
    "latency_us": Key("number", "microseconds per inference: cycles / clock.mhz"),
    "macs": Key("int", "multiply-accumulates per inference"),
    "dram_bytes": Key("int", "bytes moved between DRAM and the scratchpads per inference"),
    "compulsory_dram_bytes": Key("int | null", "bytes that must cross DRAM at least once per "
                                 "inference (inputs, weights, parameters, outputs): the lower "
                                 "bound of dram_bytes; null where the compiler records none"),
    "energy_pj": Key("object", "energy per inference in picojoules by category: the six keys "
                     "below (docs/energy.md gives the model and its sources)"),
    "energy_pj.mac": Key("number", "pJ in the array's multiply-accumulates"),
    "energy_pj.sram": Key("number", "pJ in scratchpad reads and writes"),
    "energy_pj.dram": Key("number", "pJ in DRAM transfers"),
    "energy_pj.other": Key("number", "pJ in the post-processing and vector units"),
    "energy_pj.leakage": Key("number", "pJ leaked by the whole accelerator while it runs: "
                             "leakage power of its area (docs/area.md) x cycles / clock"),
    "energy_pj.total": Key("number", "the sum of the five categories"),
    "layers": Key("list of objects", "one object per kernel (fused layer), in program order"),
    "name": Key("string", "the layer's name (the first graph node it fuses)"),
    "kind": Key("string", "the kernel kind: gemm, pool, ew, lut, copy, bilinear, concat or "
                "alias (docs/ops.md)"),
    "ops": Key("list of strings", "the graph ops fused into the kernel"),
    "kernels": Key("int", "program kernels the entry covers"),
    "m": Key("int | null", "GEMM rows (output pixels or vectors); null for a kernel without "
             "GEMM"),
    "k": Key("int | null", "GEMM reduction length"),
    "n": Key("int | null", "GEMM columns (output channels)"),
    "utilization": Key("number | null", "macs / (cycles × array rows × cols): the array's busy "
                       "fraction; null without MACs"),
    "points": Key("list of objects", "one object per design point"),
    "point": Key("string", "the design point's quantization, `weights/activations`: `W4/A8` is "
                 "uniform INT4 weights with INT8 activations, `mxfp4/fp8_e4m3` a weight and an "
                 "activation format, `hawq@avg_bits=3/A8` a policy's bits within a budget"),
    "models": Key("list of strings", "the models the sweep covers, in its order"),
    "config_hash": Key("string", "SHA-256 of the canonical JSON of the point's whole config "
                       "(model, seed, inputs, every arch field, quantization, energy table): "
                       "its key in the sweep store"),
    "seed": Key("int", "the training seed of the model"),
    "weights": Key("string", "the weight choice of a sweep point: `W4`, a format name, or "
                   "`policy@budget`"),
    "pe_input_bits": Key("int", "PE activation width of the array the point was built for"),
    "sram_bytes": Key("int", "bytes of all scratchpads of the point's arch together"),
    "dram_bytes_per_cycle": Key("int", "the arch's DRAM bandwidth in bytes per cycle"),
    "clock_mhz": Key("number", "the arch's clock in MHz"),
    "area_mm2": Key("number", "silicon area of the point's whole accelerator (rtl.top) in mm² "
                    "at 45 nm: PE array, every unit's logic, scratchpads, program memories "
                    "(qasic.rtl.area, docs/area.md)"),
    "on_front": Key("bool", "the point is on the Pareto front of `pareto.objectives`"),
    "pareto": Key("object", "the Pareto front's objectives (`--pareto`)"),
    "pareto.objectives": Key("list of strings", "two or three of accuracy (maximized), "
                             "energy_pj (its total), latency_us, area_mm2 (minimized)"),
    "pareto.unmeasured": Key("int", "measured points left off the front because an objective "
                             "is null for them (accuracy of a model without labels)"),
    "infeasible": Key("list of objects", "design points no arch or program can be built for, "
                      "each with the reason"),
    "error": Key("string", "why the point is infeasible: the one-line error"),
    "array_rows": Key("int", "rows of the point's systolic array"),
    "array_cols": Key("int", "columns of the point's systolic array"),
    "pe_weight_bits": Key("int", "PE weight width of the array the point was built for"),
    "predicted_cost": Key("number", "the policy's predicted cost, in the unit of the budget's "
                          "key"),
    "predicted_sensitivity": Key("number | null", "the policy's predicted accuracy loss "
                                 "(lower is better)"),
}

GLOSSARY.update({
    "prompt": Key("string | null", "the text generation starts from (decoded from "
                  "`prompt_ids` when the prompt was given as ids; null without a tokenizer)"),
    "tokenizer": Key("string | null", "how text became ids: `bytes` (UTF-8, ids 0..255) or the "
                     "directory of a transformers tokenizer; null: the prompt was ids and the "
                     "model has no tokenizer"),
    "prompt_ids": Key("list of ints", "the prompt's token ids (the prefill's input)"),
    "prompt_tokens": Key("int", "tokens the prompt encodes to (the prefill's length)"),
    "source_tokens": Key("int", "an encoder-decoder's source length (its prompt: the ids the "
                         "encoder reads); 0 for a causal language model"),
    "source_shape": Key("list of ints | null", "an encoder-decoder's float source's shape "
                        "(Whisper's log-mel features: mel bins, frames), the encoder's input "
                        "besides the target ids; null for a source of ids"),
    "source_positions": Key("int | null", "an encoder-decoder's S, the source length it was "
                            "captured with (a shorter source is right-padded to it); null for a "
                            "causal language model"),
    "source_pad_id": Key("int | null", "the id a source shorter than `source_positions` was "
                         "right-padded with (the model's padding mask hides it from every "
                         "attention over the source); null: no padding"),
    "decoder_ids": Key("list of ints | null", "an encoder-decoder's first target ids (the "
                       "decoder start token, then any given prefix: the prefill's decoder "
                       "input); null for a causal language model"),
    "tokens": Key("list of ints", "the generated token ids, in order"),
    "text": Key("string | null", "the generated text (decoded tokens; null without a "
                "tokenizer)"),
    "fp32_text": Key("string | null", "what the float model generates greedily from the same "
                     "prompt (null without a tokenizer)"),
    "fp32_agreement": Key("number", "share of generated tokens equal to the float model's at "
                          "the same step"),
    "matches_reference": Key("bool", "every generated token and every step's logit codes equal "
                             "the golden reference's (the full model, run on the sequence so "
                             "far)"),
    "prefill_cycles": Key("int", "cycles of the prefill: the prompt's tokens at once, writing "
                          "the KV caches"),
    "encoder_cycles": Key("int | null", "an encoder-decoder's part of `prefill_cycles`: the "
                          "kernels that compute from the source alone (the encoder, writing its "
                          "cross-attention keys and values), run once per generation; null for a "
                          "causal language model"),
    "decode_cycles_per_token": Key("int", "cycles of one decode step (one new token)"),
    "decode_dram_bytes_per_token": Key("int", "DRAM bytes one decode step moves (weights, the "
                                       "whole KV cache, activations)"),
    "kv_cache_bytes": Key("int", "DRAM bytes of the KV caches (every layer's keys and values "
                          "at all positions; an encoder-decoder's cross-attention keys and "
                          "values over the source too) and of the other states generation "
                          "carries (a token convolution's inputs with their padding, a "
                          "selective scan's state h)"),
    "cross_cache_bytes": Key("int | null", "an encoder-decoder's part of `kv_cache_bytes`: the "
                             "cross-attention keys and values over the source (and its padding "
                             "mask) that the prefill writes once and every decode step reads; "
                             "null for a causal language model"),
    "tokens_per_s": Key("number", "decode steps per second at the arch clock"),
    "decode": Key("string", "how each token after the first is computed: `kv_cache` (a "
                  "decode-step program over the KV caches and states in DRAM) or `recompute` "
                  "(the whole model reruns on the sequence so far, right-padded: no cache, "
                  "`kv_cache_bytes` 0, a step's costs those of the full program)"),
    "decode_refusal": Key("string | null", "why decoding recomputes: the one line the "
                          "decode-step planner refused the model with (`--decode auto`); null "
                          "with a KV cache or under `--decode recompute`"),
    "decode_layers": Key("list of objects", "the decode step's kernels, as `layers`"),
})
GLOSSARY.update({
    "perplexity": Key("object", "language models: exp of the mean next-token "
                      "cross-entropy over every position of the inputs, `fp32` and `quantized` "
                      "(dequantized simulator logits); both null for other models"),
    "perplexity.fp32": Key("number | null", "the float model's"),
    "perplexity.quantized": Key("number | null", "the quantized model's, from the simulator"),
    "next_token_accuracy": Key("object", "language models: share of positions whose "
                               "argmax is the next token, `fp32` and `quantized`"),
    "next_token_accuracy.fp32": Key("number | null", "the float model's"),
    "next_token_accuracy.quantized": Key("number | null", "the quantized model's, from the "
                                         "simulator"),
    "embedding_cosine": Key("number | null", "sentence encoders: mean cosine of each "
                            "sentence's embedding (mean pooling over its non-pad tokens, then "
                            "L2-normalised) to the fp32 model's; null for other models"),
    "retrieval_agreement": Key("number | null", "sentence encoders: share of sentences whose "
                               "nearest neighbour among the others (cosine) is the same as "
                               "under the fp32 embeddings"),
    "warnings": Key("list of strings", "one line per check the result fails, the lines "
                    "`qasic evaluate` prints on stderr (a bit-exact output whose cosine to "
                    "fp32 is below 0.5: the encodings lose the signal; the first tensor whose "
                    "SQNR is below 10 dB while the tensors it is made from are at 20 dB or "
                    "more, and why); empty when none"),
})
GLOSSARY.update({
    "tensor_errors": Key("list of objects | null", "`qasic evaluate --errors` (and any "
                         "evaluation whose output collapses): each tensor of the quantized "
                         "graph that the float graph also computes, in graph order, compared "
                         "on the first 8 inputs (qasic/quant/tensor_errors.py); null when not "
                         "run"),
    "tensor": Key("string", "the tensor's name in the quantized graph (the float graph's "
                  "node that makes it)"),
    "op": Key("string", "the op that makes the tensor (`input`: a graph input)"),
    "sources": Key("list of strings", "the compared tensors it is made from: its op's "
                   "inputs (through a fused layer's pre-activation, which is not compared)"),
    "shared_with": Key("string | null", "the concat whose encoding the tensor takes (a "
                       "concat's inputs share one); null when none"),
    "sqnr_db": Key("number | null", "10 log10 of the float values' power over the error's "
                   "(dequantized golden-reference codes minus float values), dB; null: exact, "
                   "or an error on values fp32 computes as all 0"),
    "float_min": Key("number", "the least value fp32 computes for the tensor"),
    "float_max": Key("number", "the largest value fp32 computes for the tensor"),
    "encoding_min": Key("number", "the least real value the tensor's encoding represents"),
    "encoding_max": Key("number", "the largest real value the tensor's encoding represents"),
    "step": Key("number", "the real value of one step of the encoding (its scale; FP8: of "
                "one level)"),
    "clipped": Key("number", "share of fp32's values beyond the encoding's range by more "
                   "than half a step, in [0, 1]"),
})
GLOSSARY.update({
    "outputs_equal": Key("bool", "`qasic rtl-run`: the RTL's output codes equal the "
                         "simulator's on every sample (and the golden reference's when it was "
                         "given)"),
    "simulator_equal": Key("bool", "the RTL's output codes equal the simulator's (the "
                           "per-instruction machine) on every sample"),
    "reference_equal": Key("bool | null", "the output codes (the RTL's in `rtl-run`, the "
                           "simulator's in `simulate`) equal the golden reference's on every "
                           "sample; the reference runs the quantized graph the program file "
                           "carries (`qasic compile` embeds it); null when the file carries "
                           "none or `--no-reference` is given"),
    "cycles_rtl": Key("int", "cycles of one inference on the RTL, from the first cycle an "
                      "instruction can issue to the drain (the most over the samples)"),
    "cycles_sim": Key("int", "the timing model's cycles for the same program"),
    "cycle_error": Key("number", "|cycles_rtl - cycles_sim| / cycles_sim"),
    "cycles_equal_every_sample": Key("bool", "every sample took the same RTL cycles (timing "
                                     "never depends on data)"),
    "queue_busy_cycles": Key("object", "per queue (`load`, `compute`, `store`): cycles it was "
                             "occupied, `rtl` and `sim`"),
    "rtl_s": Key("number", "wall-clock seconds of the RTL simulation (the build excluded)"),
    "rtl_cycles_per_s": Key("number", "Verilator's speed: simulated cycles per wall-clock "
                            "second, over all samples"),
})
for _q in ("load", "compute", "store"):
    GLOSSARY[f"queue_busy_cycles.{_q}"] = Key("object", f"the {_q} queue's busy cycles")
    GLOSSARY[f"queue_busy_cycles.{_q}.rtl"] = Key("int", "counted on the RTL")
    GLOSSARY[f"queue_busy_cycles.{_q}.sim"] = Key("int", "from the timing model")
for _prefix, _what in (("energy_pj_per_token", "one decode step (one token)"),
                       ("prefill_energy_pj", "the prefill")):
    GLOSSARY[_prefix] = Key("object", f"energy of {_what} in picojoules by category, as "
                            "`energy_pj`")
    for _part in ("mac", "sram", "dram", "other", "leakage", "total"):
        GLOSSARY[f"{_prefix}.{_part}"] = GLOSSARY[f"energy_pj.{_part}"]

_LAYER = ("name", "kind", "ops", "weight_bits")
_COSTS = ("cycles", "latency_us", "macs", "dram_bytes", "energy_pj.mac", "energy_pj.sram",
          "energy_pj.dram", "energy_pj.other", "energy_pj.leakage", "energy_pj.total")
_WEIGHTS = ("policy", "budget", "weight_bits", "avg_weight_bits", "weight_format",
            "activation_bits", "activation_format", "quant_config")


def _each(prefix: str, keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"{prefix}[].{k}" for k in keys)


# document kind -> (what emits it, every key path it holds: "a.b" nests, "a[].b" is in a list)
DOCUMENTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "quantize": ("qasic quantize --json", (
        "schema", "model", "fp32_accuracy", "accuracy", *_WEIGHTS)),
    "quantize.pareto": ("qasic quantize --pareto --json", (
        "schema", "model", "policy", "budget", "activation_bits", "activation_format",
        *_each("points", ("weight_bits", "avg_weight_bits", "predicted_cost",
                          "predicted_sensitivity", "accuracy")))),
    "compile": ("qasic compile --json", (
        "schema", "model", "arch", "program", "program_bytes", "instructions", "constant_bytes",
        "compile_s", "macs", "compulsory_dram_bytes", *_WEIGHTS,
        *_each("layers", (*_LAYER, "weight_format", "m", "k", "n", "macs",
                          "compulsory_dram_bytes")))),
    "simulate": ("qasic simulate --json", (
        "schema", "program", "model", "arch", "samples", "accuracy", "reference_equal",
        *_COSTS, *_each("layers", (*_LAYER, "kernels", *_COSTS[:1], *_COSTS[2:])))),
    "evaluate": ("qasic evaluate --json", (
        "schema", "model", "arch", "samples", "bit_exact", "cosine", "top1_agreement",
        "accuracy", "fp32_accuracy", *_WEIGHTS, *_COSTS, "compulsory_dram_bytes", "instructions",
        "compile_s", "simulate_s", "perplexity.fp32", "perplexity.quantized",
        "next_token_accuracy.fp32", "next_token_accuracy.quantized", "embedding_cosine",
        "retrieval_agreement", "warnings",
        *_each("layers", (*_LAYER, "m", "k", "n", "utilization", "compulsory_dram_bytes",
                          *_COSTS[:1], *_COSTS[2:])),
        *_each("tensor_errors", ("tensor", "op", "sources", "shared_with", "sqnr_db",
                                 "float_min", "float_max", "encoding_min", "encoding_max",
                                 "step", "clipped")))),
    "generate": ("qasic generate --json", (
        "schema", "model", "arch", "prompt", "tokenizer", "prompt_ids", "prompt_tokens",
        "source_tokens", "source_shape", "source_positions", "source_pad_id", "decoder_ids",
        "tokens", "text",
        "fp32_text", "matches_reference", "fp32_agreement", "prefill_cycles",
        "encoder_cycles", "decode_cycles_per_token", "decode_dram_bytes_per_token",
        "kv_cache_bytes", "cross_cache_bytes", "tokens_per_s", "decode", "decode_refusal",
        *(f"{e}.{p}" for e in ("prefill_energy_pj", "energy_pj_per_token")
          for p in ("mac", "sram", "dram", "other", "leakage", "total")),
        *_each("decode_layers", (*_LAYER, "cycles", "macs", "dram_bytes", *_COSTS[4:])),
        "compile_s", "simulate_s")),
    "rtl_run": ("qasic rtl-run --json", (
        "schema", "program", "model", "arch", "samples", "outputs_equal", "simulator_equal",
        "reference_equal", "cycles_rtl", "cycles_sim", "cycle_error",
        "cycles_equal_every_sample",
        *(f"queue_busy_cycles.{q}.{s}" for q in ("load", "compute", "store")
          for s in ("rtl", "sim")),
        "rtl_s", "rtl_cycles_per_s")),
    "sweep": ("qasic sweep --json, and sweep.json", (
        "schema", "models", "pareto.objectives", "pareto.unmeasured",
        *_each("points", ("config_hash", "model", "seed", "samples", "arch", "point",
                          "array_rows", "array_cols", "pe_input_bits", "pe_weight_bits",
                          "sram_bytes", "dram_bytes_per_cycle", "clock_mhz", *_WEIGHTS[:4],
                          "weights", "activation_format", "activation_bits", "accuracy",
                          "bit_exact", *_COSTS, "area_mm2", "on_front")),
        *_each("infeasible", ("config_hash", "model", "arch", "point", "error")))),
}


def schema_id(kind: str) -> str:
    """The ``schema`` value of a document kind: 'simulate' -> 'qasic.simulate/1'."""
    if kind not in DOCUMENTS:
        raise KeyError(f"no JSON document kind {kind!r}; add it to qasic.schema.DOCUMENTS")
    return f"qasic.{kind}/{VERSIONS.get(kind, VERSION)}"


def document(kind: str, record: dict[str, Any]) -> dict[str, Any]:
    """``record`` as a document of ``kind``: ``schema`` first, NaN and infinities as null."""
    return {"schema": schema_id(kind), **_finite(record)}


def _finite(value: Any) -> Any:
    """NaN and inf are no JSON; an unmeasured value is null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def glossary_key(path: str) -> str:
    """The GLOSSARY entry of a key path: its name inside its innermost list."""
    return path.rpartition("[].")[2]


def key_paths(doc: Any, prefix: str = "") -> set[str]:
    """Every key path of a JSON value: 'a.b' for nested objects, 'a[].b' inside lists of objects;
    an object GLOSSARY marks as a map (keys are layer or setting names) is one path."""
    paths: set[str] = set()
    if isinstance(doc, dict):
        for k, v in doc.items():
            path = f"{prefix}.{k}" if prefix else k
            paths.add(path)
            entry = GLOSSARY.get(glossary_key(path))
            if entry is None or not entry.type.startswith(MAPS):
                paths |= key_paths(v, path)
    elif isinstance(doc, list):
        for v in doc:
            if isinstance(v, dict):
                paths |= key_paths(v, f"{prefix}[]")
    return paths


def documented_paths(kind: str) -> set[str]:
    """The key paths DOCUMENTS gives ``kind``, with the objects and lists that hold them (as
    key_paths names them)."""
    paths = set()
    for path in DOCUMENTS[kind][1]:
        paths.add(path)
        paths |= {path[:i].removesuffix("[]") for i, c in enumerate(path) if c == "."}
    return paths


MARKER = "## Keys"


def markdown() -> str:
    """The generated part of docs/json.md: the glossary and each document's keys."""
    lines = [MARKER, "", "Generated from `qasic/schema.py` (`python -m qasic.schema --write`).", "",
             "| key | type | meaning |", "|---|---|---|"]
    escaped = {k: (t.replace("|", "\\|"), m) for k, (t, m) in GLOSSARY.items()}  # in a cell
    lines += [f"| `{k}` | {t} | {m} |" for k, (t, m) in escaped.items()]
    for kind, (source, paths) in DOCUMENTS.items():
        lines += ["", f"### `{schema_id(kind)}`: {source}", "",
                  ", ".join(f"`{p}`" for p in paths)]
    return "\n".join(lines) + "\n"


DOC = Path(__file__).resolve().parent.parent / "docs" / "json.md"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the JSON contract of qasic's outputs")
    ap.add_argument("--write", action="store_true", help="regenerate docs/json.md's keys")
    if ap.parse_args(argv).write:
        head = DOC.read_text().split(MARKER)[0] if DOC.exists() else ""
        DOC.write_text(head + markdown())
        print(f"wrote {DOC}")
    else:
        print(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
