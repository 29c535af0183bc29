"""Does quantization-aware fine-tuning close minilm's W8A8 gap? A probe, not a recipe.

    python -m benchmarks.minilm_qat_probe --steps 100 --lr 1e-5 [--format fp8_e4m3] [--out DIR]

Distillation (Polino et al. 2018; the KD losses of TernaryBERT, Zhang et al. 2020) of
all-MiniLM-L6-v2 into itself on its FGraph (the recipe's split graph: FP8 activations, 16-bit
norm inputs, 16-bit residual copies of the LayerNorm outputs), in torch:

- every activation tensor the quantized graph encodes is fake-quantized in the forward pass with
  its calibrated encoding (``FakeQuant``: the same rounding as ``TensorQ.encode``/``decode``,
  checked against it on 200,000 values); gradients pass straight through;
- every linear's weight is fake-quantized to max-abs INT8 per output channel (straight through);
- the linears' weights and biases and the LayerNorms' gamma and beta are trained with Adam;
- loss: 100 * (1 - cosine) of the sentence embeddings plus the per-token MSE of the last hidden
  state, against the float graph (the teacher), on batches of 32 of the 4,176 stdlib docstring
  sentences that are neither test nor calibration sentences (models.text.sentences order);
- every 100 steps the encodings are recalibrated and the 256 test sentences scored in
  fake-quant (``run_float``), as benchmarks.minilm_error_study scores them.

Measured (2026-12-05, FP8 E4M3, lr 1e-5, 100 steps, 16 s per step on a shared 2-core machine):
fake-quant cosine 0.99758 -> 0.99780, nearest-neighbour agreement 89.5 % -> 89.1 %. The gain is
a tenth of what the 95 % target needs (a cosine near 0.9995): not pursued. Writes
minilm_qat_probe.json (each scored step) to ``--out`` if given.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA = "minilm_qat_probe/1"
BATCH = 32
SCORE_EVERY = 100
# (mantissa bits, lowest normal exponent, largest value) of the FP activation formats
FP_FIELDS = {"fp8_e4m3": (3, -6, 448.0), "fp8_e3m4": (4, -2, 31.0)}


def fake_quant() -> Any:
    """The straight-through fake quantizer (an autograd Function over a TensorQ)."""
    import torch

    class FakeQuant(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: Any, tq: Any) -> Any:
            if tq.is_fp:
                m, emin, top = FP_FIELDS[tq.fmt]
                v = x / tq.scale
                step = torch.exp2(torch.floor(torch.log2(v.abs().clamp_min(1e-30)))
                                  .clamp_min(emin) - m)
                return (torch.round(v / step) * step).clamp(-top, top) * tq.scale
            q = torch.clamp(torch.floor(x / tq.scale + 0.5) + tq.zero_point, tq.qmin, tq.qmax)
            return (q - tq.zero_point) * tq.scale

        @staticmethod
        def backward(ctx: Any, g: Any) -> Any:
            return g, None

    return FakeQuant


def probe(steps: int, lr: float, fmt: str, log=print) -> dict:
    import torch

    from qasic.models import get_model, text
    from qasic.models.minilm import embed, retrieval_agreement, tokenize
    from qasic.quant import QuantConfig, capture
    from qasic.quant.calibrate import prepare
    from qasic.quant.encodings import split_norm_residuals
    from qasic.quant.fgraph import as_input, run_float
    from qasic.quant.quantize import quantize_graph
    from qasic.quant.sensitivity import quantized_params, with_params
    from qasic.quant.torch_ops import ops_for

    torch.manual_seed(0)
    t = get_model("minilm")
    x, fp32 = t.test_inputs, t.fp32_embeddings
    config = QuantConfig(activation_format=fmt, norm_input_bits=16, norm_residual_bits=16)
    graph = split_norm_residuals(prepare(capture(t.module, t.example_input, t.name)))
    held_out = len(x) + len(t.calibration)
    train = tokenize(text.sentences(len(text.sentence_pool()))[held_out:], x.shape[1])
    ops, fq = ops_for(graph), fake_quant()
    trained = {(n.name, k): torch.nn.Parameter(torch.from_numpy(v).float())
               for n in graph.nodes if n.op in ("linear", "norm")
               for k, v in n.params.items() if k in ("weight", "bias", "gamma", "beta")}

    def current() -> Any:
        return replace(graph, nodes=tuple(
            replace(n, params={**n.params, **{k: trained[n.name, k].detach().double().numpy()
                                              for k in n.params if (n.name, k) in trained}})
            for n in graph.nodes))

    def forward(ids: np.ndarray, enc: dict | None) -> Any:
        env = {graph.input: torch.as_tensor(as_input(graph, graph.to_internal(ids)))}
        for n in graph.nodes:
            a = [env[i] for i in n.inputs]
            p = {k: trained[n.name, k] for k in ("weight", "bias", "gamma", "beta")
                 if (n.name, k) in trained}
            if n.op == "linear":
                w = p["weight"]
                if enc is not None:  # max-abs INT8 per output channel, straight through
                    s = w.detach().abs().amax(1, keepdim=True).clamp_min(1e-12) / 127
                    w = w + (torch.round(w.detach() / s) * s - w.detach())
                y = torch.nn.functional.linear(a[0], w, p["bias"])
            elif n.op == "norm":
                z = a[0] - a[0].mean(-1, keepdim=True) if n.attrs.get("center", True) else a[0]
                y = z * torch.rsqrt((z * z).mean(-1, keepdim=True) + n.attrs["eps"]) \
                    * p["gamma"] + p["beta"]
            else:
                y = ops[n.op](n, None, *a)
            if enc is not None and n.output in enc and y.is_floating_point():
                y = fq.apply(y, enc[n.output])
            env[n.output] = y
        return env[graph.output]

    def pooled(h: Any, ids: np.ndarray) -> Any:
        keep = torch.as_tensor(ids != t.pad_id).unsqueeze(-1).float()
        return torch.nn.functional.normalize((h * keep).sum(1) / keep.sum(1), dim=1)

    def score(step: int) -> dict:
        g = current()
        enc = dict(quantize_graph(g, t.calibration, config).tensors)
        w = g
        for n in g.nodes:
            if n.op == "linear":
                w = with_params(w, n.name, quantized_params(n, 8, "minmax", enc))
        e = embed(np.asarray(run_float(w, g.to_internal(x), activations=enc), np.float32)
                  .reshape(*x.shape, -1), x, t.pad_id)
        r = {"step": step, "embedding_cosine": float(np.mean(np.sum(e * fp32, axis=1))),
             "retrieval_agreement": retrieval_agreement(e, fp32)}
        log(f"step {step}: cosine {r['embedding_cosine']:.5f}, agreement "
            f"{100 * r['retrieval_agreement']:.1f} %")
        return r

    t0 = time.time()
    records = [score(0)]
    with torch.no_grad():
        teacher = torch.cat([forward(train[i:i + 256], None) for i in range(0, len(train), 256)])
        target = pooled(teacher, train)
    enc = dict(quantize_graph(graph, t.calibration, config).tensors)
    opt = torch.optim.Adam(list(trained.values()), lr=lr)
    for step in range(1, steps + 1):
        pick = np.random.default_rng(step).choice(len(train), BATCH, replace=False)
        ids = train[pick]
        h = forward(ids, enc)
        keep = torch.as_tensor(ids != t.pad_id).unsqueeze(-1).float()
        mse = (((h - teacher[pick]) ** 2) * keep).sum() / keep.sum() / h.shape[-1]
        loss = 100 * (1 - (pooled(h, ids) * target[pick]).sum(1)).mean() + mse
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 20 == 0:
            log(f"step {step}: loss {loss.item():.5f} ({time.time() - t0:.0f} s)")
        if step % SCORE_EVERY == 0 or step == steps:
            enc = dict(quantize_graph(current(), t.calibration, config).tensors)
            records.append(score(step))
    return {"schema": SCHEMA, "format": fmt, "lr": lr, "batch": BATCH,
            "train_sentences": len(train), "records": records}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--format", default="fp8_e4m3", choices=sorted(FP_FIELDS))
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.steps < 1 or not args.lr > 0:
        p.error(f"--steps {args.steps} and --lr {args.lr} must be positive")
    result = probe(args.steps, args.lr, args.format)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "minilm_qat_probe.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
