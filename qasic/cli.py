"""The `qasic` command line. Errors print one line and exit 1 (usage errors: 2); `--debug`,
anywhere on the line, shows the traceback. `--json` output follows docs/json.md."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from qasic.errors import ConfigError, InputError, QasicError
from qasic.isa.table import ACT_FORMATS


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _emit(kind: str, record: dict) -> None:
    """Print ``record`` as the JSON document ``kind`` (qasic.schema: schema key, null for NaN)."""
    from qasic.schema import document

    print(json.dumps(document(kind, record), indent=2))


def _existing_file(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a file; else one line naming it and what to give (``hint``)."""
    if path.is_file():
        return path
    state = "is a directory" if path.is_dir() else "does not exist"
    raise InputError(f"{what} {path} {state}; give {hint}")


def _load_program(text: str):
    from qasic.isa.program import load

    return load(_existing_file(Path(text), "program file", "a .qasic file from qasic compile"))


def parse_bits(text: str) -> int | dict[str, int]:
    """'4' -> 4; 'conv1=8,conv2=4' -> {'conv1': 8, 'conv2': 4}."""
    try:
        if "=" not in text:
            return int(text)
        return {k.strip(): int(v) for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise ConfigError(f"--bits {text!r}: give a width (e.g. 4) or layer=bits pairs "
                          "(e.g. conv1=8,conv2=4,fc=2)") from None


def parse_formats(text: str | None) -> str | dict[str, str] | None:
    """'fp4_e2m1' -> 'fp4_e2m1'; 'conv1=fp8_e4m3,fc=nf4_pc' -> {'conv1': ..., 'fc': ...}."""
    if text is None or "=" not in text:
        return text
    try:
        return {k.strip(): v.strip() for k, v in (p.split("=") for p in text.split(","))}
    except ValueError:
        raise ConfigError(f"--format {text!r}: give a format (e.g. fp4_e2m1) or layer=format "
                          "pairs (e.g. conv1=fp8_e4m3,fc=nf4_pc)") from None


def _arch(args):
    from qasic.arch.config import load_arch

    return load_arch(args.arch)


def _trained(args):
    """The built-in or user model the arguments name (TrainedModel), returning its output
    --output alone when given (qasic.models.outputs)."""
    from qasic.models import get_model
    from qasic.models.outputs import parse_output, select_output

    if ":" in args.model or args.model.endswith(".pt2"):
        from qasic.models.user import user_trained_model

        trained = user_trained_model(args.model, args.data)
    else:
        trained = get_model(args.model, seed=args.seed, progress=_progress)
    pick = getattr(args, "output_pick", None)
    return select_output(trained, None if pick is None else parse_output(pick))


def _activations(args):
    """The activation settings of the arguments (QuantConfig, weights at its defaults)."""
    from qasic.quant import QuantConfig

    return QuantConfig(activation_bits=args.act_bits, activation_observer=args.observer,
                       activation_format=args.act_format, output_observer=args.output_observer,
                       bias_correction=args.bias_correction,
                       **_given(args, "norm_input_bits", "embedding_bits", "softmax_bits"),
                       norm_residual_bits=getattr(args, "norm_residual_bits", None),
                       output_bits=getattr(args, "output_bits", None),
                       equalize=getattr(args, "equalize", False),
                       equalize_alpha=_alpha(getattr(args, "equalize_alpha", None)),
                       weight_rounding=getattr(args, "weight_rounding", "nearest"))


def _given(args, *keys: str) -> dict:
    """The ``keys`` the command line set (absent or None: QuantConfig's default applies)."""
    return {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}


def _alpha(text: str | None) -> float | str | None:
    """--equalize-alpha: a number, or 'search' (QuantConfig checks the range); None: not
    given (0.5)."""
    if text is None or text == "search":
        return text
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"--equalize-alpha {text!r} must be a number in [0, 1] or 'search'") \
            from None


def _quantized(args, trained=None):
    """(model, QGraph) as the quantization flags say; ``trained``: the model already loaded.
    With --qat the model returned is the fine-tuned copy (``trained`` is left as it was)."""
    from qasic.flow import quantize_model

    budget = _check_policy_args(args)
    acts = _activations(args)
    config = dataclasses.replace(acts, weight_bits=parse_bits(args.bits or "8"),
                                 weight_format=parse_formats(args.format))
    trained = trained if trained is not None else _trained(args)
    if budget is not None:
        from qasic.policies import choose_bits

        _progress(f"choosing bits: policy {args.policy}, budget {budget}")
        arch = _arch(args) if getattr(args, "arch", None) else None
        # the policy prices and scores the weights with the activations the model will use
        config = dataclasses.replace(acts, weight_bits=choose_bits(
            trained, args.policy, budget, arch=arch, config=acts))
    if args.qat:
        from qasic.quant.qat import qat_finetune

        _progress(f"quantization-aware fine-tune ({args.qat} epochs, distilled from fp32)")
        tuned = qat_finetune(trained, config, epochs=args.qat, progress=_progress)
        # report against the original float model, not the fine-tuned one
        trained = dataclasses.replace(tuned, fp32_accuracy=trained.fp32_accuracy)
    return trained, quantize_model(trained, config)


