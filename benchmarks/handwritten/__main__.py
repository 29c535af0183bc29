"""Run the hand-written networks (qasic.benchmarks.handwritten) through the command line a user
runs: ``qasic evaluate --model FILE.py:FACTORY --data inputs.npz --json`` and, for decoders,
``qasic generate ... --prompt-ids ... --tokens N --json``. Writes
``OUT/handwritten.json``: per network, the evaluate record's ``bit_exact``, ``cosine`` and
``cycles`` (or the one-line refusal and its exit code), and generate's ``matches_reference``,
``decode`` (``kv_cache``, or ``recompute`` where no decode step can be planned: qasic.recompute)
and ``decode_cycles_per_token``.

    python -m benchmarks.handwritten [--only NAME,...] [--out benchmarks/results]
    python -m benchmarks.handwritten --markdown benchmarks/results/handwritten.json

``--markdown`` prints the table docs/handwritten.md shows, then a line of counts (``counts``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.handwritten import Network, networks

TIMEOUT_S = 900


def _run(cmd: list[str]) -> tuple[int, dict | None, str]:
    """The exit code, the JSON record (None when the command printed none) and the last line
    of stderr (a refusal's one line)."""
    try:
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, None, f"no result within {TIMEOUT_S} s"
    record = None
    out = proc.stdout.strip()
    if out:
        try:
            record = json.loads(out[out.index("{"):])
        except ValueError:
            record = None
    err = proc.stderr.strip().splitlines()
    return proc.returncode, record, err[-1].removeprefix("qasic: error: ") if err else ""


def run_one(net: Network, tmp: Path) -> dict:
    data = tmp / f"{net.name}.npz"
    x = net.inputs()  # several inputs: {forward parameter: array}, 'calibration.NAME' each
    np.savez(data, **({f"calibration.{k}": v for k, v in x.items()} if isinstance(x, dict)
                      else {"calibration": x}))
    qasic = [sys.executable, "-m", "qasic"]
    rec: dict = {"name": net.name, "about": net.about, "model": f"{net.module}.py:{net.factory}"}
    t0 = time.perf_counter()
    pick = ["--output", net.output] if net.output else []
    code, out, err = _run([*qasic, "evaluate", "--model", net.model_arg, "--data", str(data),
                           *pick, "--json"])
    if code != 0 or out is None:
        rec |= {"status": "refused" if code == 1 else "crash", "exit_code": code, "error": err}
    else:
        rec |= {"status": "ok", "bit_exact": bool(out["bit_exact"]),
                "cosine": out.get("cosine"), "cycles": int(out["cycles"])}
        if net.prompt or net.source_sample is not None:
            source = ["--prompt-ids", ",".join(map(str, net.prompt))] if net.prompt else \
                ["--source-sample", str(net.source_sample)]  # a float source's (Whisper's)
            cmd = [*qasic, "generate", "--model", net.model_arg, "--data", str(data),
                   *source, "--tokens", str(net.tokens), *pick, "--json"]
            if net.decoder_start:
                cmd += ["--decoder-start", ",".join(map(str, net.decoder_start))]
            code, gen, err = _run(cmd)
            if code != 0 or gen is None:
                rec |= {"generate": f"refused: {err}" if code == 1 else f"crash: {err}"}
            else:
                rec |= {"generate": "exact" if gen["matches_reference"] else "differs",
                        "decode": gen["decode"],
                        "decode_cycles_per_token": gen["decode_cycles_per_token"]}
    rec["wall_s"] = round(time.perf_counter() - t0, 1)
    return rec


def markdown(records: list[dict]) -> str:
    """The table docs/handwritten.md shows: a row per network, its evaluate and generate."""
    head = "| network | what it is | `bit_exact` | cosine | cycles | generate | cycles a token |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for r in records:
        if r["status"] == "ok":
            cells = ["true" if r["bit_exact"] else "**false**", f"{r['cosine']:.5f}",
                     f"{r['cycles']:,}"]
        else:
            why = r.get("error", "").removeprefix("qasic: error: ")
            cells = [f"{r['status']}: {why}".replace("|", "\\|"), "", ""]
        gen = r.get("generate", "")
        tok = r.get("decode_cycles_per_token")
        gen = gen.replace("qasic: error: ", "")
        if gen and r.get("decode") == "recompute":
            gen += " (recompute)"  # no KV cache: the whole model per token
        cells += [gen.replace("|", "\\|") if gen else "–", f"{tok:,}" if tok else "–"]
        lines.append(f"| `{r['name']}` | {r['about']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def counts(records: list[dict]) -> str:
    """One line: how the networks generate (a record before qasic.recompute, without
    ``decode``, decoded with a KV cache)."""
    gen = [r for r in records if r.get("generate")]
    exact = [r.get("decode", "kv_cache") for r in gen if r["generate"] == "exact"]
    refused = sum(r["generate"].startswith("refused") for r in gen)
    return (f"{len(gen)} decoders: {exact.count('kv_cache')} generate with a KV cache, "
            f"{exact.count('recompute')} by recomputation (equal to the golden reference), "
            f"{refused} refused, {len(gen) - len(exact) - refused} differ or crash")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.handwritten", description=__doc__)
    ap.add_argument("--only", help="comma-separated network names (default: all)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--markdown", type=Path, metavar="JSON",
                    help="print the markdown table of a stored run and exit")
    args = ap.parse_args(argv)
    if args.markdown:
        records = json.loads(args.markdown.read_text())["records"]
        print(markdown(records) + "\n" + counts(records))
        return 0
    table = networks()
    names = args.only.split(",") if args.only else list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        print(f"unknown network(s) {', '.join(unknown)}; known: {', '.join(table)}",
              file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "handwritten.json"
    old = json.loads(path.read_text()) if path.exists() else {"records": []}
    records = {r["name"]: r for r in old["records"]}
    commit = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(names, 1):
            print(f"[{i}/{len(names)}] {name}", flush=True)
            rec = run_one(table[name], Path(tmp)) | {"commit": commit}
            print(f"    {rec['status']} {rec.get('bit_exact', rec.get('error', ''))} "
                  f"cosine={rec.get('cosine')} {rec.get('generate', '')} ({rec['wall_s']} s)",
                  flush=True)
            records[name] = rec
            order = [n for n in table if n in records]
            path.write_text(json.dumps({"schema": "handwritten/1",
                                        "records": [records[n] for n in order]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
