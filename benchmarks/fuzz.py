"""Fuzz the program loader, the verifier and the simulator with seeded mutations (issue 11).

    python -m benchmarks.fuzz --cases 10000 --out out/bench

Mutations (benchmarks.mutators) hit compiled programs of digits_cnn, digits_mlp and a small
transformer, and the default arch TOML. Every case must end in a clean rejection (a QasicError of
one line) or a correct run:
  - a neutral mutation runs and reproduces the unmutated program's outputs exactly;
  - any other accepted program runs without an error other than a clean one, and the dynamic
    hazard oracle (qasic.sim.hazards) finds nothing the verifier let through;
  - an arch TOML that loads compiles digits_mlp, and the program runs bit-exact with the golden
    reference (qasic.quant.reference).
Anything else is a crash, a "wrong" outcome (a neutral mutation refused or changing outputs, a
hazard the verifier missed) or a hang (over HANG_SECONDS). Writes fuzz.json: the counts, per
mutator, and the first crashes with their mutator and seed.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
import traceback
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.mutators import ARCH_MUTATORS, PROGRAM_MUTATORS, Parts
from qasic.errors import QasicError

HANG_SECONDS = 30
MEMORY_HEADROOM_BYTES = 6 << 30  # a case may map this much beyond the loaded models
OUTCOMES = ("rejected", "correct", "crash", "wrong", "hang")
BATCH = 2


@dataclass(frozen=True, eq=False)
class Subject:
    name: str
    graph: object        # QGraph
    blob: bytes          # the compiled program file
    codes: np.ndarray    # BATCH input codes
    golden: np.ndarray   # the golden reference's outputs for them


def subjects() -> list[Subject]:
    """digits_cnn (W4) and digits_mlp (W8) on the default arch, and a small untrained GPT (two
    blocks: embeddings by GATHER, NORM, masked SOFTMAX, attention GEMMs, LUT GELU, residual ADD),
    each checked bit-exact first."""
    from qasic.models import get_model
    from qasic.quant import QuantConfig

    out = []
    for name, bits in (("digits_cnn", 4), ("digits_mlp", 8)):
        trained = get_model(name)
        out.append(_subject(name, trained.module, trained.example_input, trained.calibration,
                            trained.test_inputs[:BATCH], QuantConfig(weight_bits=bits)))
    out.append(_subject("tiny_transformer", *_tiny_transformer(), QuantConfig()))
    return out


def _tiny_transformer():
    """(module, example, calibration, inputs) of an untrained 2-block GPT of width 32."""
    import torch

    from qasic.models.tiny_gpt import GPTConfig, TinyGPT

    torch.manual_seed(0)
    module = TinyGPT(GPTConfig(context=8, width=32, depth=2, heads=2, mlp_ratio=2)).eval()
    ids = np.random.default_rng(0).integers(0, _vocab(module), (32, 8))
    return module, torch.as_tensor(ids[:1]), ids, ids[:BATCH]


def _vocab(module) -> int:
    import torch

    return min(m.num_embeddings for m in module.modules() if isinstance(m, torch.nn.Embedding))


def _subject(name: str, module, example, calibration, inputs, config) -> Subject:
    from qasic.arch.config import default_arch
    from qasic.compiler import compile_graph
    from qasic.isa.program import to_bytes
    from qasic.quant import quantize, reference
    from qasic.quant.graphio import embed
    from qasic.sim import simulate
    from qasic.sim.run import input_codes

    graph = quantize(module, (example,), calibration, config, name=name)
    program = compile_graph(graph, default_arch())
    codes = input_codes(program, inputs)
    golden = reference.run(graph, codes)
    assert np.array_equal(simulate(program, default_arch(), codes=codes).outputs, golden)
    return Subject(name, graph, to_bytes(embed(program, graph)), codes, golden)


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang


def run_program(blob: bytes, subject: Subject, neutral: bool) -> tuple[str, str]:
    from qasic.isa.program import from_bytes
    from qasic.quant.graphio import embedded
    from qasic.sim import simulate
    from qasic.sim.hazards import hazards
    from qasic.sim.run import program_arch

    try:
        program = from_bytes(blob, "fuzz.qasic")
        arch = program_arch(program)  # verifies
        embedded(program)  # the graph section (golden reference) parses and fits the program
    except QasicError as e:
        return ("wrong", f"neutral mutation refused: {e}") if neutral else _clean(e)
    try:
        out = simulate(program, arch, codes=subject.codes).outputs
    except QasicError as e:
        return _clean(e, "after verification: ")
    if neutral and not np.array_equal(out, subject.golden):
        return "wrong", "a neutral mutation changed the outputs"
    found = hazards(program, arch)
    if found:
        return "wrong", f"the verifier accepted a hazard: {found[0]}"
    return "correct", ""


def run_arch(text: str, subject: Subject, folder: Path) -> tuple[str, str]:
    from qasic.arch.config import load_arch
    from qasic.compiler import compile_graph
    from qasic.sim import simulate

    path = folder / "arch.toml"
    path.write_text(text)
    try:
        arch = load_arch(path)
        program = compile_graph(subject.graph, arch)
        out = simulate(program, arch, codes=subject.codes).outputs
    except QasicError as e:
        return _clean(e)
    if not np.array_equal(out, subject.golden):
        return "wrong", f"arch {arch.name}: outputs differ from the golden reference"
    return "correct", ""


def _clean(e: QasicError, where: str = "") -> tuple[str, str]:
    text = str(e)
    if "\n" in text or not text:
        return "crash", f"{where}{type(e).__name__} message is not one line: {text!r}"
    return "rejected", f"{where}{text}"


def one_case(rng: np.random.Generator, subs: list[Subject], arch_text: str,
             folder: Path) -> tuple[str, str, str]:
    """(mutator, outcome, detail) of one seeded case."""
    names = list(PROGRAM_MUTATORS) + list(ARCH_MUTATORS)
    name = names[int(rng.integers(len(names)))]
    subject = subs[int(rng.integers(len(subs)))]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        if name in ARCH_MUTATORS:
            mlp = next(s for s in subs if s.name == "digits_mlp")
            outcome, detail = run_arch(ARCH_MUTATORS[name](rng, arch_text), mlp, folder)
        else:
            mutate, kind, neutral = PROGRAM_MUTATORS[name]
            blob = mutate(rng, subject.blob, Parts.of(subject.blob))
            if kind == "structure" and rng.integers(4) == 0:  # stack one or two more
                for _ in range(int(rng.integers(1, 3))):
                    blob = _stack(rng, blob)
                name += "+"
            outcome, detail = run_program(blob, subject, neutral)
    except Hang:
        outcome, detail = "hang", f"over {HANG_SECONDS} s"
    except Exception as e:  # noqa: BLE001  (every other exception is what we are looking for)
        frame = traceback.extract_tb(e.__traceback__)[-1]
        outcome = "crash"
        detail = f"{type(e).__name__}: {e} ({Path(frame.filename).name}:{frame.lineno})"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    return name, outcome, detail


def _stack(rng: np.random.Generator, blob: bytes) -> bytes:
    """One more structure-aware mutation on top (when the blob still parses as sections)."""
    names = [n for n, (_, kind, _) in PROGRAM_MUTATORS.items() if kind == "structure"]
    mutate = PROGRAM_MUTATORS[names[int(rng.integers(len(names)))]][0]
    try:
        return mutate(rng, blob, Parts.of(blob))
    except Exception:  # noqa: BLE001  (the sections no longer parse as a mutator expects them)
        return blob


def fuzz(cases: int, seed: int = 0, subs: list[Subject] | None = None,
         progress=None) -> dict:
    """Run ``cases`` seeded cases; case c uses the generator seeded (seed, c)."""
    from qasic.arch.config import DEFAULT_PATH

    subs = subs if subs is not None else subjects()
    arch_text = DEFAULT_PATH.read_text()
    counts, per_mutator, failures = Counter(), {}, []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for c in range(cases):
            rng = np.random.default_rng([seed, c])
            name, outcome, detail = one_case(rng, subs, arch_text, Path(tmp))
            counts[outcome] += 1
            per_mutator.setdefault(name, Counter())[outcome] += 1
            if outcome in ("crash", "wrong", "hang") and len(failures) < 50:
                failures.append({"case": c, "seed": [seed, c], "mutator": name,
                                 "outcome": outcome, "detail": detail[:300]})
            if progress and (c + 1) % 500 == 0:
                progress(f"{c + 1}/{cases} cases: {dict(counts)}")
    return {"cases": cases, "seed": seed, "seconds": time.perf_counter() - t0,
            "clean_rejections": counts["rejected"], "correct_runs": counts["correct"],
            "crashes": counts["crash"], "wrong": counts["wrong"], "hangs": counts["hang"],
            "per_mutator": {k: dict(v) for k, v in sorted(per_mutator.items())},
            "failures": failures}


def _limit_memory(headroom: int) -> None:
    """Cap the address space at what is mapped now plus ``headroom``: a case that allocates
    beyond it fails with MemoryError (counted as a crash) instead of swapping the machine."""
    import resource

    with open("/proc/self/status") as f:
        mapped = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    resource.setrlimit(resource.RLIMIT_AS, (mapped + headroom, resource.RLIM_INFINITY))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="out/bench")
    args = ap.parse_args(argv)
    subs = subjects()
    _limit_memory(MEMORY_HEADROOM_BYTES)
    record = fuzz(args.cases, args.seed, subs, progress=lambda m: print(m, flush=True))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fuzz.json").write_text(json.dumps(record, indent=1) + "\n")
    keys = ("cases", "clean_rejections", "correct_runs", "crashes", "wrong", "hangs")
    print(", ".join(f"{k} {record[k]}" for k in keys) + f" -> {out / 'fuzz.json'}")
    return 0 if record["crashes"] + record["wrong"] + record["hangs"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