def _check_policy_args(args):
    """The parsed --budget when --policy is given (None otherwise); one-line errors first, before
    any model is loaded."""
    if args.policy is None:
        if args.budget is not None:
            raise ConfigError("--budget needs --policy (uniform, hawq, lim, zd or measured)")
        return None
    from qasic.policies import POLICIES, parse_budget

    if args.policy not in POLICIES:
        raise ConfigError(f"--policy {args.policy!r} is unknown: allowed {', '.join(POLICIES)}")
    if args.bits is not None:
        raise ConfigError(f"give --bits or --policy, not both (--bits {args.bits}, "
                          f"--policy {args.policy})")
    if args.budget is None:
        raise ConfigError(f"--policy {args.policy} needs --budget, e.g. --budget avg_bits=3")
    return parse_budget(args.budget)


def _bits_summary(args, trained, graph) -> dict:
    """The quantization (_weights) and its golden-reference accuracy, for the printout and
    --json."""
    from qasic.quant.evaluate import accuracy

    acc = (accuracy(graph, trained.test_inputs, trained.test_labels)
           if len(trained.test_labels) else float("nan"))
    return {**_weights(args, graph), "accuracy": acc}


def _weights(args, graph) -> dict:
    """The quantization a document reports (qasic.evaluation.quantization)."""
    from qasic.evaluation import quantization

    return quantization(graph, _activations(args), args.policy, args.budget)


def _describe(args, summary: dict) -> str:
    """'digits_cnn hawq avg_bits=3: conv1=6 conv2=4 fc=2 (avg 2.99 bits), accuracy 98.33%'."""
    bits = " ".join(f"{k}={v}" for k, v in summary["weight_bits"].items())
    return (f"{args.model} {args.policy} {args.budget}: {bits} "
            f"(avg {summary['avg_weight_bits']:.2f} bits), accuracy {summary['accuracy']:.2%}")


def cmd_demo(args) -> int:
    from qasic.demo import run_demo

    report = run_demo(Path(args.out), seed=args.seed, rtl=not args.no_rtl, progress=_progress)
    print(report)
    return 0


def cmd_quantize(args) -> int:
    if args.pareto:
        return _pareto(args)
    trained, graph = _quantized(args)
    summary = _bits_summary(args, trained, graph)
    record = {"model": trained.name, "fp32_accuracy": trained.fp32_accuracy, **summary}
    if args.json:
        _emit("quantize", record)
    elif args.policy:
        print(f"{_describe(args, summary)} (fp32 {trained.fp32_accuracy:.2%})")
    else:
        formats = ",".join(f"{n.name}={n.weight_format}" for n in graph.weighted_nodes())
        acts = f"A{args.act_bits}" if args.act_format == "int" else args.act_format
        print(f"{args.model} {formats} {acts}: accuracy {summary['accuracy']:.2%} "
              f"(fp32 {trained.fp32_accuracy:.2%})")
    return 0


def _pareto(args) -> int:
    """quantize --pareto: every allocation of the policy's Pareto set under the budget, each
    quantized and scored on the golden reference."""
    from qasic.flow import quantize_model
    from qasic.policies import pareto_plans, weight_params
    from qasic.quant import capture
    from qasic.quant.evaluate import accuracy

    budget = _check_policy_args(args)
    acts = _activations(args)
    if budget is None:
        raise ConfigError("--pareto needs --policy and --budget, e.g. --policy hawq "
                          "--budget avg_bits=4 (the set runs up to the budget)")
    trained = _trained(args)
    graph = capture(trained.module, trained.example_input, trained.name)
    _progress(f"Pareto set: policy {args.policy}, budget {budget}")
    plans = pareto_plans(graph, trained.calibration, args.policy, budget,
                         arch=_arch(args) if getattr(args, "arch", None) else None,
                         scoring=trained.scoring_data(), config=acts)
    records = []
    for i, plan in enumerate(plans, 1):
        config = dataclasses.replace(acts, weight_bits=plan.bits)
        acc = (accuracy(quantize_model(trained, config), trained.test_inputs,
                        trained.test_labels) if len(trained.test_labels) else float("nan"))
        records.append({"weight_bits": plan.bits, "avg_weight_bits": plan.avg_weight_bits,
                        "predicted_cost": budget.in_key_units(plan.cost, weight_params(graph)),
                        "predicted_sensitivity": plan.sensitivity, "accuracy": acc})
        _progress(f"[{i}/{len(plans)}] " + " ".join(f"{k}={b}" for k, b in plan.bits.items())
                  + f": accuracy {acc:.2%}")
    if args.json:
        _emit("quantize.pareto", {"model": trained.name, "policy": args.policy,
                                  "budget": str(budget), "activation_bits": args.act_bits,
                                  "activation_format": args.act_format, "points": records})
    else:
        for r in records:
            bits = " ".join(f"{k}={b}" for k, b in r["weight_bits"].items())
            avg = f"avg_bits={r['avg_weight_bits']:.3g}"
            cost = (avg if budget.key == "avg_bits"
                    else f"{budget.key}={r['predicted_cost']:.4g} {avg}")
            print(f"{cost} {bits}: accuracy {r['accuracy']:.2%}")
    return 0


