"""``evaluate``: one call from a model to a JSON verdict.

Quantize, compile, simulate the inputs, run the golden reference on the same input codes and the
fp32 model on the same floats, then report: bit-exactness (simulator == golden reference, raw
codes), agreement with fp32 (cosine, top-1, accuracy), cycles, latency, energy, DRAM traffic
against the compulsory bytes, and the same per layer. Shared by ``qasic evaluate`` and
``qasic.evaluate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from qasic.api import ArchLike, as_arch
from qasic.errors import ConfigError, InputError
from qasic.quant.graph import to_internal
from qasic.tensor_report import lost_tensor_warning

Progress = Callable[[str], None]
BATCH = 256  # at most this many samples per golden-reference / fp32 batch
BATCH_ELEMENTS = 1 << 22  # and at most this many input elements (bounds im2col memory)


def evaluate(model: Any, inputs: np.ndarray | None = None, *, labels: np.ndarray | None = None,
             calibration: np.ndarray | None = None, config: Any = None,
             arch: ArchLike = "default", limit: int | None = None, fit_arch: bool = False,
             data: str | Path | None = None, progress: Progress | None = None,
             output: int | str | None = None, errors: bool | None = None) -> dict:
    """Quantize ``model`` with ``config`` (a QuantConfig; default W8A8), compile it for ``arch``
    (built-in name, TOML path or ArchConfig; ``fit_arch`` sizes the PEs to the model), simulate
    ``inputs`` (float, model layout; the first ``limit``) and compare. Returns the record that
    ``qasic evaluate --json`` prints (keys in RECORD_KEYS, per layer LAYER_KEYS).

    ``model``: a built-in name, ``file.py:factory`` or ``.pt2`` (with ``data``, the .npz of
    ``qasic evaluate --data``, or ``calibration``), a TrainedModel, an nn.Module or an
    ExportedProgram (with ``calibration``). Without ``inputs``: the model's test split and labels.
    ``output``: a model returning a tuple or dict is evaluated on its output ``output`` (an
    index or a key: ``qasic evaluate --output N``, qasic.models.outputs). ``errors``: the
    per-tensor error analysis (``tensor_errors``): True always, None when the output collapses,
    False never (qasic.tensor_report).
    """
    from qasic.flow import quantize_model
    from qasic.models.outputs import select_output
    from qasic.quant import QuantConfig
    from qasic.tensor_report import wanted

    config = config if config is not None else QuantConfig()
    errors = wanted(errors, config.equalize)
    trained = select_output(resolve_model(model, calibration=calibration, data=data,
                                          progress=progress), output)
    if isinstance(inputs, dict):  # several inputs: {forward parameter: batch}
        inputs = trained.module.pack(inputs)
    _say(progress, f"quantizing {trained.name}")
    graph = quantize_model(trained, config)
    record = evaluate_quantized(trained, graph, inputs, labels=labels, arch=arch, limit=limit,
                                fit_arch=fit_arch, progress=progress, errors=errors)
    return {**record, **quantization(graph, config)}


def quantization(graph: Any, config: Any, policy: str | None = None,
                 budget: str | None = None) -> dict:
    """How ``graph`` was quantized, as a document reports it: the policy, each weighted layer's
    bits and format, the activations, and every other setting of ``config`` (a QuantConfig) by
    name (``quant_config``: what a result must carry to be reproduced)."""
    import dataclasses

    from qasic.policies import avg_weight_bits

    bits = {n.name: n.weight_bits for n in graph.weighted_nodes()}
    settings = {k: v for k, v in dataclasses.asdict(config).items()
                if k not in ("weight_bits", "weight_format")}
    return {"policy": policy, "budget": budget, "weight_bits": bits,
            "avg_weight_bits": avg_weight_bits(graph, bits),
            "weight_format": {n.name: n.weight_format for n in graph.weighted_nodes()},
            "activation_bits": config.activation_bits,
            "activation_format": config.activation_format, "quant_config": settings}


def evaluate_quantized(trained: Any, graph: Any, inputs: np.ndarray | None = None, *,
                       labels: np.ndarray | None = None, arch: ArchLike = "default",
                       limit: int | None = None, fit_arch: bool = False,
                       progress: Progress | None = None, errors: bool | None = None) -> dict:
    """``evaluate`` of an already quantized ``graph`` of ``trained`` (whose module is the fp32
    model compared against); ``errors`` as there (the caller checks it with
    qasic.tensor_report.wanted)."""
    from qasic.compiler import compile_graph
    from qasic.sim import input_codes, simulate

    x, y = select_inputs(trained, inputs, labels, limit, progress)
    graph.quantize_input(x)  # a wrong shape, NaN or an id outside the vocabulary fails here
    target = as_arch(arch)
    if fit_arch:
        from qasic.flow import arch_for

        target = arch_for(graph, target)
    _say(progress, f"compiling {trained.name} for {target.name}")
    t0 = time.perf_counter()
    program = compile_graph(graph, target, progress=progress)
    compile_s = time.perf_counter() - t0
    codes = input_codes(program, x)
    _say(progress, f"simulating {len(x)} inputs")
    t0 = time.perf_counter()
    sim = simulate(program, target, codes=codes, progress=progress)
    simulate_s = time.perf_counter() - t0
    _say(progress, "golden reference and fp32 model on the same inputs")
    exact = bool(np.array_equal(sim.outputs, golden_outputs(graph, codes)))
    quant = sim.logits()
    fp32 = in_layout_of(float_outputs(trained.module, x), quant, graph.output_layout)
    record = {"model": trained.name, "arch": target.name, "samples": len(x),
              "bit_exact": exact, **compare(quant, fp32, y), **costs(sim, program, target),
              "instructions": len(program.instrs), "compile_s": compile_s,
              "simulate_s": simulate_s}
    record.update(text_metrics(trained, x, y, quant, fp32))
    record["tensor_errors"] = None
    if errors or (errors is None and collapse_warning(record)):
        from qasic.tensor_report import tensor_rows

        _say(progress, "each tensor against the float model's")
        record["tensor_errors"] = tensor_rows(trained, graph, x, asked=bool(errors),
                                              progress=progress)
    record["warnings"] = warnings(record)
    return record


def text_metrics(trained: Any, x: np.ndarray, labels: np.ndarray | None, quant: np.ndarray,
                 fp32: np.ndarray) -> dict:
    """Language models: perplexity and next-token accuracy {fp32, quantized} over the labels
    (each position's next token); sentence encoders: the mean cosine of each sentence's
    embedding (mean pooling over its tokens, L2-normalised) to fp32's, and the share of
    sentences whose nearest neighbour is fp32's. Other models: every value null."""
    out: dict = {"perplexity": {"fp32": None, "quantized": None},
                 "next_token_accuracy": {"fp32": None, "quantized": None},
                 "embedding_cosine": None, "retrieval_agreement": None}
    task = getattr(trained, "task", None)
    if task == "language_model" and labels is not None:
        from qasic.models.textmodels import language_model_metrics

        q, f = language_model_metrics(quant, labels), language_model_metrics(fp32, labels)
        for k in ("perplexity", "next_token_accuracy"):
            out[k] = {"fp32": f[k], "quantized": q[k]}
    elif task == "sentence_embedding":
        from qasic.models.minilm import embed, retrieval_agreement

        eq, ef = embed(quant, x, trained.pad_id), embed(fp32, x, trained.pad_id)
        out["embedding_cosine"] = float(np.mean(np.sum(eq * ef, axis=1)))
        out["retrieval_agreement"] = retrieval_agreement(eq, ef) if len(x) > 1 else None
    return out


RECORD_KEYS = ("model", "arch", "samples", "bit_exact", "cosine", "top1_agreement", "accuracy",
               "fp32_accuracy", "cycles", "latency_us", "energy_pj", "macs", "dram_bytes",
               "compulsory_dram_bytes", "compile_s", "simulate_s", "layers", "policy", "budget",
               "weight_bits", "avg_weight_bits", "weight_format", "activation_bits",
               "activation_format", "quant_config",  # these eight: quantization()
               "tensor_errors", "warnings")
LAYER_KEYS = ("name", "kind", "m", "k", "n", "macs", "cycles", "energy_pj", "dram_bytes",
              "compulsory_dram_bytes", "utilization")


def resolve_model(model: Any, *, calibration: np.ndarray | None = None,
                  data: str | Path | None = None, progress: Progress | None = None) -> Any:
    """The TrainedModel that ``model`` names or is (see ``evaluate``)."""
    from qasic.models.registry import TrainedModel

    if isinstance(model, TrainedModel):
        return model
    if isinstance(model, str | Path):
        spec = str(model)
        if ":" not in spec and not spec.endswith(".pt2"):
            from qasic.models import get_model

            return get_model(spec, progress=progress)
        if data is not None or calibration is None:
            from qasic.models.user import user_trained_model

            return user_trained_model(spec, data)  # without data: says to pass it
        from qasic.models.user import load_user_model

        model = load_user_model(spec)
    return _module_model(model, calibration)


def _module_model(model: Any, calibration: np.ndarray | None) -> Any:
    """A TrainedModel around an nn.Module or ExportedProgram and the caller's calibration."""
    import torch

    from qasic.models.registry import TrainedModel

    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()
    if not isinstance(model, torch.nn.Module):
        raise ConfigError(f"model of type {type(model).__name__} is not a model: pass a built-in "
                          "name, file.py:factory, a .pt2 path, an nn.Module, an ExportedProgram "
                          "or a TrainedModel")
    if calibration is None:
        raise ConfigError("an nn.Module needs calibration=: a float batch in the model's input "
                          "layout (e.g. a few hundred training samples)")
    from qasic.models.user import as_float32, model_inputs, module_output, packed_model

    _eval_mode(model)
    name = type(model).__name__  # the user's class, not the packing wrapper's
    model = as_float32(model)  # a float64 or half model: a float32 copy
    if isinstance(calibration, dict):  # several inputs: {forward parameter: batch}, packed
        model, calib = packed_model(model, calibration, name)
    else:
        calib = model_inputs(np.asarray(calibration))  # token ids stay int64, the rest float32
        if not len(calib):
            raise InputError(f"calibration of shape {calib.shape} has no samples; give at "
                             "least one, batch first")
        module_output(model, calib, "the calibration batch", name)
    empty = np.zeros((0, *calib.shape[1:]), dtype=calib.dtype)
    return TrainedModel(name=name, module=model,
                        example_input=torch.from_numpy(calib[:1].copy()), calibration=calib,
                        test_inputs=empty, test_labels=np.zeros(0, dtype=np.int64),
                        fp32_accuracy=float("nan"))


def _eval_mode(module: Any) -> None:
    """Put ``module`` in eval mode; a graph unlifted from torch.export refuses eval() (it was
    captured in its mode already)."""
    if module.training:
        try:
            module.eval()
        except NotImplementedError:
            pass


def select_inputs(trained: Any, inputs: np.ndarray | None, labels: np.ndarray | None,
                  limit: int | None, progress: Progress | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """(float inputs, labels or None): the given ones, else the test split, else (no test
    split) the calibration batch without labels; the first ``limit`` of them."""
    if inputs is None:
        inputs, labels = trained.test_inputs, trained.test_labels
        if not len(inputs):
            _say(progress, f"{trained.name} has no test inputs: evaluating on its calibration "
                           "batch (no labels)")
            inputs, labels = trained.calibration, None
    ids = _as_ids(trained, np.asarray(inputs))
    x = np.asarray(inputs, dtype=np.int64 if ids else np.float32)
    y = None if labels is None or not len(labels) else np.asarray(labels)
    if y is not None and len(y) != len(x):
        raise InputError(f"{len(y)} labels for {len(x)} inputs; give one label per input")
    if limit is not None:
        if limit < 0:
            raise ConfigError(f"limit = {limit}: give a number of inputs >= 1 (0: all)")
        if limit:
            x, y = x[:limit], (None if y is None else y[:limit])
    if not len(x):
        raise InputError("no inputs to evaluate: pass inputs (or test data) with samples")
    return x, y


def _as_ids(trained: Any, inputs: np.ndarray) -> bool:
    """Whether ``inputs`` feed the model as token ids (int64): integer inputs do, but not to a
    model calibrated on floats (an int image: its values as floats); float inputs to a model
    calibrated on ids do when they are whole numbers, else one line. A packed batch of several
    inputs is float64 whatever its parts: as given."""
    ids = np.issubdtype(inputs.dtype, np.integer)
    if hasattr(trained.module, "pack"):
        return ids
    want = np.issubdtype(np.asarray(trained.calibration).dtype, np.integer)
    if want and not ids and not np.all(np.floor(inputs) == inputs):
        raise InputError(f"inputs to model {trained.name} are token ids (its calibration is "
                         f"{np.asarray(trained.calibration).dtype}); some of the given "
                         f"{inputs.dtype} values are not whole numbers: give int ids")
    return want


def golden_outputs(graph: Any, codes: np.ndarray) -> np.ndarray:
    """The golden reference's output codes for integer input codes, in batches."""
    from qasic.quant import reference

    b = batch_size(codes)
    return np.concatenate([reference.run(graph, codes[i:i + b]) for i in range(0, len(codes), b)])


def batch_size(x: np.ndarray) -> int:
    """Samples per batch: BATCH, fewer for large inputs (224x224x3 images: 27)."""
    return max(1, min(BATCH, BATCH_ELEMENTS // max(1, int(np.prod(x.shape[1:])))))


def float_outputs(module: Any, x: np.ndarray) -> np.ndarray:
    """The fp32 model's outputs for ``x`` (model layout), float64, in batches, no autograd."""
    import torch

    _eval_mode(module)
    outs, b = [], batch_size(x)
    with torch.no_grad():
        for i in range(0, len(x), b):
            y = module(torch.from_numpy(np.ascontiguousarray(x[i:i + b])))
            outs.append(model_output(y).detach().double().numpy())
    return np.concatenate(outs)


def model_output(y: Any):
    """The tensor a model returns, as capture sees it: a `transformers` ModelOutput or a tuple
    gives its first tensor (logits, last_hidden_state); the KV cache is never the output."""
    import torch

    if isinstance(y, torch.Tensor):
        return y
    items = y.to_tuple() if hasattr(y, "to_tuple") else y
    if isinstance(items, (tuple, list)) and items and isinstance(items[0], torch.Tensor):
        return items[0]
    raise InputError(f"the model returns a {type(y).__name__}; pick the tensor with --output "
                     "KEY or N (Python: output=), or return one tensor")


def in_layout_of(fp32: np.ndarray, quant: np.ndarray, layout: str | None = None) -> np.ndarray:
    """fp32 outputs arranged like the simulator's ``quant``, by the output ``layout`` capture
    recorded (QGraph.output_layout: NCHW -> NHWC, NCL -> N1LC, "torch" as is). A graph without
    one (built by hand, or saved before capture recorded it) is guessed from the shapes: as is
    when they match, else NCHW or NCL; a channels-last output whose H, W and C are equal is
    then ambiguous, which only the recorded layout resolves."""
    if layout is not None:
        out = to_internal(fp32, layout)
        if out.shape[1:] == quant.shape[2:] and out.shape[0] == quant.shape[0] * quant.shape[1]:
            out = out.reshape(quant.shape)  # (batch * k, ...): k per sample (an image pair's)
        if out.shape != quant.shape:
            raise InputError(f"fp32 model outputs of shape {fp32.shape} ({layout}) do not "
                             f"match the quantized outputs {quant.shape}; the model must "
                             "return one tensor")
        return out
    if fp32.shape == quant.shape:
        return fp32
    if fp32.ndim == 4 and fp32.transpose(0, 2, 3, 1).shape == quant.shape:
        return fp32.transpose(0, 2, 3, 1)
    if fp32.ndim == 3 and fp32.transpose(0, 2, 1)[:, None].shape == quant.shape:  # NCL
        return fp32.transpose(0, 2, 1)[:, None]
    raise InputError(f"fp32 model outputs of shape {fp32.shape} do not match the quantized "
                     f"outputs {quant.shape}; the model must return one tensor")


def compare(quant: np.ndarray, fp32: np.ndarray, labels: np.ndarray | None) -> dict:
    """cosine (mean per sample; a model of one output value a sample, a regressor's or a
    recommender's score, the cosine of the batch's values: one value's own cosine is only
    its sign), top-1 agreement and accuracy (classifiers: per-sample output a vector of >= 2
    classes; else None)."""
    one = quant.size == len(quant)
    cos = cosines(quant.reshape(1, -1), fp32.reshape(1, -1)) if one else cosines(quant, fp32)
    record = {"cosine": float(np.mean(cos)), "top1_agreement": None,
              "accuracy": None, "fp32_accuracy": None}
    if quant.ndim == 3 and labels is not None and labels.shape == quant.shape[:2]:
        # a language model: every position's next-token prediction
        record["top1_agreement"] = float(np.mean(quant.argmax(-1) == fp32.argmax(-1)))
        record["accuracy"] = float(np.mean(quant.argmax(-1) == labels))
        record["fp32_accuracy"] = float(np.mean(fp32.argmax(-1) == labels))
        return record
    if quant.ndim == 2 and quant.shape[1] >= 2:
        q, f = quant.argmax(axis=1), fp32.argmax(axis=1)
        record["top1_agreement"] = float(np.mean(q == f))
        if labels is not None:
            record["accuracy"] = float(np.mean(q == labels))
            record["fp32_accuracy"] = float(np.mean(f == labels))
    return record


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each sample's flattened outputs; 1 when both are zero, 0 when one
    is."""
    a = a.reshape(len(a), -1).astype(np.float64)
    b = b.reshape(len(b), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    den = na * nb
    dot = np.einsum("ij,ij->i", a, b)
    return np.where(den > 0, dot / np.where(den > 0, den, 1.0), (na == nb).astype(np.float64))


def costs(sim: Any, program: Any, arch: Any) -> dict:
    """Cycles, latency, energy, MACs and DRAM bytes per inference, model and per layer."""
    layers = [layer_record(info, stats, arch)
              for info, stats in zip(program.layers, sim.layers, strict=True)]
    compulsory = [la["compulsory_dram_bytes"] for la in layers
                  if la["compulsory_dram_bytes"] is not None]
    return {"cycles": int(sim.cycles), "latency_us": float(sim.meta["latency_us"]),
            "energy_pj": {k: float(v) for k, v in sim.energy_pj.items()},
            "macs": int(sim.macs), "dram_bytes": int(sim.dram_bytes),
            "compulsory_dram_bytes": int(sum(compulsory)) if compulsory else None,
            "layers": layers}


def layer_record(info: dict, stats: dict, arch: Any) -> dict:
    """One layer: its GEMM shape and compulsory bytes from the compiler's metadata, cycles,
    energy and DRAM bytes from the simulator; utilization = macs / (cycles * rows * cols)."""
    macs, cycles = int(stats["macs"]), int(stats["cycles"])
    compulsory = info.get("compulsory_dram_bytes")
    return {"name": stats["name"], "kind": stats["kind"], "ops": list(info.get("ops", [])),
            "weight_bits": info.get("weight_bits"),
            "m": info.get("m"), "k": info.get("k"), "n": info.get("n"), "macs": macs,
            "cycles": cycles, "energy_pj": {k: float(v) for k, v in stats["energy_pj"].items()},
            "dram_bytes": int(stats["dram_bytes"]),
            "compulsory_dram_bytes": None if compulsory is None else int(compulsory),
            "utilization": (macs / (cycles * arch.macs_per_cycle) if macs and cycles else None)}


def _say(progress: Progress | None, msg: str) -> None:
    if progress:
        progress(msg)


def summary(record: dict) -> str:
    """The record as a few lines and a per-layer table (``qasic evaluate`` without --json)."""
    e = record["energy_pj"]
    parts = ", ".join(f"{k} {v / 1e3:.1f}" for k, v in e.items() if k != "total")
    exact = "yes" if record["bit_exact"] else "NO"
    head = (f"{record['model']} on {record['arch']}, {record['samples']} inputs: "
            f"bit-exact {exact} (simulator vs golden reference)")
    cost = (f"per inference: {record['cycles']} cycles ({record['latency_us']:.2f} us), "
            f"{e['total'] / 1e3:.1f} nJ ({parts}), {record['macs']} MACs")
    dram = (f"DRAM {record['dram_bytes']} bytes (compulsory "
            f"{_or_dash(record['compulsory_dram_bytes'])}); compile {record['compile_s']:.2f} s, "
            f"simulate {record['simulate_s']:.2f} s")
    lines = [head, f"vs fp32: {_agreement(record)}", cost, dram, "", _table(record["layers"])]
    if record.get("tensor_errors"):
        from qasic.tensor_report import worst

        lines += ["", worst(record["tensor_errors"])]
    return "\n".join(lines)


COLLAPSED = 0.5  # a cosine to fp32 below this: the quantized output has lost the signal


def collapse_warning(record: dict) -> str | None:
    """One line when a quantized output is far from fp32 (``cosine`` below COLLAPSED): bit-exact
    says the simulator equals the golden reference, not that the encodings hold the model."""
    c = record.get("cosine")
    if c is None or c >= COLLAPSED:
        return None
    return (f"warning: the quantized output of {record.get('model', 'the model')} is far from "
            f"fp32 (cosine {c:.3f}): the integer program is exact, but its encodings lose the "
            "signal (a division by values near zero, a range set by outliers); try --observer "
            "percentile, or an FP8 --act-format with --fit-arch")


# record -> one warning line or None; a record's ``warnings`` are the lines of these checks
WARNINGS = (collapse_warning, lost_tensor_warning)


def warnings(record: dict) -> list[str]:
    """The warning lines of ``record`` (the record's ``warnings`` key; ``qasic evaluate``
    prints each on stderr): one per check in WARNINGS that fails, none when all pass."""
    return [line for check in WARNINGS if (line := check(record)) is not None]


def _agreement(record: dict) -> str:
    text = f"cosine {record['cosine']:.5f}"
    if record["top1_agreement"] is not None:
        text += f", top-1 agreement {record['top1_agreement']:.2%}"
    if record["accuracy"] is not None:
        text += f", accuracy {record['accuracy']:.2%} (fp32 {record['fp32_accuracy']:.2%})"
    return text


_COLUMNS = ("layer", "kind", "m x k x n", "MACs", "cycles", "util", "nJ", "DRAM B",
            "compulsory B")


def _table(layers: list[dict]) -> str:
    rows = [_COLUMNS] + [_row(la) for la in layers]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(r, widths))).rstrip()
                     for r in rows)


def _row(la: dict) -> tuple[str, ...]:
    shape = "x".join(str(la[d]) for d in "mkn") if la["m"] is not None else "-"
    util = f"{la['utilization']:.1%}" if la["utilization"] is not None else "-"
    return (la["name"], la["kind"], shape, str(la["macs"]), str(la["cycles"]), util,
            f"{la['energy_pj']['total'] / 1e3:.2f}", str(la["dram_bytes"]),
            _or_dash(la["compulsory_dram_bytes"]))


def _or_dash(value: Any) -> str:
    return "-" if value is None else str(value)
