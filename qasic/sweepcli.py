"""`qasic sweep`'s arguments and command: the axes, where points run, the store and exports.

Kept apart from qasic.cli so the sweep's many flags live next to the code that reads them; this
module imports nothing heavy until the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from qasic.isa.table import ACT_FORMATS

ARCH_AXIS_FLAGS = ("--pe-bits", "--sram-scale", "--dram-bw", "--clock-mhz")


def add_sweep_arguments(sp: argparse.ArgumentParser) -> None:
    axes = sp.add_argument_group("models and quantization (a list each; every combination runs)")
    axes.add_argument("--model", action="append", default=None,
                      help="a built-in model; repeat or give a list (default digits_cnn)")
    axes.add_argument("--output", dest="output_pick", metavar="N|KEY", default=None,
                      help="models returning a tuple or dict: the output to sweep, its index "
                      "(0, 1, ...; -1 the last) or key (as evaluate's --output)")
    axes.add_argument("--bits", default=None,
                      help="INT weight widths, e.g. 8,4,2 (default 8,4,3,2 unless --formats or "
                      "--policies are given)")
    axes.add_argument("--formats", default=None,
                      help="weight formats, e.g. mxfp4,fp8_e4m3,nf4 (docs/formats.md)")
    axes.add_argument("--act-bits", default=None,
                      help="INT activation widths, e.g. 8,4 (default 8 unless --act-formats)")
    axes.add_argument("--act-formats", default=None, help="activation formats: "
                      + ",".join(ACT_FORMATS[1:]))
    axes.add_argument("--policies", default=None,
                      help="mixed-precision policies, e.g. hawq,lim (with --budgets)")
    axes.add_argument("--budgets", default=None,
                      help="their budgets, e.g. avg_bits=3,avg_bits=4 (energy and cycles "
                      "budgets are priced on --arch)")
    axes.add_argument("--quant-set", action="append", default=[], metavar="KEY=V1,V2",
                      help="an axis over any other quantization setting (QuantConfig's name, "
                      "as in quant_config of evaluate --json), e.g. softmax_bits=4,8 or "
                      "norm_input_bits=8,16 (repeatable)")
    arch = sp.add_argument_group("architecture (a list each; --arch is the base)")
    arch.add_argument("--arch", default=None,
                      help="the base: a built-in arch (default, gemmini_like) or a TOML file")
    arch.add_argument("--arrays", default="8x8,16x16,32x32", help="array shapes ROWSxCOLS")
    arch.add_argument("--pe-bits", default=None,
                      help="PE widths INPUTxWEIGHT, or fit (sized to each point's weights, the "
                      "default), e.g. fit,8x8,8x4")
    arch.add_argument("--sram-scale", default=None,
                      help="factors on every scratchpad of the base, e.g. 0.5,1,2")
    arch.add_argument("--dram-bw", default=None, help="DRAM bytes per cycle, e.g. 4,8,16")
    arch.add_argument("--clock-mhz", default=None, help="clocks in MHz, e.g. 250,500,1000")
    arch.add_argument("--set", action="append", default=[], metavar="KEY=V1,V2",
                      help="an axis over any arch TOML key, e.g. dram.latency_cycles=32,64 "
                      "(repeatable)")
    run = sp.add_argument_group("running")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=1, help="local processes (default 1)")
    where.add_argument("--dask-local", type=int, default=0, metavar="N",
                       help="start a Dask LocalCluster of N workers")
    where.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help="run on the Dask cluster whose scheduler is there")
    run.add_argument("--limit", type=int, default=0, help="only the first N test inputs")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--store", default=None,
                     help="the SQLite store of finished points (default OUT/sweep.db); a rerun "
                     "skips what it holds")
    run.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    outs = sp.add_argument_group("outputs")
    outs.add_argument("--out", default="out/sweep",
                      help="sweep.json, .csv, .png, .html (and .db) go here")
    outs.add_argument("--parquet", action="store_true", help="also write sweep.parquet")
    outs.add_argument("--pareto", default="accuracy,energy_pj",
                      help="the front's objectives: two or three of accuracy, energy_pj, "
                      "latency_us, area_mm2")
    outs.add_argument("--json", action="store_true", help="print sweep.json (docs/json.md)")


def sweep_space(args: argparse.Namespace):
    """The SweepSpace the arguments name; every bad value is one line before any model loads."""
    from qasic.arch.config import load_arch
    from qasic.models.outputs import parse_output
    from qasic.sweepaxes import arch_axis, quant_choices, set_axis, split_list
    from qasic.sweepspace import SweepSpace

    base = load_arch(args.arch)
    axes = [arch_axis("--arrays", args.arrays, base)]
    for flag in ARCH_AXIS_FLAGS:
        text = getattr(args, flag[2:].replace("-", "_"))
        if text is not None:
            axes.append(arch_axis(flag, text, base))
    axes += [set_axis(text, base) for text in args.set]
    quants = quant_choices(args.bits, args.formats, args.act_bits, args.act_formats,
                           args.policies, args.budgets, args.quant_set)
    models = [m for text in args.model or ["digits_cnn"]
              for m in split_list("--model", text, _model_name, "built-in model names")]
    pick = getattr(args, "output_pick", None)
    return SweepSpace(tuple(dict.fromkeys(models)), args.seed, args.limit, base, tuple(axes),
                      tuple(quants), None if pick is None else parse_output(pick))


def _model_name(text: str) -> str:
    from qasic.errors import ConfigError
    from qasic.models.recipes import MODEL_NAMES

    if not text:
        raise ValueError(text)
    if text.partition("@")[0] not in MODEL_NAMES:
        raise ConfigError(f"--model {text}: a sweep takes built-in models ("
                          f"{', '.join(MODEL_NAMES)}); measure a user model with qasic evaluate")
    return text


def cmd_sweep(args: argparse.Namespace, progress) -> int:
    from qasic.errors import ConfigError
    from qasic.executors import ExecutorSpec, check_available
    from qasic.reports.frontier import parse_objectives
    from qasic.sweep import run_sweep

    if args.limit < 0:
        raise ConfigError(f"--limit {args.limit}: give a number of inputs >= 1 (0: all)")
    executor = ExecutorSpec(args.workers, args.dask_local, args.scheduler)
    check_available(executor)
    objectives = parse_objectives(args.pareto)
    space = sweep_space(args)
    out = Path(args.out)
    result = run_sweep(space, out, store=Path(args.store) if args.store else None,
                       executor=executor, objectives=objectives, parquet=args.parquet,
                       bar=not args.no_progress, progress=progress)
    infeasible = len(result.document["infeasible"])
    progress(f"sweep: {len(result.rows)} points ({result.skipped} from the store, {result.ran} "
             f"run, {infeasible} infeasible) -> {out}")
    if args.json:
        print(json.dumps(result.document, indent=2))
    else:
        print(result.paths["json"], file=sys.stdout)
    return 0