def cmd_compile(args) -> int:
    from qasic.compiler import compile_graph
    from qasic.isa.program import save
    from qasic.quant.graphio import embed

    arch = _arch(args)  # a bad --arch fails before any model is loaded
    _check_output(Path(args.out), "--out", "model.qasic")
    trained, graph = _quantized(args)
    if args.policy:
        line = _describe(args, _bits_summary(args, trained, graph))
        print(line, file=sys.stderr if args.json else sys.stdout)
    if args.fit_arch:
        from qasic.flow import arch_for

        arch = arch_for(graph, arch)
        _progress(f"array sized for the model: {arch.name} (PE weight bits {arch.weight_bits}, "
                  f"accumulator {arch.acc_bits} bits)")
    t0 = time.perf_counter()
    program = compile_graph(graph, arch, progress=_progress)
    compile_s = time.perf_counter() - t0
    save(embed(program, graph), args.out)  # the graph: the file's own golden reference
    if args.json:
        _emit("compile", _compiled(args, trained.name, graph, arch, program, compile_s))
    else:
        print(f"wrote {args.out}: {len(program.instrs)} instructions, "
              f"{len(program.constants)} constant bytes")
    return 0


def _compiled(args, model: str, graph, arch, program, compile_s: float) -> dict:
    """compile --json: the program's size and what the compiler knows of each kernel."""
    layers = [{"name": la["name"], "kind": la["kind"], "ops": list(la.get("ops", [])),
               "weight_bits": la.get("weight_bits"), "weight_format": la.get("weight_format"),
               "m": la.get("m"), "k": la.get("k"), "n": la.get("n"), "macs": la.get("macs", 0),
               "compulsory_dram_bytes": la.get("compulsory_dram_bytes")}
              for la in program.layers]
    compulsory = [la["compulsory_dram_bytes"] for la in layers
                  if la["compulsory_dram_bytes"] is not None]
    return {"model": model, "arch": arch.name, "program": args.out,
            "program_bytes": Path(args.out).stat().st_size,
            "instructions": len(program.instrs), "constant_bytes": len(program.constants),
            "compile_s": compile_s, "macs": sum(la["macs"] for la in layers),
            "compulsory_dram_bytes": sum(compulsory) if compulsory else None,
            **_weights(args, graph), "layers": layers}


def cmd_simulate(args) -> int:
    import numpy as np

    from qasic.sim import simulate
    from qasic.sim.run import input_codes

    _check_limit(args.limit)
    if args.output:
        _check_output(Path(args.output))
    program = _load_program(args.program)
    if args.arch:
        arch = _arch(args)
    else:
        from qasic.sim.run import program_arch

        arch = program_arch(program)
    x, labels = _simulate_inputs(args, program)
    if args.limit:
        x = x[:args.limit]
        labels = labels[:args.limit] if labels is not None else None
    result = simulate(program, arch, x, progress=_progress)
    reference = _reference_outputs(args, program, input_codes(program, x))
    if args.output:
        _save_npy(Path(args.output), result.logits().astype(np.float32))
    accuracy = None
    if labels is not None:
        pred = result.outputs.reshape(len(x), -1).argmax(axis=1)
        accuracy = float(np.mean(pred == labels))
    reference_equal = None if reference is None else bool(
        np.array_equal(result.outputs, reference.reshape(result.outputs.shape)))
    record = {"program": args.program, "model": program.meta.get("model"), "arch": arch.name,
              "samples": len(x), "accuracy": accuracy, "reference_equal": reference_equal,
              **result.to_json()}
    if args.trace:
        from qasic.sim.trace import write_trace

        write_trace(program, result.timing, args.trace)
    if args.json:
        _emit("simulate", record)
    else:
        e = record["energy_pj"]
        print(f"{len(x)} samples: {record['cycles']} cycles/inference "
              f"({record['latency_us']:.1f} us), {e['total'] / 1e3:.1f} nJ/inference"
              + (f", accuracy {accuracy:.2%}" if accuracy is not None else "")
              + ("" if reference is None else ", outputs "
                 + ("equal to" if reference_equal else "DIFFERENT from")
                 + " the golden reference's"))
    return 0 if reference_equal is not False else 1


