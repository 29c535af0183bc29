"""CI-sized guard of generation at narrow activations: a decoder per generation mechanism
generates a few tokens at A4 and at A8 through ``benchmarks.bit_survey``'s generation (the run
``--generate`` makes: a prefill of 6 tokens, then decode steps with their caches on the
simulator), token for token and code for code equal to the golden reference's.

Generation at A<8 was never run in CI: token-shift prefill rows and conv-window caches stored
a byte per code against packed caches (LFM2, Mamba) were found by a script outside the repo,
and a Mamba2-hybrid regression (GraniteMoeHybrid@mamba, NemotronH: 27fa084) lived a session.
Each row also checks that its graph still uses the mechanism it stands for, so a row that
stops exercising it fails rather than passing vacuously. The whole sample's decoders at a
point: ``python -m benchmarks.bit_survey --act-bits 4 --generate --decoders``.
"""

from __future__ import annotations

import importlib
from functools import cache

import numpy as np
import pytest

pytest.importorskip("transformers")

from benchmarks import bit_survey, family_survey

TOKENS = 4  # prompt positions 0..5, decoded 6..9: past GPT-Neo's 8-token window


def _window_masked(graph, c: int) -> bool:
    """A softmax whose key mask drops the oldest keys of the later queries (a sliding
    window), not only the later keys (causal)."""
    for n in graph.nodes:
        if n.op == "softmax" and "valid" in n.params:
            valid = np.asarray(n.params["valid"]).reshape(-1, c, c)
            if not valid[:, -1, 0].all():
                return True
    return False


def _grouped(graph, c: int) -> bool:
    """Grouped-query attention reads the caches without the head repeat (decode_groups)."""
    from qasic.quant.decode import decode_graph

    return any(n.name.endswith(".grouped") for n in decode_graph(graph).nodes)


def _scanned_and_convolved(graph, c: int) -> bool:
    """A Mamba2 mixer: a scan state carried by the decode step (quant.recurrence) after a
    token conv's window cache (decode_conv), beside attention layers reading grouped caches."""
    from qasic.quant import recurrence
    from qasic.quant.decode import token_convs

    return bool(recurrence.plans(graph, c)) and bool(token_convs(graph)) and _grouped(graph, c)


def _shifted(graph, c: int) -> bool:
    from qasic.quant.decode import token_shifts

    return bool(token_shifts(graph))


def _convolved(graph, c: int) -> bool:
    from qasic.quant.decode import token_convs

    return bool(token_convs(graph)) and _grouped(graph, c)


def _last_row(graph, c: int) -> bool:
    from qasic.quant.lastrow import last_selects

    return bool(last_selects(graph, c))


# row -> (what it stands for, the check that its graph does): a survey row, or a hand-written
# network (benchmarks/handwritten) "hw:NAME"
ROWS = {
    "GraniteMoeHybridModel@mamba": ("Mamba2 hybrid", _scanned_and_convolved),
    "Lfm2Model": ("conv window + GQA", _convolved),
    "TransformerWrapper@shift": ("token shift", _shifted),
    "GPTNeoModel@window8": ("sliding window", _window_masked),
    "hw:llama2c": ("last-row logits", _last_row),
}


@cache
def _model(row: str):
    """(the float model, its calibration ids (2, C))."""
    if row.startswith("hw:"):
        from benchmarks.handwritten import networks

        net = networks()[row[3:]]
        module = importlib.import_module(f"benchmarks.handwritten.{net.module}")
        return getattr(module, net.factory)(), net.inputs()[:2]
    model, x, _ = family_survey.build(row)
    return model, x


@cache
def _graph(row: str, bits: int):
    import torch

    from qasic.quant import QuantConfig
    from qasic.quant.quantize import quantize

    model, x = _model(row)
    return quantize(model, (torch.from_numpy(x[:1]),), x, QuantConfig(activation_bits=bits))


@pytest.mark.parametrize("bits", [4, 8], ids=["a4", "a8"])
@pytest.mark.parametrize("row", list(ROWS))
def test_decoders_generate_equal_to_the_golden_reference(row, bits):
    model, x = _model(row)
    rec = bit_survey.run_generation(model, x, _graph(row, bits), {"activation_bits": bits},
                                    TOKENS)
    assert rec["generation"] == "exact", f"{row} ({ROWS[row][0]}) at A{bits}: {rec}"
    assert rec["decode"] == "kv_cache", f"{row} at A{bits} lost its decode step: {rec}"
    assert rec["decode_cycles"] > 0


@pytest.mark.parametrize("row", list(ROWS))
def test_each_row_uses_its_mechanism(row):
    graph = _graph(row, 4)
    c = int(graph.shapes[graph.input][0])
    what, uses = ROWS[row]
    assert uses(graph, c), f"{row} no longer exercises {what}: pick another row"
