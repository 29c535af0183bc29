"""The query picks of two-stage detectors (family_survey rows whose forward picks its decoder's
queries with a top-k of per-token scores, quant.topk_select), quantized against float:

    python -m benchmarks.topk_picks [--only DFineModel,...] [--out DIR]

Per row and sample (the survey's model, config and 2 inputs; W8A8, golden reference, which
the simulator equals bit for bit): k of T tokens picked; ``new_picks``, picks not in float's
set; ``moved``, the query slots holding another token than float's (the order is the decoder's
query order); the quantized score's error |s_q - s_f|; the gap between float's k-th and
(k+1)-th score; the output's cosine to float per sample as the survey computes it
(``positional``) and with the quantized rows put in the order of float's picks (``matched``: a
row whose token float picked compared with float's row of that token, the others in order);
``wider_score``, the picks of a score path kept in float from the 8-bit input of the linear
that makes the scores (the best any wider score path can do: what a 16-bit score path would
pick at most). Writes ``topk_picks.json`` and prints a line per sample.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROWS = ("DFineModel", "RTDetrModel", "LwDetrModel", "Deimv2Model", "PPDocLayoutV4Model")
_SCORE_VIEWS = ("reshape", "maxpool2d", "permute")  # from the scores' linear to the top-k


def picks(name: str) -> list[dict]:
    """The per-sample comparison of row ``name`` (the module doc)."""
    import torch

    from benchmarks import family_survey as fs
    from qasic.evaluation import cosines
    from qasic.quant import QuantConfig, reference
    from qasic.quant.quantize import quantize

    model, x, _ = fs.build(name)
    seen = []
    topk = torch.topk

    def recorded(t: Any, k: int, *args: Any, **kwargs: Any) -> Any:
        out = topk(t, k, *args, **kwargs)
        seen.append((t.detach().numpy().copy(), out.indices.numpy().copy()))
        return out

    torch.topk = recorded
    try:
        with torch.no_grad():
            out_f = fs.run_model(model, x).numpy()
    finally:
        torch.topk = topk
    s_f, idx_f = next((s, i) for s, i in seen if s.ndim == 2)  # (batch, T) scores
    b, t = s_f.shape
    k = idx_f.shape[1]
    g = quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig())
    env = reference.run(g, g.quantize_input(x), keep=True)
    hot = next(n for n in g.nodes if "onehot" in n.name and n.name.endswith(".rows"))
    idx_q = env[hot.output].reshape(b, k, t).argmax(-1)
    score = next(n for n in g.nodes if n.op == "topk_mask").inputs[0]
    s_q = _deq(g, env, score).reshape(b, t)
    out_q = _deq(g, env, g.output).reshape(out_f.shape)
    wider = _wider(model, g, env, score, b, t)
    rows = []
    for i in range(b):
        f, q = idx_f[i].tolist(), idx_q[i].tolist()
        top = np.sort(s_f[i])[::-1]
        rec = {"name": name, "sample": i, "k": k, "tokens": t,
               "new_picks": len(set(q) - set(f)), "moved": int(np.sum(idx_f[i] != idx_q[i])),
               "score_error_mean": float(np.abs(s_q[i] - s_f[i]).mean()),
               "score_error_max": float(np.abs(s_q[i] - s_f[i]).max()),
               "kth_gap": float(top[k - 1] - top[k]) if k < t else None,
               "positional": float(cosines(out_q[i][None], out_f[i][None])[0]),
               "matched": None, "wider_score_new_picks": None, "wider_score_moved": None}
        if out_f.shape[1] == k:  # the decoder's queries, one row each
            rec["matched"] = float(cosines(out_q[i][_order(f, q)][None], out_f[i][None])[0])
        if wider is not None:
            w = np.argsort(-wider[i], kind="stable")[:k]
            rec["wider_score_new_picks"] = len(set(w.tolist()) - set(f))
            rec["wider_score_moved"] = int(np.sum(idx_f[i] != w))
        rows.append(rec)
    return rows


def _deq(g: Any, env: dict, tensor: str) -> np.ndarray:
    q = g.tensors[tensor]
    return (env[tensor].astype(np.float64) - q.zero_point) * q.scale


def _order(f: list[int], q: list[int]) -> list[int]:
    """The quantized rows in float's pick order: the row of each token float picked, the rows
    of tokens float did not pick in the remaining slots in order."""
    slots = [q.index(tok) if tok in q else None for tok in f]
    free = [j for j in range(len(q)) if j not in slots]
    return [j if j is not None else free.pop(0) for j in slots]


def _wider(model: Any, g: Any, env: dict, score: str, b: int, t: int) -> np.ndarray | None:
    """The scores of the float linear that makes them (the graph node's module) on its 8-bit
    input, max over its outputs; None when the scores are not such a linear's max."""
    import torch

    made = {n.output: n for n in g.nodes}
    node = made.get(score)
    while node is not None and node.op in _SCORE_VIEWS:
        node = made.get(node.inputs[0])
    if node is None or node.op != "linear":
        return None
    try:
        module = model.get_submodule(node.name)
    except AttributeError:
        return None
    a = torch.from_numpy(_deq(g, env, node.inputs[0]).reshape(b, t, -1)).float()
    with torch.no_grad():
        return module(a).max(-1).values.numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(ROWS), help="survey rows, comma-separated")
    ap.add_argument("--out", default=None, help="directory for topk_picks.json")
    args = ap.parse_args(argv)
    rows = []
    for name in args.only.split(","):
        for r in picks(name):
            rows.append(r)
            print(f"{name} sample {r['sample']}: {r['new_picks']} new of k={r['k']} "
                  f"(T={r['tokens']}), {r['moved']} slots moved; score error mean "
                  f"{r['score_error_mean']:.4f}, k-th gap {r['kth_gap']}; cosine positional "
                  f"{r['positional']:.4f}, matched {r['matched']}; wider score: "
                  f"{r['wider_score_new_picks']} new, {r['wider_score_moved']} moved", flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "topk_picks.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
