"""The survey's models at a narrower activation width: is each still bit-exact (golden reference
== simulator), and how close to float?

benchmarks.family_survey runs every row at the default W8A8. The contract is bit-exactness at
every format, so this runs a sample of the survey's running rows (every input kind: up to 30
image rows, 25 token rows, 2 of each other kind, drawn with a fixed seed) at ``--act-bits``
(weights 8-bit), or at a weight width or format (``--weight-bits``, ``--weight-format``), or an
FP8 activation format (``--act-format``). A 6-bit scan of 93 rows on 2026-12-06 found two kinds of
failure, both fixed:
every vision transformer with a class token (17 tokens: 6-bit rows that do not pack into whole
bytes, so its softmax results were stored a byte per code and scaled to int8's range: SOFTMAX
qbits) and resizes of 2..7-bit codes (refused; now run).

    python -m benchmarks.bit_survey [--act-bits 6] [--weight-bits 4] [--weight-format nf4]
                                    [--act-format fp8_e4m3] [--only NAME,...] [--out DIR]
                                    [--generate] [--decoders]

writes OUT/bit_survey_<point>.json (``point_name``: a6, w4_a8, nf4_a8, w8_fp8_e4m3, ...): per
row ``bit_exact`` and ``cosine``, or the error's line.

``--generate``: the rows that generate in the survey (family_survey.generates: its decoders)
also generate greedily at the point, as the survey does at W8A8 (a prefill of 6 tokens, 8
decode steps with their caches, on the quantized model and arch the evaluation used): per row
``generation`` ``exact`` (every token and step's output codes equal the golden reference's),
``differs``, ``refused: <line>``, ``crash: <type: line>`` or ``timeout``, and
``decode_cycles``; the file counts them (``generation``). A decoder's generation at a narrow
width was otherwise never run: packed caches against rows stored a byte per code (LFM2, Mamba,
token shifts) were found outside the repo. ``--decoders`` keeps only those rows (of the sample,
or of ``--only``). Its first run (2026-12-07: all 178 decoder rows at A4, 169 at W4, 66 at
FP8 activations) found the scan states (RWKV, RG-LRU, gated delta: 9 rows) and XLNet@uni's
cache refused at A4, every one a cache whose rows keep a byte per code against a packed
cache; a state now shares its rows' storage (compiler.memory), and all generate exactly.
tests/benchmarks/test_bit_guard_generate.py keeps a decoder per generation mechanism so.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

SURVEY = Path(__file__).resolve().parent / "results" / "family_survey.json"
PER_KIND = {"image": 30, "ids": 25}  # other input kinds: OTHERS rows each
OTHERS = 2
TIMEOUT_S = 300


def sample(seed: int = 1) -> list[str]:
    """The rows scanned: the survey's running rows, by input kind (module doc)."""
    records = json.loads(SURVEY.read_text())["records"]
    by_kind: dict[str, list[str]] = {}
    for r in records:
        if r["status"] == "ok":
            by_kind.setdefault(r["input"], []).append(r["name"])
    rng = random.Random(seed)
    names: list[str] = []
    for kind, rows in by_kind.items():
        names += rng.sample(rows, min(PER_KIND.get(kind, OTHERS), len(rows)))
    return names


class _Timeout(Exception):
    pass


def _alarm(*_: object) -> None:
    raise _Timeout


def point_name(config: dict) -> str:
    """The file name's point: "a6" for the activation scan of before (weights 8-bit INT),
    else weights then activations, e.g. "w4_a8", "nf4_a8", "w8_fp8_e4m3"."""
    weights = config.get("weight_format") or f"w{config.get('weight_bits', 8)}"
    acts = (config["activation_format"] if config.get("activation_format", "int") != "int"
            else f"a{config.get('activation_bits', 8)}")
    return acts if weights == "w8" else f"{weights}_{acts}"


def _needs_fit(config: dict) -> bool:
    """A weight or activation format other than INT runs on PEs sized to it (FP8 levels need
    wider or shift-add PEs than the default array's 8-bit ones): ``qasic.flow.arch_for``."""
    return bool(config.get("weight_format")) or config.get("activation_format", "int") != "int"


def run_one(name: str, config: dict, generate: bool = False) -> dict:
    """Row ``name`` at ``config``: evaluated (``bit_exact``, ``cosine``) and, with ``generate``
    and a row that generates in the survey (family_survey.generates), its greedy generation on
    the same quantized model and arch (``generation``)."""
    from benchmarks.family_survey import build, generates

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    t0 = time.perf_counter()
    try:
        model, x, _ = build(name)
        rec, graph = _evaluate(model, x, config)
    except _Timeout:
        rec = {"error": f"no result within {TIMEOUT_S} s"}
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        rec = {"error": _line(e)}
    finally:
        signal.alarm(0)
    if generate and "error" not in rec and generates(name):
        rec |= run_generation(model, x, graph, config)
    return {"name": name, **rec, "wall_s": round(time.perf_counter() - t0, 1)}