REFERENCE_CHUNK = 256  # inputs the golden reference runs at once (as qasic.flow.run_point)


def _reference_outputs(args, program, codes):
    """The golden reference's output codes for ``codes`` when the program file carries its
    graph (qasic compile embeds it) and --no-reference is not given, else None."""
    from qasic.quant import reference
    from qasic.quant.graphio import embedded

    graph = embedded(program)  # a malformed graph section is refused even when not run
    if graph is None or args.no_reference:
        return None
    import numpy as np

    _progress("running the golden reference the program carries")
    return np.concatenate([reference.run(graph, codes[i:i + REFERENCE_CHUNK])  # bounded memory
                           for i in range(0, len(codes), REFERENCE_CHUNK)])


def _check_limit(limit: int) -> None:
    if limit < 0:
        raise ConfigError(f"--limit {limit}: give a number of inputs >= 1 (0: all)")


def _simulate_inputs(args, program):
    """(inputs, labels or None): --input, or the test split of the built-in model compiled."""
    if args.input:
        if "inputs" in program.meta and str(args.input).endswith(".npz"):
            return _load_inputs(Path(args.input), program), None
        return _load_input(Path(args.input)), None
    from qasic.models import MODEL_NAMES, get_model

    model = program.meta.get("model")
    if str(model).partition("@")[0] not in MODEL_NAMES:
        raise ConfigError(f"program {args.program} is of model {model!r}, which is not built in, "
                          "so it has no test split; pass --input X.npy (float inputs, batch "
                          "first, in the model's layout)")
    trained = get_model(model, seed=args.seed, progress=_progress)
    return trained.test_inputs, trained.test_labels


def _load_input(path: Path):
    """The float inputs in a .npy file: one line for anything else."""
    import numpy as np

    _existing_file(path, "--input", "a .npy file of float inputs (numpy.save)")
    try:
        x = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"--input {path} is not a .npy array ({type(e).__name__}); save the "
                         "inputs with numpy.save") from None
    if not isinstance(x, np.ndarray):  # an .npz archive
        x.close()
        raise InputError(f"--input {path} is an .npz archive; give one .npy array "
                         "(numpy.save)")
    if x.dtype.kind not in "biuf" or x.ndim == 0 or not len(x):
        raise InputError(f"--input {path} holds a {x.dtype} array of shape {x.shape}; give "
                         "float inputs, at least one, batch first")
    return x


def _load_inputs(path: Path, program):
    """A program of several inputs: the data file's 'test_x.NAME' arrays (else its
    'calibration.NAME'), one per input, packed in the program's order
    (qasic.quant.graph_inputs); one line names a missing or extra array."""
    import numpy as np

    from qasic.isa.program import input_specs
    from qasic.quant import graph_inputs

    _existing_file(path, "--input", "an .npz with 'test_x.NAME' or 'calibration.NAME' arrays")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, AttributeError) as e:
        raise InputError(f"--input {path} is not a readable .npz ({type(e).__name__})") from None
    key = "test_x" if any(k.startswith("test_x.") for k in data) else "calibration"
    group = {k.partition(".")[2]: v for k, v in data.items() if k.startswith(f"{key}.")}
    specs = input_specs(program.meta)
    # the first input's tensor is 'input'; the others' are 'input.NAME' (qasic.quant.capture)
    later = [s["tensor"].partition(".")[2] for s in specs[1:]]
    first = [n for n in group if n not in later]
    if len(group) != len(specs) or len(first) != 1 or any(n not in group for n in later):
        raise InputError(f"--input {path}: '{key}.NAME' arrays {sorted(group) or 'none'} are "
                         f"not the program's {len(specs)} inputs (the first, then "
                         f"{', '.join(later)}); give one array per input")
    parts = [group[first[0]], *(group[n] for n in later)]
    if len({len(a) for a in parts}) != 1:
        raise InputError(f"--input {path}: the '{key}.NAME' arrays hold different numbers of "
                         "samples; give each input's array for the same samples")
    return graph_inputs.pack(parts)


