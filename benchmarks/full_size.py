"""Transformers at their published sizes, not survey-sized: does the whole flow scale?

    python -m benchmarks.full_size --out benchmarks/results [--only vit_b16,gpt2]

The family survey (benchmarks.family_survey) runs 200+ architectures at a width of 32-64 so that
all of them fit in one run. This benchmark runs three of them at the size people deploy, with
the transformers library's default configuration (its own random initialisation: no weights
ship for them) and random inputs, W8A8 on the default arch:

    vit_b16     ViTModel, ViT-B/16 (86 M parameters), two 224 x 224 images: ``evaluate``
    bert_base   BertModel, BERT-base (109 M), two sequences of 128 token ids: ``evaluate``
    gpt2        GPT2LMHeadModel, GPT-2 small (124 M; 128 positions), an 8-token prompt and 6
                greedy tokens: ``generate`` (prefill, then decode steps with the KV cache in
                DRAM)

Each case runs in its own process (``python -m benchmarks.full_size --case NAME``) so that its
peak resident memory is its own. Writes full_size.json: per case the `qasic evaluate` or
`qasic generate` record's verdict and costs (bit_exact / matches_reference, cosine, cycles,
energy, DRAM bytes), compile and simulate seconds, wall seconds, peak RSS, the machine's load
average around the run, and the commit. Wall seconds are the shared machine's: read them as
an order of magnitude, never as a speed claim (benchmarks.sim_speed measures speed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "full_size/1"
CALIBRATION = 4  # calibration samples (random, like the inputs)


@dataclass(frozen=True)
class Case:
    kind: str                 # "evaluate" or "generate"
    build: str                # name of the builder below: () -> (nn.Module, calibration, inputs)
    summary: str


def _wrap(module: Any, field: str) -> Any:
    import torch

    class Output(torch.nn.Module):
        """The transformers output object's one tensor (qasic takes a tensor out)."""

        def __init__(self):
            super().__init__()
            self.m = module

        def forward(self, x):
            return getattr(self.m(x), field)

    return Output().eval()


def vit_b16(size: dict | None = None) -> tuple[Any, np.ndarray, np.ndarray]:
    import torch
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    config = ViTConfig(**(size or {}))
    module = _wrap(ViTModel(config, add_pooling_layer=False), "last_hidden_state")
    rng = np.random.default_rng(0)
    side = config.image_size
    images = rng.standard_normal((CALIBRATION + 2, 3, side, side)).astype(np.float32)
    return module, images[:CALIBRATION], images[CALIBRATION:]


def bert_base(size: dict | None = None, seq: int = 128) -> tuple[Any, np.ndarray, np.ndarray]:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(**(size or {}))
    module = _wrap(BertModel(config, add_pooling_layer=False), "last_hidden_state")
    ids = np.random.default_rng(0).integers(0, config.vocab_size, (CALIBRATION + 2, seq))
    return module, ids[:CALIBRATION], ids[CALIBRATION:]


def gpt2(size: dict | None = None, positions: int = 128) -> tuple[Any, np.ndarray, np.ndarray]:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(n_positions=positions, **(size or {}))
    module = _wrap(GPT2LMHeadModel(config), "logits")
    ids = np.random.default_rng(0).integers(32, 127, (CALIBRATION + 1, positions // 2))
    return module, ids[:CALIBRATION], ids[CALIBRATION, :8]


BUILDERS: dict[str, Callable[..., tuple[Any, np.ndarray, np.ndarray]]] = {
    "vit_b16": vit_b16, "bert_base": bert_base, "gpt2": gpt2}
CASES = {
    "vit_b16": Case("evaluate", "vit_b16", "ViT-B/16, 224x224, 2 images"),
    "bert_base": Case("evaluate", "bert_base", "BERT-base, 2 x 128 tokens"),
    "gpt2": Case("generate", "gpt2", "GPT-2 small, 8-token prompt, 6 tokens"),
}
GENERATE_TOKENS = 6
KEEP = ("bit_exact", "matches_reference", "cosine", "cycles", "energy_pj", "dram_bytes",
        "prefill_cycles", "decode_cycles_per_token", "energy_pj_per_token", "kv_cache_bytes",
        "tokens_per_s", "fp32_agreement", "compile_s", "simulate_s")


def run_case(name: str, size: dict | None = None) -> dict:
    """One case in this process: its record's KEEP keys, parameters, wall seconds, peak RSS."""
    from qasic.evaluation import evaluate
    from qasic.generate import generate

    case = CASES[name]
    t0 = time.perf_counter()
    module, calibration, x = BUILDERS[case.build](size)
    params = sum(p.numel() for p in module.parameters())
    if case.kind == "evaluate":
        record = evaluate(module, x, calibration=calibration)
    else:
        from qasic.evaluation import resolve_model

        trained = resolve_model(module, calibration=calibration)
        record = generate(trained, [int(i) for i in x], GENERATE_TOKENS)
    if isinstance(record.get("energy_pj"), dict):
        record["energy_pj"] = record["energy_pj"]["total"]
    if isinstance(record.get("energy_pj_per_token"), dict):
        record["energy_pj_per_token"] = record["energy_pj_per_token"]["total"]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"case": name, "kind": case.kind, "summary": case.summary, "parameters": params,
            **{k: record[k] for k in KEEP if k in record},
            "wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(peak_kb / 1024)}


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def run_isolated(name: str) -> dict:
    """run_case in a child process (its own peak memory); a failure is recorded, not raised."""
    load0 = os.getloadavg()[0]
    done = subprocess.run([sys.executable, "-m", "benchmarks.full_size", "--case", name],
                          check=False, capture_output=True, text=True)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        record = {"case": name, "kind": CASES[name].kind, "error": tail}
    else:
        record = json.loads(done.stdout.strip().splitlines()[-1])
    return {**record, "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)]}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.full_size", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="directory for full_size.json")
    ap.add_argument("--only", help=f"comma-separated cases of {', '.join(CASES)}")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # the child process of run_isolated
    args = ap.parse_args(argv)
    if args.case:
        print(json.dumps(run_case(args.case)))
        return 0
    if args.out is None:
        ap.error("--out DIR is required")
    names = args.only.split(",") if args.only else list(CASES)
    bad = [n for n in names if n not in CASES]
    if bad:
        ap.error(f"unknown case {bad[0]!r}; cases: {', '.join(CASES)}")
    path = args.out / "full_size.json"
    old = json.loads(path.read_text())["records"] if path.exists() else []
    records = {r["case"]: r for r in old}
    commit = _commit()
    for name in names:
        print(f"{name}: {CASES[name].summary} ...", file=sys.stderr, flush=True)
        records[name] = {**run_isolated(name), "commit": commit}
        print(f"{name}: {json.dumps(records[name])}", file=sys.stderr, flush=True)
        args.out.mkdir(parents=True, exist_ok=True)
        ordered = [records[n] for n in CASES if n in records]
        path.write_text(json.dumps({"schema": SCHEMA, "records": ordered}, indent=1) + "\n")
    failed = [n for n in names if "error" in records[n]]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