def _evaluate(model: object, x: object, config: dict) -> tuple[dict, object]:
    """(``bit_exact`` and ``cosine`` of ``model`` at ``config`` on ``x``, its quantized graph)."""
    from qasic.evaluation import evaluate_quantized, resolve_model
    from qasic.flow import quantize_model
    from qasic.quant import QuantConfig

    trained = resolve_model(model, calibration=x)
    graph = quantize_model(trained, QuantConfig(**config))
    out = evaluate_quantized(trained, graph, x, fit_arch=_needs_fit(config))
    return {"bit_exact": bool(out["bit_exact"]), "cosine": out["cosine"]}, graph


def _line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:300] if text else ''}"


GENERATIONS = ("exact", "differs", "refused", "crash", "timeout")  # a record's generation kinds


def run_generation(model: object, x: object, graph: object, config: dict,
                   tokens: int | None = None) -> dict:
    """The greedy generation of ``graph`` (``model`` quantized at ``config``) on the arch the
    evaluation ran on, as the survey runs it (family_survey.generation: a prefill of 6 of
    ``x``'s ids, then ``tokens`` decode steps, every token and step's codes against the golden
    reference's): ``generation`` is ``exact``, ``differs``, ``refused: <line>`` (a QasicError),
    ``crash: <type: line>`` or ``timeout``, with ``decode_cycles`` per step and ``decode``
    (``kv_cache`` or ``recompute``: qasic.recompute) when it ran."""
    from benchmarks.family_survey import GEN_TOKENS, generation
    from qasic.arch.config import default_arch
    from qasic.errors import QasicError

    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        arch = default_arch()
        if _needs_fit(config):
            from qasic.flow import arch_for

            arch = arch_for(graph, arch)
        out = generation(model, x, graph, arch, tokens or GEN_TOKENS)
        rec = {"generation": out["generate"]} | (
            {"decode_cycles": out["decode_cycles"]} if "decode_cycles" in out else {}) | (
            {"decode": out["decode"]} if "decode" in out else {})
    except _Timeout:
        rec = {"generation": "timeout"}
    except QasicError as e:
        rec = {"generation": f"refused: {str(e).strip().splitlines()[0][:300]}"}
    except Exception as e:  # noqa: BLE001 - every failure is a finding
        rec = {"generation": f"crash: {_line(e)}"}
    finally:
        signal.alarm(0)
    return rec


def generation_counts(records: list[dict]) -> dict:
    """How many records' generation is each of GENERATIONS (rows that generated only)."""
    kinds = [r["generation"].split(":")[0] for r in records if r.get("generation")]
    return {k: kinds.count(k) for k in GENERATIONS}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bit_survey", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--act-bits", type=int, help="INT activation bits (default 6; 8 with an FP8 "
                    "--act-format)")
    ap.add_argument("--weight-bits", type=int, default=8)
    ap.add_argument("--weight-format", help="a weight format name (qasic.quant.formats), e.g. nf4")
    ap.add_argument("--act-format", default="int", help="int, or fp8_e4m3 / fp8_e3m4")
    ap.add_argument("--only", help="comma-separated survey rows (default: the sample)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--generate", action="store_true",
                    help="decoder rows also generate greedily at the point (record generation)")
    ap.add_argument("--decoders", action="store_true",
                    help="only the rows that generate (of the sample or --only)")
    args = ap.parse_args(argv)
    if args.act_bits is None:
        args.act_bits = 6 if args.act_format == "int" else 8
    if not 2 <= args.act_bits <= 8:
        print(f"--act-bits {args.act_bits}: give 2..8", file=sys.stderr)
        return 1
    config = {"activation_bits": args.act_bits, "weight_bits": args.weight_bits,
              "activation_format": args.act_format}
    if args.weight_format:
        config["weight_format"] = args.weight_format
    try:
        from qasic.errors import QasicError
        from qasic.quant import QuantConfig
        QuantConfig(**config)
    except (ValueError, TypeError, QasicError) as e:
        print(f"bit_survey: {e}", file=sys.stderr)
        return 1
    warnings.filterwarnings("ignore")
    names = args.only.split(",") if args.only else sample()
    if args.decoders:
        from benchmarks.family_survey import generates

        names = [n for n in names if generates(n)]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bit_survey_{point_name(config)}.json"
    old = json.loads(path.read_text())["records"] if path.exists() else []
    records = {r["name"]: r for r in old}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    for i, name in enumerate(names, 1):
        rec = run_one(name, config, args.generate) | {"commit": commit}
        records[name] = rec
        gen = f" generation={rec['generation']}" if "generation" in rec else ""
        print(f"[{i}/{len(names)}] {name}: {rec.get('bit_exact', rec.get('error'))} "
              f"cosine={rec.get('cosine')}{gen}", flush=True)
        exact = sum(1 for r in records.values() if r.get("bit_exact"))
        doc = {"schema": "bit_survey/1", "act_bits": args.act_bits,
               "weight_bits": args.weight_bits, "config": config, "bit_exact": exact,
               "rows": len(records)}
        if any("generation" in r for r in records.values()):
            doc["generation"] = generation_counts(list(records.values()))
        path.write_text(json.dumps(doc | {"records": list(records.values())}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