def _check_output(path: Path, option: str = "--output", example: str = "y.npy") -> None:
    """Refuse before the work, not after it: a directory is never replaced."""
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a directory; give a file name like "
                          f"{path}/{example}")
    if not path.parent.is_dir():
        raise ConfigError(f"{option} {path}: directory {path.parent} does not exist")


def _save_npy(path: Path, array) -> None:
    """Write ``array`` to ``path`` atomically: a temporary file beside it, then a rename."""
    import os
    import tempfile

    import numpy as np

    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cmd_evaluate(args) -> int:
    from qasic.evaluation import evaluate_quantized, summary
    from qasic.tensor_report import wanted

    if args.limit < 0:
        raise ConfigError(f"--limit {args.limit}: give a number of inputs >= 1 (0: all)")
    arch = _arch(args)  # a bad --arch fails before any model is loaded
    _check_policy_args(args)
    errors = wanted(args.errors or None, getattr(args, "equalize", False))
    trained = _trained(args)
    _progress(f"quantizing {trained.name}")
    _, graph = _quantized(args, trained)  # fp32 outputs come from the model before any --qat
    record = evaluate_quantized(trained, graph, arch=arch, limit=args.limit or None,
                                fit_arch=args.fit_arch, progress=_progress, errors=errors)
    record = {**record, **_weights(args, graph)}
    for warning in record["warnings"]:  # stderr: --json's stdout stays one document
        _progress(warning)
    if args.json:
        _emit("evaluate", record)
    else:
        print(summary(record))
    return 0


def cmd_generate(args) -> int:
    from qasic.generate import check_request, generate_quantized, language_model, summary

    arch = _arch(args)
    _check_policy_args(args)
    prompt = args.prompt if args.prompt_ids is None else _ids(args.prompt_ids)
    trained = language_model(_trained(args))  # two id inputs: one, [source | target]
    if args.source_sample is not None:  # an encoder-decoder's source from the data file
        from qasic.generate import source_sample

        prompt = source_sample(trained, args.source_sample)
    start = None if args.decoder_start is None else _ids(args.decoder_start, "--decoder-start")
    shape = check_request(trained, prompt, args.tokens, args.tokenizer, start)  # before quantizing
    _progress(f"quantizing {trained.name}")
    _, full = _quantized(args, trained)
    record = generate_quantized(trained, full, prompt, args.tokens, arch=arch,
                                tokenizer=args.tokenizer, progress=_progress, shape=shape,
                                decoder_start=start, decode=args.decode)
    if args.json:
        _emit("generate", record)
    else:
        print(summary(record))
    return 0


def _ids(text: str, option: str = "--prompt-ids") -> list[int]:
    """--prompt-ids 15496,11,995 -> [15496, 11, 995]."""
    try:
        return [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise InputError(f"{option} {text!r} must be token ids separated by commas, "
                         "e.g. 15496,11,995") from None


def cmd_sweep(args) -> int:
    from qasic.sweepcli import cmd_sweep as run

    return run(args, _progress)


def cmd_disasm(args) -> int:
    from qasic.isa.encoding import format_instr

    program = _load_program(args.program)
    layers = program.layers
    current = None
    for i, (ins, k) in enumerate(zip(program.instrs, program.layer_ids)):
        if k != current:
            current = k
            print(f"# kernel {k}: {layers[k]['name']} ({'+'.join(layers[k]['ops'])})")
        print(f"{i:5d}  {format_instr(ins)}")
    return 0


def cmd_ops(args) -> int:
    """The ops and forms capture supports (``quant.handlers.SUPPORTED``), then the forms the
    graph rewrites turn into them (``quant.rewrites.REWRITES``: flips, one-hots, Conv3d, ...),
    one per line; every capture refusal points here."""
    from qasic.quant.handlers import SUPPORTED
    from qasic.quant.rewrites import REWRITES

    for form in (*SUPPORTED, *(f"{r.does} (rewrite {r.name})" for r in REWRITES)):
        print(form)
    return 0


def cmd_verilog(args) -> int:
    from qasic.rtl.top import generate_accelerator

    arch = _arch(args)
    _progress(f"elaborating the accelerator for {arch.name}")
    for f in generate_accelerator(arch, Path(args.out)):
        print(f)
    return 0


def cmd_rtl_run(args) -> int:
    """Run a program on the whole accelerator's RTL and compare it with the simulator."""
    from qasic.rtl.run import default_build_dir, rtl_run
    from qasic.sim.run import input_codes, program_arch

    _check_limit(args.limit)
    program = _load_program(args.program)
    arch = program_arch(program)
    x, _ = _simulate_inputs(args, program)
    x = x[:args.limit or 16]
    codes = input_codes(program, x)
    depth = _depth(args.depth, program)
    result = rtl_run(program, arch, codes,
                     Path(args.build_dir) if args.build_dir else default_build_dir(),
                     reference=_reference_outputs(args, program, codes), progress=_progress,
                     depth=depth)
    record = result.record(args.program, program.meta.get("model"), arch.name)
    if args.json:
        _emit("rtl_run", record)
    else:
        verdict = "equal" if result.outputs_equal else "DIFFERENT"
        others = ("simulator's" if result.reference_equal is None
                  else "simulator's and the golden reference's")
        print(f"{result.samples} samples on the RTL: outputs {verdict} to the {others}; "
              f"{result.cycles_rtl} cycles (simulator {result.cycles_sim}, error "
              f"{result.cycle_error:.2%}); {result.cycles_per_s:,.0f} cycles/s")
    return 0 if result.outputs_equal else 1


def _depth(text: str, program) -> int:
    """--depth: 'auto' (the smallest build that holds the program) or instructions per queue."""
    from qasic.rtl.limits import MAX_PROGRAM_DEPTH, PROGRAM_DEPTH, fitting_depth

    if text == "auto":
        return fitting_depth(program)
    try:
        depth = int(text)
    except ValueError:
        depth = 0
    if not 2 <= depth <= MAX_PROGRAM_DEPTH:
        raise ConfigError(f"--depth {text}: give 'auto' or instructions per queue in "
                          f"2..{MAX_PROGRAM_DEPTH} (default build: {PROGRAM_DEPTH})")
    return depth


def cmd_report(args) -> int:
    from qasic.reports import write_report

    paths = write_report(Path(args.results), Path(args.out))
    print(paths["report_html"])
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) that point at --help."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="qasic", description=__doc__)
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    # every subcommand takes --debug too; SUPPRESS keeps one given before it
    debug = _Parser(add_help=False)
    debug.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[debug], **kw)

    def model_args(sp):
        sp.add_argument("--model", default="digits_cnn",
                        help="built-in name, path/file.py:factory, or a torch.export .pt2")
        sp.add_argument("--output", dest="output_pick", metavar="N|KEY",
                        help="a model returning a tuple or dict: the output to compile, its "
                             "index (0, 1, ...; -1 the last) or key")
        sp.add_argument("--data", help="for a user model: .npz with calibration[, test_x, "
                        "test_y]")
        sp.add_argument("--bits", default=None,
                        help="weight bits: 4, or conv1=8,conv2=4 (default 8)")
        sp.add_argument("--format", default=None,
                        help="weight format: fp4_e2m1, or conv1=fp8_e4m3,fc=nf4_pc (see "
                        "docs/formats.md; default: INT of --bits)")
        sp.add_argument("--act-bits", type=int, default=8, help="activation bits (2..8)")
        sp.add_argument("--act-format", default="int",
                        help="activation format: int (of --act-bits) | "
                        + " | ".join(ACT_FORMATS[1:]) + " (docs/formats.md)")
        sp.add_argument("--norm-input-bits", type=int, default=None,
                        help="INT bits of the tensors feeding a norm (the residual sums of a "
                        "transformer), 2..16; 9..16 are stored as int16 (default 16 where the "
                        "accelerator takes int16 codes, else the activation width: rows of at "
                        "most 1023 values read only by adds and norms, through reshapes, permutes "
                        "and concats; --norm-input-bits 8: "
                        "the width of before)")
        sp.add_argument("--norm-residual-bits", type=int, default=None,
                        help="a norm output that feeds a residual add (a post-LN transformer's "
                        "residual stream, BERT) is written a second time as INT of these bits "
                        "for the add, 2..16 (9..16: int16 codes); the GEMMs keep reading the "
                        "activation encoding (default: no copy)")
        sp.add_argument("--embedding-bits", type=int, default=None,
                        help="INT bits of embedding rows that only adds and norms read (token "
                        "lookups, learned position tables: the residual stream's first terms), "
                        "8 or 16; 16: the tables are stored and GATHERed as int16 codes, twice "
                        "their bytes (default 16; 8: the activation encoding, the width of before)")
        sp.add_argument("--softmax-bits", type=int, default=None,
                        help="INT bits of softmax outputs (attention probabilities, a "
                        "distribution head's bins), 2..8 (default 8, wider than narrower "
                        "activations: at 4 bits the step 1/7 rounds probabilities near 1/n of "
                        "n > 14 keys to 0)")
        sp.add_argument("--output-bits", type=int, default=None,
                        help="INT bits of the model's output (a classifier's logits), 2..16; "
                        "9..16: the last layer writes int16 codes (default: the activation "
                        "encoding)")
        sp.add_argument("--qat", type=int, default=0, metavar="EPOCHS",
                        help="quantization-aware fine-tune for EPOCHS before quantizing")
        sp.add_argument("--observer", default="minmax",
                        help="activation observer: minmax | percentile | moving_average | "
                        "histogram | fisher (histogram MSE weighted by the fp32 loss's squared "
                        "gradient per value; classifiers)")
        sp.add_argument("--output-observer", default="minmax",
                        help="the graph output's observer: minmax | top (a classifier's logits "
                        "from the lowest per-sample median up: finer steps where argmax is "
                        "decided) | fisher (the MSE range of the logits weighted by the "
                        "cross-entropy's squared gradient: the competing top scores count, the "
                        "rest may clip)")
        sp.add_argument("--bias-correction", action="store_true",
                        help="empirical bias correction (Nagel et al. 2019): each layer's bias "
                        "absorbs the mean error quantization adds to its output")
        sp.add_argument("--equalize", action="store_true",
                        help="activation equalization (Nagel et al. 2019, SmoothQuant): "
                        "channels rescaled to share one activation scale, the factors moved "
                        "into the per-channel weights")
        sp.add_argument("--equalize-alpha", default=None, metavar="A|search",
                        help="with --equalize: strength towards full (non-depthwise) consumers, "
                        "s_c = (range_c / widest)^A, A in [0, 1] (default 0.5, SmoothQuant's), "
                        "or 'search': per tensor group the A of 0, 0.25, ..., 1 whose quantized "
                        "consumers' outputs lose least on the calibration batch")
        sp.add_argument("--weight-rounding", default="nearest",
                        help="nearest | gptq (Frantar et al. 2023: codes chosen per layer to keep "
                        "its output on the calibration batch) | gptq_fisher (the same, each "
                        "output position weighted by the fp32 loss's squared gradient there; "
                        "classifiers)")
        sp.add_argument("--seed", type=int, default=0)

    def arch_arg(sp):
        sp.add_argument("--arch", default=None,
                        help="a built-in arch (default, gemmini_like) or an arch TOML file; "
                        "default: default")

    sp = command("demo", help="the whole flow on the default model, to a report")
    sp.add_argument("--out", default="out/demo")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--no-rtl", action="store_true", help="skip the Verilator check")
    sp.set_defaults(func=cmd_demo)

    def policy_args(sp):
        sp.add_argument("--policy", default=None,
                        help="choose per-layer bits instead of --bits: uniform | hawq | lim | zd "
                        "| measured")
        sp.add_argument("--budget", default=None,
                        help="for --policy: avg_bits=3 | size_bits=N | size_kib=4 | energy_pj=N "
                        "| energy_nj=2300 | energy_uj=N | cycles=N (energy, cycles: simulated on "
                        "--arch)")

    sp = command("quantize", help="quantize a model and score it on the golden reference")
    model_args(sp)
    policy_args(sp)
    sp.add_argument("--pareto", action="store_true",
                    help="with --policy/--budget: list the policy's whole Pareto set up to the "
                    "budget, each point scored")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_quantize)

    sp = command("compile", help="quantize and compile a model to a program file")
    model_args(sp)
    policy_args(sp)
    arch_arg(sp)
    sp.add_argument("--out", required=True, help="program file to write")
    sp.add_argument("--fit-arch", action="store_true",
                    help="size PE and accumulator widths to the model's weights")
    sp.add_argument("--json", action="store_true", help="print the record (docs/json.md)")
    sp.set_defaults(func=cmd_compile)

    sp = command("simulate", help="simulate a program file")
    sp.add_argument("program")
    arch_arg(sp)
    sp.add_argument("--input", help=".npy float inputs (default: the model's test split); a "
                    "model of several inputs: the .npz data file ('test_x.NAME' or "
                    "'calibration.NAME' arrays)")
    sp.add_argument("--limit", type=int, default=0, help="simulate only the first N inputs")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--trace", help="write a Perfetto/Chrome trace JSON here")
    sp.add_argument("--output", help="write the dequantized outputs (float32 .npy) here")
    sp.add_argument("--no-reference", action="store_true",
                    help="skip the golden-reference check of the graph the program carries")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_simulate)

    sp = command("evaluate", help="quantize, compile, simulate and compare with the "
                        "golden reference and fp32: one verdict")
    model_args(sp)
    policy_args(sp)
    arch_arg(sp)
    sp.add_argument("--fit-arch", action="store_true",
                    help="size PE and accumulator widths to the model's weights")
    sp.add_argument("--limit", type=int, default=0, help="evaluate only the first N inputs")
    sp.add_argument("--errors", action="store_true",
                    help="compare every tensor with the float model's on the first 8 inputs "
                    "(SQNR, ranges, clipping; without it only when the output collapses)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_evaluate)

    sp = command("generate", help="greedy text generation on the simulator: prefill, then "
                 "one decode step per token with a KV cache in DRAM (or, where none can be "
                 "planned, the whole model per token)")
    model_args(sp)
    policy_args(sp)
    arch_arg(sp)
    sp.set_defaults(model="tiny_gpt")
    given = sp.add_mutually_exclusive_group(required=True)
    given.add_argument("--prompt", help="the text to continue (an encoder-decoder's source)")
    given.add_argument("--prompt-ids", metavar="IDS",
                       help="the prompt as token ids, e.g. 15496,11,995 (a model without a "
                            "tokenizer)")
    given.add_argument("--source-sample", metavar="N", type=int,
                       help="an encoder-decoder of two inputs: the source of sample N of the "
                            "--data file (its test_x, else its calibration arrays): source ids, "
                            "or float features (Whisper's)")
    sp.add_argument("--tokenizer", metavar="bytes|DIR",
                    help="how --prompt becomes ids: bytes (UTF-8, ids 0..255) or a directory "
                         "with a transformers tokenizer (save_pretrained); default: bytes for a "
                         "model of 256 ids (tiny_gpt)")
    sp.add_argument("--tokens", type=int, default=32, help="tokens to generate")
    sp.add_argument("--decoder-start", metavar="IDS",
                    help="an encoder-decoder's first target id, or ids (the start token, then "
                         "a prefix to continue; its prompt is the source); default: the "
                         "decoder_start_token_id of its transformers config")
    sp.add_argument("--decode", choices=("auto", "kv_cache", "recompute"), default="auto",
                    help="kv_cache: a decode step over the KV caches in DRAM (refused when it "
                         "cannot be planned); recompute: rerun the whole model for each token; "
                         "auto (default): kv_cache where it can be planned, else recompute")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_generate)

    sp = command("sweep", help="models x arch parameters x quantizations -> a resumable "
                 "store, sweep.json/csv/html and the Pareto front")
    from qasic.sweepcli import add_sweep_arguments

    add_sweep_arguments(sp)
    sp.set_defaults(func=cmd_sweep)

    sp = command("disasm", help="disassemble a program file")
    sp.add_argument("program")
    sp.set_defaults(func=cmd_disasm)

    sp = command("ops", help="the PyTorch ops and forms capture supports, one per line (a "
                 "refusal names the node and the reason; this is the list)")
    sp.set_defaults(func=cmd_ops)

    sp = command("verilog", help="write the whole accelerator's Verilog (qasic_accel.v) and a "
                 "JSON of its ports")
    arch_arg(sp)
    sp.add_argument("--out", default="out/verilog")
    sp.set_defaults(func=cmd_verilog)

    sp = command("rtl-run", help="run a program file on the accelerator's RTL (Verilator + "
                 "cocotb), DRAM to DRAM, and compare outputs and cycles with the simulator and "
                 "outputs with the golden reference the file carries")
    sp.add_argument("program")
    sp.add_argument("--input", help=".npy float inputs (default: the model's test split); a "
                    "model of several inputs: the .npz data file ('test_x.NAME' or "
                    "'calibration.NAME' arrays)")
    sp.add_argument("--limit", type=int, default=16, help="run the first N inputs (default 16)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--build-dir", help="Verilator builds are cached here (default: "
                    "$QASIC_CACHE/rtl or ~/.cache/qasic/rtl)")
    sp.add_argument("--depth", default="auto",
                    help="instructions each queue's program memory holds, a build parameter "
                    "(default auto: the smallest power of two >= 2048 that holds the program)")
    sp.add_argument("--no-reference", action="store_true",
                    help="skip the golden-reference check of the graph the program carries")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_rtl_run)

    sp = command("report", help="results.json -> pareto.png and report.html")
    sp.add_argument("results")
    sp.add_argument("--out", default=None)
    sp.set_defaults(func=cmd_report)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "command", None) == "report" and args.out is None:
        args.out = str(Path(args.results).parent)
    try:
        status = args.func(args)
        sys.stdout.flush()  # a closed pipe fails here, not in the interpreter's exit
        return status
    except QasicError as e:
        if args.debug:
            raise
        print(f"qasic: error: {e}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader left (`qasic disasm p.qasic | head`): stop quietly, as cat does
        _discard_stdout()
        return 1
    except KeyboardInterrupt:
        print("qasic: interrupted", file=sys.stderr)
        return 130


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so flushing what is left at exit cannot fail again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a real file (a test's capture): nothing will flush to the pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
